"""Text clean-up shared by every reader: glyphs, ligatures, spaces, furniture lines, hyphens."""

from __future__ import annotations

import re
import unicodedata

# Bullet glyphs as they come out of Word, Symbol-font PDFs and pdfminer's "(cid:N)" fallback.
BULLET_CHARS = "•●▪■◦○◆◇►▸‣⁃∙·\uf0b7\uf0a7\uf0d8\uf076\uf0fc\u2023"
_CID = re.compile(r"\(cid:\d+\)")
_BULLET_START = re.compile(rf"^\s*(?:[{re.escape(BULLET_CHARS)}]|[-–*o])\s+")
_NUMBERED_START = re.compile(r"^\s*(?:\d{1,2}[.)]|[a-h][.)]|\([a-h0-9]{1,2}\)|[ivx]{1,4}[.)])\s+")
_SUPERSCRIPT_DIGITS = re.compile(r"(?<=[A-Za-z\)\.,;:])[\u00b9\u00b2\u00b3\u2070-\u2079]+")

_PAGE_NUMBER = re.compile(
    r"^\s*(?:page\s+\d+(?:\s*(?:of|/)\s*\d+)?|\d+\s*(?:of|/)\s*\d+|[-–—]?\s*\d{1,4}\s*[-–—]?|"
    r"[ivxlc]{1,6})\s*$",
    re.IGNORECASE,
)
_MARKING = re.compile(
    r"^\s*(?:official(?:[\s\-–]*(?:sensitive|sensitive[\s\-–]*\w+))?|not protectively marked|"
    r"unclassified|protect|restricted)\s*$",
    re.IGNORECASE,
)
# Prefixes that are normally written with a hyphen, so "multi-" at a line end stays "multi-".
_HYPHEN_PREFIXES = {
    "multi", "non", "co", "cross", "anti", "self", "well", "long", "short", "high", "low",
    "full", "part", "front", "semi", "inter", "pre", "post", "ex", "e", "one", "two", "three",
    "four", "five", "first", "second", "third", "end", "face", "follow", "in", "up", "check",
    "data", "risk", "force", "county", "modern", "decision", "problem", "time", "case",
}


def normalise_chars(text: str) -> str:
    """Ligatures, odd spaces, quotes and bullet glyphs to plain forms; footnote digits dropped."""
    text = _CID.sub("•", text)
    text = text.replace("\x02", "-")  # pdfium's mark for a hyphen at a line end
    text = _SUPERSCRIPT_DIGITS.sub("", text)
    for ch in BULLET_CHARS:
        if ch not in "•·":
            text = text.replace(ch, "•")
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u00ad", "")  # soft hyphen
    text = re.sub(r"[\u200b\u200c\u200d\ufeff]", "", text)
    text = re.sub(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+", " ", text)
    text = text.replace("\u2018", "'").replace("\u2019", "'")
    text = text.replace("\u201c", '"').replace("\u201d", '"')
    return text


def is_bullet_line(line: str) -> bool:
    return bool(_BULLET_START.match(line)) or bool(_NUMBERED_START.match(line))


def strip_bullet(line: str) -> str:
    """Remove a leading bullet glyph (numbers and letters of numbered lists are kept)."""
    return _BULLET_START.sub("", line, count=1).strip()


def is_page_number(line: str) -> bool:
    return bool(_PAGE_NUMBER.match(line))


def is_marking(line: str) -> bool:
    return bool(_MARKING.match(line))


def is_furniture(line: str) -> bool:
    """A line that is page furniture wherever it stands: a page number or a protective marking."""
    stripped = line.strip()
    return not stripped or is_page_number(stripped) or is_marking(stripped)


def furniture_key(line: str) -> str:
    """A line with digits normalised, for spotting running headers and footers across pages."""
    return re.sub(r"\d+", "#", " ".join(line.lower().split()))


def join_lines(lines: list[str], vocabulary: set[str] | None = None) -> str:
    """Join the wrapped lines of one paragraph, repairing end-of-line hyphenation.

    "investi-" + "gation" becomes "investigation"; "multi-" + "agency" stays "multi-agency".
    A word the document also writes hyphenated elsewhere keeps its hyphen.
    """
    out = ""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if not out:
            out = line
            continue
        m = re.search(r"([A-Za-z]+)-$", out)
        if m and line[:1].islower():
            head = m.group(1)
            tail = re.match(r"[A-Za-z]+", line)
            tail_word = tail.group(0) if tail else ""
            hyphenated = f"{head}-{tail_word}".lower()
            if head.lower() in _HYPHEN_PREFIXES or (vocabulary and hyphenated in vocabulary):
                out = out + line
            else:
                out = out[:-1] + line
        else:
            out = out + " " + line
    return out


def hyphenated_vocabulary(text: str) -> set[str]:
    """Hyphenated words written within lines, so line-end repairs can respect them."""
    # The lookbehind starts a match only at the start of a run of letters: without it the
    # engine retries from every letter of a long run, which is quadratic in its length.
    return {m.group(0).lower() for m in _HYPHENATED.finditer(text)}


_HYPHENATED = re.compile(r"(?<![A-Za-z])[A-Za-z]+-[A-Za-z]+")


def ends_sentence(text: str) -> bool:
    return text.rstrip().endswith((".", "!", "?", ":", ";", '"', "'", ")"))


def looks_like_heading(text: str, *, max_words: int = 12) -> bool:
    """A short line with no closing punctuation that reads as a title."""
    t = text.strip()
    if not t or len(t.split()) > max_words or t.endswith((".", ",", ";", ":")) and not re.match(
        r"^(recommendation|rec)\b", t, re.IGNORECASE
    ):
        return False
    if is_bullet_line(t) and not re.match(r"^\d{1,2}[.)]\s+[A-Z]", t):
        return False
    first = t[0]
    return first.isupper() or first.isdigit()

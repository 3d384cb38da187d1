"""Text clean-up shared by every reader: glyphs, ligatures, spaces, furniture lines, hyphens."""

from __future__ import annotations

import re
import string
import unicodedata

# Bullet glyphs as they come out of Word, Symbol-font PDFs and pdfminer's "(cid:N)" fallback.
BULLET_CHARS = "•●▪■◦○◆◇►▸‣⁃∙·\uf0b7\uf0a7\uf0d8\uf076\uf0fc\u2023"
_CID = re.compile(r"\(cid:\d+\)")
_ASCII_LETTERS = string.ascii_letters
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


_OTHER_BULLETS = [ch for ch in BULLET_CHARS if ch not in "•·"]
_ZERO_WIDTH = re.compile(r"[\u200b\u200c\u200d\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")


def normalise_chars(text: str) -> str:
    """Ligatures, odd spaces, quotes and bullet glyphs to plain forms; footnote digits dropped."""
    if text.isascii() and "(cid:" not in text:
        # Most lines: nothing to do but pdfium's hyphen mark and runs of spaces.
        text = text.replace("\x02", "-")
        return _SPACES.sub(" ", text) if "  " in text or "\t" in text else text
    text = _CID.sub("•", text)
    text = text.replace("\x02", "-")  # pdfium's mark for a hyphen at a line end
    text = _SUPERSCRIPT_DIGITS.sub("", text)
    for ch in _OTHER_BULLETS:  # str.replace: fifty times faster than str.translate here
        text = text.replace(ch, "•")
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u00ad", "")  # soft hyphen
    text = _ZERO_WIDTH.sub("", text)
    text = _SPACES.sub(" ", text)
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


# No hyphenated word has a longer first part; bounds the look-back when joining lines.
_MAX_HEAD = 100


def join_lines(lines: list[str], vocabulary: set[str] | None = None) -> str:
    """Join the wrapped lines of one paragraph, repairing end-of-line hyphenation.

    "investi-" + "gation" becomes "investigation"; "multi-" + "agency" stays "multi-agency".
    A word the document also writes hyphenated elsewhere keeps its hyphen. Linear in the
    paragraph's length, however many lines it has.
    """
    parts: list[str] = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if not parts:
            parts.append(line)
            continue
        head = _head_before_hyphen(parts)
        if head and line[:1].islower():
            tail = re.match(r"[A-Za-z]+", line)
            tail_word = tail.group(0) if tail else ""
            hyphenated = f"{head}-{tail_word}".lower()
            if len(head) <= _MAX_HEAD and (head.lower() in _HYPHEN_PREFIXES
                                           or (vocabulary and hyphenated in vocabulary)):
                parts.append(line)
            else:
                parts[-1] = parts[-1][:-1]
                parts.append(line)
        else:
            parts.append(" ")
            parts.append(line)
    return "".join(parts)


def _head_before_hyphen(parts: list[str]) -> str:
    """The run of ASCII letters just before a final "-" of the joined parts ('' if there is no
    such run); cut off beyond ``_MAX_HEAD`` letters."""
    if not parts[-1].endswith("-"):
        return ""
    pieces = []
    n = 0
    for i in range(len(parts) - 1, -1, -1):
        window = parts[i][:-1] if i == len(parts) - 1 else parts[i]
        window = window[-(_MAX_HEAD + 1):]
        run = window[len(window.rstrip(_ASCII_LETTERS)):]
        pieces.append(run)
        n += len(run)
        if len(run) < len(window) or n > _MAX_HEAD:  # a non-letter, or long enough
            break
    return "".join(reversed(pieces))


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

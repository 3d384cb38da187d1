"""Blocks -> passages.

A passage is a paragraph, a bullet group with its lead-in line, or a table cell. Paragraphs
longer than ``max_words`` split at sentence boundaries (spaCy ``blank("en")`` plus the
sentencizer, no model download); nothing is truncated. Headings are not passages, but every
passage carries its heading.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from .config import SegmentParams
from .ingest.cleanup import ends_sentence
from .records import Block, Document, Passage

if TYPE_CHECKING:
    from spacy.language import Language

# Recommendation numbers and sub-point letters in any report's style; which of them count is
# the taxonomy's business (``valid``), so another report needs no change here.
_REC_PATTERNS = [
    # "Recommendation 2a", "Recommendation 2 (c)", "Rec 3", "Recommendations 2f", "Rec. 4 (PCCs)"
    re.compile(r"\b(?:recommendations?|recs?\.?)\s*(\d{1,2})\s*(?:\(\s*([a-z])\s*\)|([a-z])\b)?",
               re.I),
    # "2(c)", "12 (f)" standing alone
    re.compile(r"(?<![\w.])(\d{1,2})\s*\(([a-z])\)", re.I),
    # "2a." or "12f:" at the start of a line or cell
    re.compile(r"^\s*(\d{1,2})([a-z])\b[.:)\s]", re.I | re.M),
]
_NUMBER = re.compile(r"\d+")


@lru_cache(maxsize=1)
def sentencizer() -> Language:
    """A blank English pipeline with the rule-based sentencizer, built once per process."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.max_length = 50_000_000  # only the tokenizer and sentencizer run: no parser memory to fear
    return nlp


def find_rec_refs(text: str, *, valid: set[str] | None = None) -> tuple[str, ...]:
    """Explicit recommendation references, normalised: "2a", "3", "4"; sorted, unique."""
    refs: set[str] = set()
    for pat in _REC_PATTERNS:
        for m in pat.finditer(text):
            groups = [g for g in m.groups() if g]
            ref = groups[0] + (groups[1].lower() if len(groups) > 1 else "")
            refs.add(ref)
    if valid is not None:
        refs = {r for r in refs if r in valid or _number(r) in valid}
    return tuple(sorted(refs))


def _number(ref: str) -> str:
    """The recommendation a reference belongs to: "12" of "12h"."""
    found = _NUMBER.match(ref)
    return found.group() if found else ref


def split_long(text: str, max_words: int, max_chars: int = 2000) -> list[tuple[int, int]]:
    """Character spans of ``text`` cut at sentence boundaries into chunks of at most
    ``max_words`` words (a single longer sentence is cut between words, and a run of more
    than ``max_chars`` characters without a space is cut every ``max_chars``)."""
    spans = _split_words(text, max_words)
    out = []
    for s, e in spans:
        while e - s > max_chars:
            out.append((s, s + max_chars))
            s += max_chars
        out.append((s, e))
    return out


def _split_words(text: str, max_words: int) -> list[tuple[int, int]]:
    if len(text.split()) <= max_words:
        return [(0, len(text))]
    doc = sentencizer()(text)
    spans: list[tuple[int, int]] = []
    for sent in doc.sents:
        s, e = sent.start_char, sent.end_char
        words = text[s:e].split()
        if len(words) > max_words:
            # One very long sentence: cut between words, keeping every character.
            tokens = [(s + m.start(), s + m.end()) for m in re.finditer(r"\S+", text[s:e])]
            for i in range(0, len(tokens), max_words):
                chunk = tokens[i:i + max_words]
                spans.append((chunk[0][0], chunk[-1][1]))
            continue
        if spans and len(text[spans[-1][0]:e].split()) <= max_words:
            spans[-1] = (spans[-1][0], e)
        else:
            spans.append((s, e))
    # Trim whitespace at chunk edges so offsets point at text.
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out


def _continues(lead: Block, b: Block) -> bool:
    """Whether paragraph ``b`` carries on paragraph ``lead``, cut at a page end or by a gap
    that layout analysis took for a paragraph break (a wrapped title, a scanned line set
    apart): ``b`` starts in lower case, ``lead`` does not end a sentence, and no heading
    stands between them."""
    return (lead.kind == "paragraph" and b.kind == "paragraph"
            and b.page - lead.page in (0, 1)
            and b.text[:1].islower() and not ends_sentence(lead.text)
            and b.heading == lead.heading)


def _units(blocks: list[Block]) -> list[list[Block]]:
    """Group blocks into passage units: bullets join their lead-in paragraph, and a
    paragraph cut in two joins its continuation."""
    units: list[list[Block]] = []
    for b in blocks:
        if b.kind == "heading":
            continue
        if units and _continues(units[-1][-1], b):
            units[-1].append(b)
            continue
        if b.kind == "bullet" and units:
            last = units[-1]
            lead = last[-1]
            same_place = lead.heading == b.heading and b.page - lead.page <= 1
            lead_in = (len(last) == 1 and lead.kind == "paragraph"
                       and lead.text.rstrip().endswith(":"))
            if same_place and (lead.kind == "bullet" or lead_in):
                last.append(b)
                continue
        units.append([b])
    return units


def segment(document: Document, *, params: SegmentParams | None = None,
            valid_refs: set[str] | None = None) -> list[Passage]:
    """Split a document's blocks into passages with deterministic ids and char offsets."""
    params = params or SegmentParams()
    full = document.text
    passages: list[Passage] = []

    def emit(units_blocks: list[Block], start: int, end: int) -> None:
        text = full[start:end]
        if len(text.strip()) < params.min_chars:
            return
        first = units_blocks[0]
        refs = tuple(sorted({r for part in (text, first.heading, first.context)
                             for r in find_rec_refs(part, valid=valid_refs)}))
        pid = f"{document.sha256[:12]}-{len(passages):04d}"
        passages.append(Passage(
            passage_id=pid, doc_id=document.doc_id, force=document.force,
            source_path=document.path, page=first.page, heading=first.heading, text=text,
            rec_refs=refs, char_start=start, char_end=end,
            kind="bullets" if any(b.kind == "bullet" for b in units_blocks) else first.kind,
            context=first.context,
            source="ocr" if first.page in document.ocr_pages else "text",
            ocr_confidence=document.ocr_pages.get(first.page),
        ))

    def emit_chunk(chunk: list[Block]) -> None:
        if len(chunk) == 1:
            base = chunk[0].char_start
            for s, e in split_long(chunk[0].text, params.max_words, params.max_chars):
                emit(chunk, base + s, base + e)
        else:
            emit(chunk, chunk[0].char_start, chunk[-1].char_end)

    for unit in _units(document.blocks):
        # A bullet group splits between items, never inside one.
        chunk: list[Block] = []
        for b in unit:
            words = sum(len(x.text.split()) for x in chunk) + len(b.text.split())
            chars = sum(len(x.text) for x in chunk) + len(b.text)
            if chunk and (words > params.max_words or chars > params.max_chars):
                emit_chunk(chunk)
                chunk = []
            chunk.append(b)
        if chunk:
            emit_chunk(chunk)
    return passages

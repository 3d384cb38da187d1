"""The labelled corpus: schema, loading and validation.

Every line of ``data/labelled/*.jsonl`` is one passage with its labels and provenance.
Authored passages carry voice, author and date; reviewed ones (``reviewed.jsonl``) also
carry the annotator, timestamp, model version and the model's prediction at the time.

Columns of the frame returned by :func:`load_corpus`:
id, text, labels (list), voice, genre (the genre it was written in; its voice when none is
named), source, author, created, heading, force, subpoints (list), kind, source_url and
retrieved (the public page a passage follows, where it follows one), file, plus one 0/1
column per taxonomy category.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import DataValidationError
from .taxonomy import Taxonomy

KINDS = ("content", "restated", "hard_negative", "other_none")
SOURCES = ("authored", "review", "import")


def one_of(choices: Sequence[str]) -> AfterValidator:
    """A pydantic check that a text field holds one of ``choices``; the error names them."""
    allowed = tuple(choices)

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {allowed}")
        return value

    return AfterValidator(check)


Source = Annotated[str, one_of(SOURCES)]
NEAR_DUPLICATE_COSINE = 0.9


class PassageText(BaseModel):
    """What every labelled record has: an id, a non-empty text, labels and a known kind."""

    id: str = Field(min_length=1)
    text: str
    labels: list[str]
    subpoints: list[str] | None = None
    kind: str | None = None

    @field_validator("text")
    @classmethod
    def _text_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("empty text")
        return v

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str | None) -> str | None:
        if v is not None and v not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        return v


class LabelledPassage(PassageText):
    """One labelled passage. Unknown extra fields (review provenance) are kept."""

    model_config = ConfigDict(extra="allow")

    voice: str = Field(min_length=1)
    source: Source
    author: str = Field(min_length=1)
    created: str
    heading: str | None = None
    force: str | None = None
    # Passages written after reading a real public page (the new genres) say which page and
    # when; older authored passages have neither.
    genre: str | None = None
    source_url: str | None = None
    retrieved: str | None = None

    @field_validator("created")
    @classmethod
    def _iso_date(cls, v: str) -> str:
        try:
            dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError as e:
            raise ValueError(f"created is not an ISO date: {v!r}") from e
        return v


def normalise_text(text: object) -> str:
    """Lower case, whitespace folded: the key under which two passages count as the same text."""
    return " ".join(str(text).lower().split())


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, object, problem) for each non-blank line of a JSONL file; ``problem``
    says why a line is not JSON (and the object is then None)."""
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line), None
            except json.JSONDecodeError as e:
                yield n, None, f"not valid JSON ({e.msg})"


def read_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) pairs; a line that is not JSON raises with its number."""
    out = []
    for n, obj, problem in iter_jsonl(path):
        if problem:
            raise DataValidationError(str(path), [f"line {n}: {problem}"])
        out.append((n, obj))
    return out


def in_hashed_fraction(key: str, fraction: float, seed: int) -> bool:
    """Stable membership of a ``fraction`` of keys, by a hash of the key: the same key is
    always in or always out, whatever else the data holds."""
    import hashlib

    h = hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()
    return int(h[:8], 16) / 0xFFFFFFFF < fraction


def schema_problem(where: str, obj: Mapping[str, object], error: ValidationError) -> str:
    """One line naming the record and every field pydantic refused."""
    msgs = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in error.errors())
    return f"{where} id={obj.get('id')!r}: {msgs}"


def label_problems(rec: PassageText, where: str, taxonomy: Taxonomy) -> list[str]:
    """Unknown labels or sub-points, and a ``kind`` that does not fit the labels."""
    problems = []
    unknown = set(rec.labels) - set(taxonomy.labels)
    if unknown:
        problems.append(f"{where} id={rec.id}: unknown label(s) {sorted(unknown)}")
    known_sub = set(taxonomy.subpoints)
    if rec.subpoints and known_sub and set(rec.subpoints) - known_sub:
        problems.append(f"{where} id={rec.id}: unknown sub-point(s) "
                        f"{sorted(set(rec.subpoints) - known_sub)}")
    if rec.kind and (rec.kind == "content") != bool(rec.labels):
        problems.append(f"{where} id={rec.id}: kind {rec.kind!r} "
                        f"does not fit labels {rec.labels}")
    return problems


def exact_duplicate_problems(records: Sequence[PassageText]) -> list[str]:
    """Records whose texts are the same once case and whitespace are folded."""
    problems = []
    by_text: dict[str, str] = {}
    for r in records:
        key = normalise_text(r.text)
        if key in by_text:
            problems.append(f"exact duplicate text: {by_text[key]} and {r.id}")
        else:
            by_text[key] = r.id
    return problems


def add_label_columns(frame: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """``subpoints`` as lists (empty where absent) and one 0/1 column per category."""
    subpoints = frame["subpoints"] if "subpoints" in frame else pd.Series(None, index=frame.index)
    frame["subpoints"] = subpoints.apply(lambda v: list(v) if isinstance(v, list) else [])
    for cat in taxonomy.labels:
        frame[cat] = frame["labels"].apply(lambda labels, c=cat: int(c in labels))
    return frame


def validate_records(records: list[tuple[str, int, dict[str, Any]]], taxonomy: Taxonomy, *,
                     near_duplicates: bool = True) -> list[str]:
    """Every schema problem, as a message naming the offending ids.

    ``records`` are (file, line, object). Checks: schema fields, unknown labels, unknown
    sub-points, kind consistent with labels, duplicate ids, exact and near duplicates.
    """
    problems: list[str] = []
    # Review decisions may name a passage again (a second opinion); authored ids may not.
    valid = [rec for _, rec in unique_records(
        records, LabelledPassage, problems, taxonomy=taxonomy,
        repeats_allowed=lambda rec: rec.source == "review")]
    authored = [r for r in valid if r.source != "review"]
    problems += exact_duplicate_problems(authored)
    if near_duplicates and len(authored) > 1:
        text_of = {r.id: normalise_text(r.text) for r in authored}
        near = find_near_duplicates([r.id for r in authored], [r.text for r in authored],
                                    exact=True)
        problems += [f"near-duplicate (cosine {c:.2f}): {a} and {b}" for a, b, c in near
                     if text_of[a] != text_of[b]]  # identical texts are reported above
    return problems


M = TypeVar("M", bound=BaseModel)


def unique_records(records: Sequence[tuple[str, int, Mapping[str, object]]], schema: type[M],
                   problems: list[str], *, taxonomy: Taxonomy | None = None,
                   repeats_allowed: Callable[[M], bool] = lambda rec: False,
                   ) -> list[tuple[str, M]]:
    """The (file, line, object) ``records`` that pass ``schema``, each with where it stands
    ("file:line"). Every schema problem, repeated id (unless ``repeats_allowed``) and, with
    ``taxonomy``, label problem (:func:`label_problems`) is added to ``problems``."""
    seen: dict[str, str] = {}
    valid: list[tuple[str, M]] = []
    for file, line, obj in records:
        where = f"{Path(file).name}:{line}"
        try:
            rec = schema.model_validate(obj)
        except ValidationError as e:
            problems.append(schema_problem(where, obj, e))
            continue
        if taxonomy is not None and isinstance(rec, PassageText):
            problems += label_problems(rec, where, taxonomy)
        rec_id = str(getattr(rec, "id", ""))
        if rec_id in seen and not repeats_allowed(rec):
            problems.append(f"{where}: duplicate id {rec_id} (first at {seen[rec_id]})")
        seen.setdefault(rec_id, where)
        valid.append((where, rec))
    return valid


def find_near_duplicates(ids: list[str], texts: list[str], *,
                         threshold: float = NEAR_DUPLICATE_COSINE,
                         exact: bool = False) -> list[tuple[str, str, float]]:
    """Pairs of texts whose TF-IDF cosine is at least ``threshold`` (exact copies left out
    unless ``exact``)."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    matrix = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
    pairs = []
    step = 2000
    for start in range(0, matrix.shape[0], step):
        sims = (matrix[start:start + step] @ matrix.T).toarray()
        rows, cols = np.nonzero(sims >= threshold)
        for i, j in zip(rows, cols, strict=True):
            gi = start + i
            if gi < j and (exact or sims[i, j] < 0.9999):
                pairs.append((ids[gi], ids[j], float(sims[i, j])))
    return pairs


def load_corpus(folder: Path, taxonomy: Taxonomy, *, validate: bool = True,
                near_duplicates: bool = True) -> pd.DataFrame:
    """All ``*.jsonl`` under ``folder`` as one frame (see module docstring for columns).

    Reviewed labels supersede authored ones for the same text; among reviews of one passage
    the newest wins. Raises :class:`DataValidationError` listing every problem.
    """
    files = sorted(Path(folder).glob("*.jsonl"))
    if not files:
        raise DataValidationError(str(folder), ["no *.jsonl files of labelled passages"])
    records = [(str(f), n, obj) for f in files for n, obj in read_records(f)]
    if validate:
        problems = validate_records(records, taxonomy, near_duplicates=near_duplicates)
        if problems:
            raise DataValidationError(str(folder), problems)
    rows = []
    for file, _, obj in records:
        row = dict(obj)
        row["file"] = Path(file).name
        rows.append(row)
    frame = pd.DataFrame(rows)
    for col in ("heading", "force", "kind", "context"):
        if col not in frame:
            frame[col] = None
    frame["heading"] = frame["heading"].fillna("").astype(str)
    frame["context"] = frame["context"].fillna("").astype(str)
    frame = _apply_reviews(frame)
    # The genre a passage was written in: the new genres name it, older passages their voice.
    genre = frame["genre"] if "genre" in frame else pd.Series(None, index=frame.index)
    frame["genre"] = genre.fillna(frame["voice"]).astype(str)
    for col in ("source_url", "retrieved"):
        if col not in frame:
            frame[col] = None
    return add_label_columns(frame, taxonomy).reset_index(drop=True)


def _apply_reviews(frame: pd.DataFrame) -> pd.DataFrame:
    """Reviewed rows override earlier labels of the same text; the newest review wins."""
    if "timestamp" not in frame:
        return frame
    frame = frame.copy()
    frame["_key"] = frame["text"].map(normalise_text)
    frame["_order"] = frame["timestamp"].fillna("").astype(str)
    frame["_review"] = (frame["source"] == "review").astype(int)
    frame = frame.sort_values(["_key", "_review", "_order"]).drop_duplicates("_key", keep="last")
    return frame.drop(columns=["_key", "_order", "_review"]).sort_index()


def corpus_sha256(folder: Path) -> str:
    """One hash over every labelled file and its depth annotations, for the model card."""
    import hashlib

    h = hashlib.sha256()
    folder = Path(folder)
    for f in [*sorted(folder.glob("*.jsonl")), *sorted(folder.glob("depth/*.jsonl"))]:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()

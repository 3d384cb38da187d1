"""The field set: passages that follow real public writing, kept for evaluation only.

``data/field/*.jsonl`` holds close paraphrases of passages read on public pages by forces,
PCCs, inspectorates, national bodies, charities, partnerships, Parliament and the press,
one JSON object per line, labelled by the labelling guide. It is never trained on.

The set is split by source page into a calibration part (thresholds may be chosen on it)
and a test part (every field score is reported on it only), so no page straddles the two.

Columns of the frame returned by :func:`load_field`: id, text, labels (list), subpoints
(list), kind, genre, source_url, page (the normalised URL), retrieved, created,
paraphrased_by, part (``calibration`` or ``test``), file, heading and context (empty), plus
one 0/1 column per taxonomy category.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qsl, urlencode, urlsplit

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .corpus import (
    PassageText,
    add_label_columns,
    exact_duplicate_problems,
    find_near_duplicates,
    in_hashed_fraction,
    one_of,
    read_records,
    unique_records,
)
from .errors import DataValidationError
from .taxonomy import Taxonomy

GENRES = ("force_web", "foi_answer", "pcc_publication", "inspection_report",
          "national_guidance", "news", "charity_service", "safeguarding_partnership",
          "parliamentary", "supply_chain_statement")
SECOND_LABELS_FILE = "second_labels.jsonl"


class FieldPassage(PassageText):
    """One field passage with its provenance: the page it follows, when, and by whom."""

    model_config = ConfigDict(extra="forbid")

    subpoints: list[str] = []
    kind: str
    genre: Annotated[str, one_of(GENRES)]
    source_url: str
    retrieved: str
    created: str
    paraphrased_by: str = Field(min_length=1)

    @field_validator("source_url")
    @classmethod
    def _is_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"source_url is not an http(s) URL: {v!r}")
        return v

    @field_validator("retrieved", "created")
    @classmethod
    def _iso_date(cls, v: str) -> str:
        try:
            dt.date.fromisoformat(v)
        except ValueError as e:
            raise ValueError(f"not an ISO date: {v!r}") from e
        return v


class SecondLabel(BaseModel):
    """An independent second labelling of one field passage."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    labels: list[str]
    labeller: str = Field(min_length=1)
    created: str


_TRACKING = re.compile(r"^(utm_|ns_|at_|fbclid|gclid|ito$|ref$|cmpid)", re.I)


def page_key(url: str) -> str:
    """The page a URL names: scheme, ``www.``, fragment, trailing slash and tracking
    parameters ignored, so the same page reached by two links counts once. Other query
    parameters are kept: on many sites (``?id=...``) they are what names the page."""
    parts = urlsplit(str(url).strip())
    host = parts.netloc.lower().removeprefix("www.")
    query = sorted(kv for kv in parse_qsl(parts.query, keep_blank_values=True)
                   if not _TRACKING.match(kv[0]))
    key = f"{host}{parts.path.rstrip('/')}".lower()
    return f"{key}?{urlencode(query)}" if query else key


def validate_field_records(records: list[tuple[str, int, dict[str, object]]],
                           taxonomy: Taxonomy) -> list[str]:
    """Every schema problem of the field set, naming the offending file, line and id."""
    problems: list[str] = []
    valid = [rec for _, rec in unique_records(records, FieldPassage, problems,
                                              taxonomy=taxonomy)]
    return problems + exact_duplicate_problems(valid)


def load_field(folder: Path, taxonomy: Taxonomy, *, calibration_fraction: float = 0.4,
               seed: int = 11) -> pd.DataFrame:
    """Every field passage (see the module docstring for columns), validated.

    Raises :class:`DataValidationError` listing every problem.
    """
    files = sorted(f for f in Path(folder).glob("*.jsonl") if f.name != SECOND_LABELS_FILE)
    if not files:
        raise DataValidationError(str(folder), ["no *.jsonl files of field passages"])
    records = [(str(f), n, obj) for f in files for n, obj in read_records(f)]
    problems = validate_field_records(records, taxonomy)
    if problems:
        raise DataValidationError(str(folder), problems)
    frame = pd.DataFrame([{**obj, "file": Path(file).name} for file, _, obj in records])
    frame["page"] = frame["source_url"].map(page_key)
    frame["part"] = frame["page"].map(
        lambda p: "calibration" if in_hashed_fraction(p, calibration_fraction, seed) else "test")
    frame["heading"] = ""
    frame["context"] = ""
    return add_label_columns(frame, taxonomy)


def load_second_labels(folder: Path, taxonomy: Taxonomy) -> pd.DataFrame:
    """The second labeller's labels (id, labels, labeller, created), validated."""
    path = Path(folder) / SECOND_LABELS_FILE
    rows, problems = [], []
    for n, obj in read_records(path):
        try:
            rec = SecondLabel.model_validate(obj)
        except ValidationError as e:
            problems.append(f"line {n}: {e.errors()[0]['msg']}")
            continue
        if set(rec.labels) - set(taxonomy.labels):
            problems.append(f"line {n} id={rec.id}: unknown label(s)")
        rows.append(rec.model_dump())
    if problems:
        raise DataValidationError(str(path), problems)
    return pd.DataFrame(rows)


def agreement(field: pd.DataFrame, second: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """Cohen's kappa and raw agreement per category between the first and second labeller.

    Columns: category, n, first_positive, second_positive, agreement, kappa.
    """
    from sklearn.metrics import cohen_kappa_score

    merged = field[["id", "labels"]].merge(second[["id", "labels"]], on="id",
                                           suffixes=("_first", "_second"))
    rows = []
    for cat in taxonomy.labels:
        a = merged["labels_first"].map(lambda labs, c=cat: int(c in labs))
        b = merged["labels_second"].map(lambda labs, c=cat: int(c in labs))
        rows.append({"category": cat, "n": int(len(merged)), "first_positive": int(a.sum()),
                     "second_positive": int(b.sum()), "agreement": float((a == b).mean()),
                     "kappa": float(cohen_kappa_score(a, b))})
    return pd.DataFrame(rows)


def overlap_with_training(field: pd.DataFrame, corpus: pd.DataFrame, *,
                          threshold: float = 0.8) -> tuple[list[str], list[tuple[str, str, float]]]:
    """(pages that both sets follow, field/training pairs at TF-IDF cosine >= threshold).

    Both must be empty: the field set measures transfer to writing the model never saw.
    """
    train_pages = {page_key(u) for u in corpus.get("source_url", pd.Series(dtype=str)).dropna()}
    shared = sorted(set(field["page"]) & train_pages)
    ids = [f"field:{i}" for i in field["id"]] + [f"train:{i}" for i in corpus["id"]]
    texts = list(field["text"]) + list(corpus["text"])
    pairs = [(a, b, c) for a, b, c in find_near_duplicates(ids, texts, threshold=threshold,
                                                           exact=True)
             if a.startswith("field:") != b.startswith("field:")]
    return shared, pairs

"""The append-only label file, ``data/labelled/reviewed.jsonl``.

Reviewed labels are appended under a lock, atomically, each with annotator, timestamp, model
version and the model's prediction at the time. Nothing already there is ever rewritten or
dropped: a newer decision supersedes an older one (the newest review wins).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import pandas as pd

from ..atomic import append_jsonl, locked
from ..corpus import normalise_text, read_records
from ..errors import DataValidationError
from ..taxonomy import Taxonomy
from .formats import ModelPrediction, ReviewRow, read_review_file

#: A line of a JSONL file as read back: its fields are whatever the file holds (reviewed.jsonl
#: is written here, but can be edited by hand), so each use checks what it reads.
StoredRecord = Mapping[str, object]


class ReviewRecord(TypedDict):
    """One decision as appended to reviewed.jsonl: a labelled passage (the schema of
    data/README.md, ``voice`` and ``source`` "review") with its provenance: who, when, from
    which file (``import_file``), the model's version and prediction at the time."""

    id: str
    text: str
    labels: list[str]
    voice: str
    kind: str
    source: str
    author: str
    annotator: str
    created: str
    timestamp: str
    passage_id: str
    heading: str
    force: str
    model_version: str
    model_prediction: ModelPrediction
    notes: str
    import_file: str
    annotator_ref: str


class Decision(TypedDict):
    """An annotator's decision on a passage, as the review page shows it back."""

    labels: list[str]
    notes: str
    timestamp: str
    id: str | None


@dataclass(frozen=True)
class KnownPassage:
    """A scoring run's passage, to fill in a decision that names only its passage id."""

    text: str
    heading: str
    force: str


def json_records(path: Path) -> list[StoredRecord]:
    """The objects of a JSONL file ([] when it does not exist). A line that is not JSON
    raises :class:`DataValidationError` naming the file and the line, not a traceback."""
    return [obj for _, obj in read_records(path)] if path.exists() else []


def validate_rows(rows: list[ReviewRow], taxonomy: Taxonomy,
                  known: Mapping[str, KnownPassage]) -> list[str]:
    """Every problem, numbered by row: unknown labels, unknown passage ids, missing text."""
    problems = []
    valid = set(taxonomy.labels)
    for r in rows:
        bad = sorted(set(r.labels) - valid)
        if bad:
            problems.append(f"row {r.row}: unknown label(s) {bad}; known: {sorted(valid)}")
        if not r.text.strip():
            if r.passage_id and r.passage_id in known:
                passage = known[r.passage_id]
                r.text = passage.text
                r.heading = r.heading or passage.heading
                r.force = r.force or passage.force
            elif r.passage_id:
                problems.append(f"row {r.row}: unknown passage id {r.passage_id!r} and no text")
            else:
                problems.append(f"row {r.row}: needs a passage_id or the passage text")
    return problems


def review_record(r: ReviewRow, annotator: str, source_file: str,
                  now: dt.datetime) -> ReviewRecord:
    """The labelled-corpus record for one decision, with full provenance."""
    key = r.passage_id or normalise_text(r.text)
    identity = json.dumps([key, annotator, sorted(r.labels), r.notes])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return ReviewRecord(
        id=f"review-{digest}", text=r.text, labels=sorted(set(r.labels)), voice="review",
        kind="content" if r.labels else "other_none", source="review", author=annotator,
        annotator=annotator, created=now.date().isoformat(),
        timestamp=now.isoformat(timespec="seconds"), passage_id=r.passage_id,
        heading=r.heading, force=r.force, model_version=r.model_version,
        model_prediction=r.model_prediction, notes=r.notes, import_file=source_file,
        annotator_ref=r.annotator_ref,
    )


def existing_review_ids(reviewed: Path) -> set[str]:
    """The ids of the records already in ``reviewed``."""
    return {str(rec.get("id")) for rec in json_records(reviewed)}


@dataclass(frozen=True)
class ImportResult:
    """What an import did: rows read, records added, rows already recorded, and where."""

    n_rows: int
    n_added: int
    n_already: int
    path: Path
    records: tuple[ReviewRecord, ...] = ()  # the records added, in order


def import_reviews(path: Path, *, annotator: str, taxonomy: Taxonomy, reviewed: Path,
                   known: Mapping[str, KnownPassage] | None = None,
                   now: dt.datetime | None = None) -> ImportResult:
    """Validate a whole review file, then append its new decisions to ``reviewed``.

    Nothing is written if any row is bad. Decisions already imported (same passage,
    annotator, labels and notes) are not added again.
    """
    if not annotator.strip():
        raise DataValidationError(str(path), ["--annotator is required: who gave these labels?"])
    rows, problems = read_review_file(path, taxonomy.labels)
    return save_reviews(rows, annotator=annotator, taxonomy=taxonomy, reviewed=reviewed,
                        source=str(path), known=known, now=now, read_problems=problems)


def _passage_matches(rec: StoredRecord, row: ReviewRow) -> bool:
    if row.passage_id and str(rec.get("passage_id") or "") == row.passage_id:
        return True
    return normalise_text(rec.get("text", "")) == normalise_text(row.text)


def save_reviews(rows: list[ReviewRow], *, annotator: str, taxonomy: Taxonomy, reviewed: Path,
                 source: str, known: Mapping[str, KnownPassage] | None = None,
                 now: dt.datetime | None = None, read_problems: list[str] | None = None,
                 supersede: bool = False) -> ImportResult:
    """Validate decisions, then append the new ones to ``reviewed`` under the lock, atomically.

    The one write path for reviewed labels: ``review import`` (rows read from a file) and the
    review page (one row per decision) both come here. Nothing is written if any row is bad.
    A decision already recorded (same passage, annotator, labels and notes: same id) is not
    added again. With ``supersede`` (the review page, where an analyst can undo and re-decide),
    a decision is always made the annotator's newest for its passage: if an identical older
    record has since been overridden by a different one, it is recorded again under a new id,
    and its timestamp is kept strictly after the annotator's earlier ones for that passage, so
    that "newest review wins" picks it.
    """
    if not annotator.strip():
        raise DataValidationError(source, ["--annotator is required: who gave these labels?"])
    problems = list(read_problems or []) + validate_rows(rows, taxonomy, known or {})
    if problems:
        raise DataValidationError(source, problems)
    annotator = annotator.strip()
    now = now or dt.datetime.now(dt.timezone.utc)
    source_name = Path(source).name
    with locked(reviewed):
        have = existing_review_ids(reviewed)
        if supersede:
            records = _superseding_records(rows, annotator, source_name, now, reviewed, have)
        else:
            records = [review_record(r, annotator, source_name, now) for r in rows]
        new, seen = [], set()
        for rec in records:
            if rec["id"] not in have and rec["id"] not in seen:
                new.append(rec)
                seen.add(rec["id"])
        if new:
            append_jsonl(reviewed, [dict(rec) for rec in new])
    return ImportResult(len(rows), len(new), len(rows) - len(new), reviewed, tuple(new))


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _superseding_records(rows: list[ReviewRow], annotator: str, source_name: str, now: dt.datetime,
                         reviewed: Path, have: set[str]) -> list[ReviewRecord]:
    """Records that make each row the annotator's newest decision for its passage
    (see save_reviews)."""
    mine: list[StoredRecord] = [rec for rec in json_records(reviewed)
                                if rec.get("annotator") == annotator]
    records = []
    for r in rows:
        earlier = sorted((rec for rec in mine if _passage_matches(rec, r)),
                         key=lambda rec: str(rec.get("timestamp")))
        when = _aware(now).replace(microsecond=0)
        if earlier:
            last = _aware(dt.datetime.fromisoformat(str(earlier[-1]["timestamp"])))
            when = max(when, last + dt.timedelta(seconds=1))
        rec = review_record(r, annotator, source_name, when)
        if earlier and earlier[-1]["id"] == rec["id"]:
            continue  # already the annotator's newest decision for this passage
        if rec["id"] in have:  # the same decision as an older, since overridden one: record it anew
            renewed = f"{rec['id']}|{rec['timestamp']}"
            rec["id"] = "review-" + hashlib.sha256(renewed.encode()).hexdigest()[:16]
        records.append(rec)
        mine.append(rec)
    return records


def conflicts(reviewed: Path) -> pd.DataFrame:
    """Passages whose annotators' latest labels disagree (every label kept; listed here).

    Columns: passage (id or text start), annotator, labels, timestamp, text.
    """
    cols = ["passage", "annotator", "labels", "timestamp", "text"]
    frame = pd.DataFrame(json_records(reviewed))
    if frame.empty:
        return pd.DataFrame(columns=cols)
    frame["passage"] = [p or normalise_text(t)[:60]
                        for p, t in zip(frame["passage_id"].fillna(""), frame["text"], strict=True)]
    latest = frame.sort_values("timestamp").groupby(["passage", "annotator"], as_index=False).last()
    latest["labels_key"] = latest["labels"].map(lambda x: ";".join(sorted(x)))
    disputed = latest.groupby("passage")["labels_key"].nunique()
    disputed = disputed[disputed > 1].index
    out = latest[latest["passage"].isin(disputed)].copy()
    out["labels"] = out["labels_key"]
    return out[cols].sort_values(["passage", "annotator"]).reset_index(drop=True)


def decision_of(rec: StoredRecord) -> Decision:
    """The decision a reviewed record holds (its labels, notes, timestamp and id)."""
    labels, rec_id = rec.get("labels"), rec.get("id")
    return Decision(labels=[str(x) for x in labels] if isinstance(labels, list) else [],
                    notes=str(rec.get("notes") or ""), timestamp=str(rec.get("timestamp") or ""),
                    id=None if rec_id is None else str(rec_id))


def my_reviews(reviewed: Path,
               annotator: str) -> tuple[dict[str, Decision], dict[str, Decision]]:
    """This annotator's newest decision per passage: (by passage id, by normalised text)."""
    by_id: dict[str, Decision] = {}
    by_text: dict[str, Decision] = {}
    recs = sorted(
        (r for r in json_records(Path(reviewed)) if r.get("annotator") == annotator.strip()),
        key=lambda r: str(r.get("timestamp")),
    )
    for r in recs:
        decision = decision_of(r)
        if r.get("passage_id"):
            by_id[str(r["passage_id"])] = decision
        by_text[normalise_text(r.get("text", ""))] = decision
    return by_id, by_text


def known_passages_in(passages: pd.DataFrame) -> dict[str, KnownPassage]:
    """passage_id -> passage, from a scoring run's passages (columns passage_id, text,
    heading, force), to resolve imported decisions that carry only ids."""
    return {str(pid): KnownPassage(str(text), str(heading or ""), str(force or ""))
            for pid, text, heading, force in zip(passages["passage_id"], passages["text"],
                                                 passages["heading"], passages["force"],
                                                 strict=True)}


def known_passages(run_dir: Path) -> dict[str, KnownPassage]:
    """:func:`known_passages_in` a scoring run folder."""
    return known_passages_in(pd.read_parquet(Path(run_dir) / "passages.parquet",
                                             columns=["passage_id", "text", "heading", "force"]))

"""The append-only label file, ``data/labelled/reviewed.jsonl``.

Reviewed labels are appended under a lock, atomically, each with annotator, timestamp, model
version and the model's prediction at the time. Nothing already there is ever rewritten or
dropped: a newer decision supersedes an older one (the newest review wins).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import append_jsonl, locked
from ..corpus import normalise_text, read_records
from ..errors import DataValidationError
from ..taxonomy import Taxonomy
from .formats import ReviewRow, read_review_file


def json_records(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSONL file ([] when it does not exist). A line that is not JSON
    raises :class:`DataValidationError` naming the file and the line, not a traceback."""
    return [obj for _, obj in read_records(path)] if path.exists() else []


def validate_rows(rows: list[ReviewRow], taxonomy: Taxonomy,
                  known: dict[str, dict[str, Any]]) -> list[str]:
    """Every problem, numbered by row: unknown labels, unknown passage ids, missing text."""
    problems = []
    valid = set(taxonomy.labels)
    for r in rows:
        bad = sorted(set(r.labels) - valid)
        if bad:
            problems.append(f"row {r.row}: unknown label(s) {bad}; known: {sorted(valid)}")
        if not r.text.strip():
            if r.passage_id and r.passage_id in known:
                r.text = str(known[r.passage_id]["text"])
                r.heading = r.heading or str(known[r.passage_id].get("heading") or "")
                r.force = r.force or str(known[r.passage_id].get("force") or "")
            elif r.passage_id:
                problems.append(f"row {r.row}: unknown passage id {r.passage_id!r} and no text")
            else:
                problems.append(f"row {r.row}: needs a passage_id or the passage text")
    return problems


def review_record(r: ReviewRow, annotator: str, source_file: str,
                  now: dt.datetime) -> dict[str, Any]:
    """The labelled-corpus record for one decision, with full provenance."""
    key = r.passage_id or normalise_text(r.text)
    identity = json.dumps([key, annotator, sorted(r.labels), r.notes])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return {
        "id": f"review-{digest}", "text": r.text, "labels": sorted(set(r.labels)),
        "voice": "review",
        "kind": "content" if r.labels else "other_none", "source": "review", "author": annotator,
        "annotator": annotator, "created": now.date().isoformat(),
        "timestamp": now.isoformat(timespec="seconds"), "passage_id": r.passage_id,
        "heading": r.heading,
        "force": r.force, "model_version": r.model_version, "model_prediction": r.model_prediction,
        "notes": r.notes, "import_file": source_file, "annotator_ref": r.annotator_ref,
    }


def existing_review_ids(reviewed: Path) -> set[str]:
    return {str(rec.get("id")) for rec in json_records(reviewed)}


@dataclass(frozen=True)
class ImportResult:
    n_rows: int
    n_added: int
    n_already: int
    path: Path
    records: tuple[dict[str, Any], ...] = ()  # the records added, in order


def import_reviews(path: Path, *, annotator: str, taxonomy: Taxonomy, reviewed: Path,
                   known: dict[str, dict[str, Any]] | None = None,
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


def _passage_matches(rec: dict[str, Any], row: ReviewRow) -> bool:
    if row.passage_id and str(rec.get("passage_id") or "") == row.passage_id:
        return True
    return normalise_text(rec.get("text", "")) == normalise_text(row.text)


def save_reviews(rows: list[ReviewRow], *, annotator: str, taxonomy: Taxonomy, reviewed: Path,
                 source: str, known: dict[str, dict[str, Any]] | None = None,
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
            append_jsonl(reviewed, new)
    return ImportResult(len(rows), len(new), len(rows) - len(new), reviewed, tuple(new))


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _superseding_records(rows: list[ReviewRow], annotator: str, source_name: str, now: dt.datetime,
                         reviewed: Path, have: set[str]) -> list[dict[str, Any]]:
    """Records that make each row the annotator's newest decision for its passage
    (see save_reviews)."""
    mine = [rec for rec in json_records(reviewed) if rec.get("annotator") == annotator]
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


def my_reviews(
    reviewed: Path, annotator: str
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """This annotator's newest decision per passage: (by passage id, by normalised text)."""
    by_id: dict[str, dict[str, Any]] = {}
    by_text: dict[str, dict[str, Any]] = {}
    recs = sorted(
        (r for r in json_records(Path(reviewed)) if r.get("annotator") == annotator.strip()),
        key=lambda r: str(r.get("timestamp")),
    )
    for r in recs:
        decision = {
            "labels": list(r.get("labels") or []),
            "notes": str(r.get("notes") or ""),
            "timestamp": str(r.get("timestamp") or ""),
            "id": r.get("id"),
        }
        if r.get("passage_id"):
            by_id[str(r["passage_id"])] = decision
        by_text[normalise_text(r.get("text", ""))] = decision
    return by_id, by_text


def known_passages(run_dir: Path) -> dict[str, dict[str, Any]]:
    """passage_id -> passage fields, from a scoring run, to resolve imports that carry only ids."""
    frame = pd.read_parquet(Path(run_dir) / "passages.parquet",
                            columns=["passage_id", "text", "heading", "force"])
    return {r["passage_id"]: r for r in frame.to_dict("records")}

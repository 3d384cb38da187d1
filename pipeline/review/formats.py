"""The review file formats, one codec each, chosen by the file's extension:

- ``.csv``: a spreadsheet, one row per passage with a 0/1 column per category, ``notes``, and
  the model's probabilities (``p_<category>``); cells a spreadsheet would run as formulas are
  quoted on writing and restored on import;
- ``.jsonl``: one :class:`QueueRecord` per line;
- ``.labelstudio.json``: Label Studio tasks (the model's labels as pre-annotations), with the
  labelling interface written beside it (``.labelstudio.xml``); reading takes Label Studio's
  JSON export, any ``.json``.

Each codec writes a queue, reads a queue back (for the review page) and reads analysts'
decisions back (for import). ``review audit --out`` writes its ranking here too.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import pandas as pd

from ..atomic import (
    atomic_open,
    from_spreadsheet_safe,
    spreadsheet_safe,
    write_frame_csv,
    write_jsonl,
)
from ..corpus import iter_jsonl
from ..errors import DataValidationError, ForcecovError
from .queue import QueueItem, RunQueue, queue_from_run

if TYPE_CHECKING:
    from ..project import Project

LABEL_STUDIO_SUFFIX = ".labelstudio.json"
QUEUE_FORMATS = f".csv, .jsonl or {LABEL_STUDIO_SUFFIX}"


class ModelPrediction(TypedDict, total=False):
    """What the model said of a passage when it was reviewed: its probabilities per category
    (from a .csv or .jsonl queue, or the review page) and its labels (Label Studio, the page)."""

    probs: dict[str, float]
    labels: list[str]


@dataclass
class ReviewRow:
    """One analyst decision read from a file (or made on the review page), before it becomes a
    labelled record. ``row`` numbers it as the analyst sees the file (a CSV's header is row 1);
    an import resolves a missing ``text`` from its ``passage_id``, so the row is mutable."""

    row: int
    passage_id: str
    text: str
    labels: list[str]
    notes: str = ""
    heading: str = ""
    force: str = ""
    model_version: str = ""
    model_prediction: ModelPrediction = field(default_factory=ModelPrediction)
    annotator_ref: str = ""


class QueueRecord(TypedDict):
    """A queued passage as the .jsonl format writes it (a :class:`QueueItem` plus ``notes``)."""

    passage_id: str
    text: str
    heading: str
    force: str
    page: int
    source_path: str
    model_version: str
    probs: dict[str, float]
    labels: list[str]
    notes: str
    uncertainty: float


def _queue_record(item: QueueItem) -> QueueRecord:
    return QueueRecord(passage_id=item.passage_id, text=item.text, heading=item.heading,
                       force=item.force, page=item.page, source_path=item.source_path,
                       model_version=item.model_version, probs=dict(item.probs),
                       labels=list(item.labels), notes="", uncertainty=item.uncertainty)


# ----------------------------------------------------------------------------- .csv

def _write_csv(path: Path, items: Sequence[QueueItem], labels: list[str]) -> None:
    fields = ["passage_id", "force", "page", "heading", "text", *labels, "notes",
              "model_version", *[f"p_{lab}" for lab in labels], "source_path"]
    with atomic_open(path, newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for it in items:
            plain = {"passage_id": it.passage_id, "force": it.force, "page": it.page,
                     "heading": it.heading, "text": it.text, "notes": "",
                     "model_version": it.model_version, "source_path": it.source_path}
            writer.writerow({**{k: spreadsheet_safe(v) for k, v in plain.items()},
                             **{lab: int(lab in it.labels) for lab in labels},
                             **{f"p_{lab}": round(it.probs[lab], 4) for lab in labels}})


def _csv_probs(rec: Mapping[str, str | None], labels: list[str]) -> dict[str, float]:
    return {lab: float(rec[f"p_{lab}"] or "") for lab in labels
            if rec.get(f"p_{lab}") not in (None, "")}


def _read_csv_queue(path: Path, labels: list[str]) -> list[QueueItem]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return [QueueItem.from_fields(
                    rec, labels, _csv_probs(rec, labels),
                    [lab for lab in labels
                     if str(rec.get(lab, "")).strip() in ("1", "1.0", "true", "yes")])
                for rec in csv.DictReader(fh)]


def _truthy(value: str, where: str, problems: list[str]) -> bool | None:
    v = str(value).strip().lower()
    if v in ("1", "1.0", "true", "yes", "y", "x"):
        return True
    if v in ("0", "0.0", "false", "no", "n"):
        return False
    if v in ("", "nan", "none"):
        return None
    problems.append(f"{where}: expected 0 or 1, got {value!r}")
    return None


def _read_csv_reviews(path: Path, labels: list[str], problems: list[str]) -> list[ReviewRow]:
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    missing = [lab for lab in labels if lab not in (reader.fieldnames or [])]
    if missing:
        problems.append(f"header: missing category column(s) {missing}")
        return []
    rows = []
    for n, rec in enumerate(reader, start=2):  # row 1 is the header
        values = {lab: _truthy(rec.get(lab, ""), f"row {n}, column {lab}", problems)
                  for lab in labels}
        if all(v is None for v in values.values()) and not (rec.get("notes") or "").strip():
            continue  # not reviewed yet
        probs = _csv_probs(rec, labels)
        cell = {k: from_spreadsheet_safe(rec.get(k) or "")
                for k in ("passage_id", "text", "notes", "heading", "force", "model_version")}
        rows.append(ReviewRow(n, cell["passage_id"].strip(), cell["text"],
                              [lab for lab, v in values.items() if v],
                              cell["notes"].strip(), cell["heading"], cell["force"],
                              cell["model_version"],
                              ModelPrediction(probs=probs) if probs else ModelPrediction()))
    return rows


# ----------------------------------------------------------------------------- .jsonl

def _write_jsonl(path: Path, items: Sequence[QueueItem], labels: list[str]) -> None:
    write_jsonl(path, [dict(_queue_record(it)) for it in items])


def _read_jsonl_queue(path: Path, labels: list[str]) -> list[QueueItem]:
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        rec = json.loads(line)
        if not isinstance(rec, dict):
            raise DataValidationError(str(path), [f"row {n}: not a JSON object"])
        raw_probs, raw_labels = rec.get("probs"), rec.get("labels")
        probs = raw_probs if isinstance(raw_probs, dict) else {}
        predicted = raw_labels if isinstance(raw_labels, list) else []
        items.append(QueueItem.from_fields(rec, labels, probs, [str(x) for x in predicted]))
    return items


def _review_from_object(n: int, obj: Mapping[str, object],
                        problems: list[str]) -> ReviewRow | None:
    labels, probs = obj.get("labels"), obj.get("probs")
    if not isinstance(labels, list):
        problems.append(f"row {n}: 'labels' must be a list of category ids")
        return None
    return ReviewRow(n, str(obj.get("passage_id") or ""), str(obj.get("text") or ""),
                     [str(x) for x in labels], str(obj.get("notes") or ""),
                     str(obj.get("heading") or ""),
                     str(obj.get("force") or ""), str(obj.get("model_version") or ""),
                     ModelPrediction(probs=probs) if isinstance(probs, dict)
                     else ModelPrediction())


def _read_jsonl_reviews(path: Path, labels: list[str], problems: list[str]) -> list[ReviewRow]:
    rows = []
    for n, obj, problem in iter_jsonl(path):
        if problem:
            problems.append(f"row {n}: {problem}")
        elif not isinstance(obj, dict):
            problems.append(f"row {n}: not a JSON object")
        elif (row := _review_from_object(n, obj, problems)) is not None:
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- Label Studio

def label_studio_config(labels: list[str]) -> str:
    """The Label Studio labelling interface for the queue (multi-choice over the taxonomy)."""
    choices = "\n".join(f'    <Choice value="{lab}"/>' for lab in labels)
    return (f'<View>\n  <Header value="$heading"/>\n  <Text name="text" value="$text"/>\n'
            '  <Choices name="labels" toName="text" choice="multiple" showInLine="false">\n'
            f'{choices}\n  </Choices>\n'
            '  <TextArea name="notes" toName="text" placeholder="notes" editable="true"/>\n'
            '</View>\n')


def _write_label_studio(path: Path, items: Sequence[QueueItem], labels: list[str]) -> None:
    tasks = []
    for it in items:
        rec = _queue_record(it)
        data = {k: v for k, v in rec.items() if k not in ("probs", "labels", "notes")}
        tasks.append({"data": data,
                      "predictions": [{"model_version": it.model_version,
                                       "score": 1 - it.uncertainty,
                                       "result": [{"from_name": "labels", "to_name": "text",
                                                   "type": "choices",
                                                   "value": {"choices": rec["labels"]}}]}]})
    with atomic_open(path) as fh:
        json.dump(tasks, fh, ensure_ascii=False, indent=1)
    config = path.with_name(path.name[: -len(LABEL_STUDIO_SUFFIX)] + ".labelstudio.xml")
    with atomic_open(config) as fh:
        fh.write(label_studio_config(labels))


# Label Studio files are JSON of any shape: these helpers take what json.loads gave (Any), and
# a shape they cannot walk raises, which read_queue reports as "not a queue".
def _first_prediction(task: Mapping[str, Any]) -> Mapping[str, Any]:
    """A task's first prediction (the model's pre-annotation), or {}."""
    preds = task.get("predictions")
    return preds[0] if isinstance(preds, list) and preds else {}


def _predicted_choices(prediction: Mapping[str, Any]) -> list[str]:
    """The labels a prediction chose."""
    return [str(c) for r in prediction.get("result", [])
            for c in r.get("value", {}).get("choices", [])]


def _read_label_studio_queue(path: Path, labels: list[str]) -> list[QueueItem]:
    tasks = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(tasks, list):
        raise DataValidationError(str(path), ["a Label Studio queue is a JSON list of tasks"])
    items = []
    for task in tasks:
        data = task.get("data", {}) if isinstance(task, dict) else {}
        pred = _first_prediction(task) if isinstance(task, dict) else {}
        rec = {**data, "model_version": data.get("model_version") or pred.get("model_version")}
        items.append(QueueItem.from_fields(rec, labels, {}, _predicted_choices(pred)))
    return items


def _read_label_studio_reviews(path: Path, labels: list[str],
                               problems: list[str]) -> list[ReviewRow]:
    """Label Studio's JSON export: tasks with ``data`` and ``annotations``."""
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        problems.append(f"file: not valid JSON ({e.msg})")
        return []
    if not isinstance(tasks, list):
        problems.append("file: a Label Studio export is a JSON list of tasks")
        return []
    rows = []
    for n, task in enumerate(tasks, start=1):
        data = task.get("data", {}) if isinstance(task, dict) else {}
        annotations = [a for a in (task.get("annotations") or []) if not a.get("was_cancelled")] \
            if isinstance(task, dict) else []
        if not annotations:
            continue  # task not annotated
        for a in annotations:
            choices, notes = [], ""
            for r in a.get("result", []):
                value = r.get("value", {})
                if r.get("from_name") == "labels" or "choices" in value:
                    choices += value.get("choices", [])
                if r.get("from_name") == "notes" or "text" in value:
                    notes = " ".join(value.get("text", []))
            pred = _first_prediction(task)
            rows.append(ReviewRow(n, str(data.get("passage_id") or ""), str(data.get("text") or ""),
                                  [str(c) for c in choices], notes, str(data.get("heading") or ""),
                                  str(data.get("force") or ""),
                                  str(data.get("model_version") or pred.get("model_version") or ""),
                                  ModelPrediction(labels=_predicted_choices(pred)) if pred
                                  else ModelPrediction(),
                                  str(a.get("completed_by") or "")))
    return rows


# ----------------------------------------------------------------------------- by extension

@dataclass(frozen=True)
class Codec:
    """One format: how a queue is written, read back as items, and read back as decisions."""

    write: Callable[[Path, Sequence[QueueItem], list[str]], None]
    read_queue: Callable[[Path, list[str]], list[QueueItem]]
    read_reviews: Callable[[Path, list[str], list[str]], list[ReviewRow]]


CSV = Codec(_write_csv, _read_csv_queue, _read_csv_reviews)
JSONL = Codec(_write_jsonl, _read_jsonl_queue, _read_jsonl_reviews)
LABEL_STUDIO = Codec(_write_label_studio, _read_label_studio_queue, _read_label_studio_reviews)


def codec_for(path: Path, *, writing: bool) -> Codec | None:
    """The codec a file's extension names (None for another extension). Label Studio files
    are written as ``.labelstudio.json``; its exports, any ``.json``, are read."""
    name = path.name.lower()
    if name.endswith(LABEL_STUDIO_SUFFIX if writing else ".json"):
        return LABEL_STUDIO
    if name.endswith(".jsonl"):
        return JSONL
    if name.endswith(".csv"):
        return CSV
    return None


def write_queue(items: Sequence[QueueItem], path: Path, labels: list[str]) -> None:
    """Write the queue in the format the extension names: .csv, .jsonl or .labelstudio.json.
    ``labels`` are the taxonomy's categories (the CSV's columns, Label Studio's choices)."""
    writer_for(path).write(path, items, labels)


def writer_for(path: Path) -> Codec:
    """The codec that writes ``path``, else a one-line :class:`ForcecovError`."""
    if (codec := codec_for(path, writing=True)) is None:
        raise ForcecovError(f"{path}: queue format follows the extension: use {QUEUE_FORMATS}")
    return codec


def read_queue(path: Path, labels: list[str]) -> list[QueueItem]:
    """Queue items from a file written by :func:`write_queue` (.jsonl, .csv or
    .labelstudio.json); a file that is not one raises :class:`DataValidationError`."""
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(str(path), ["queue file not found"])
    codec = codec_for(path, writing=False)
    if codec is None:
        raise DataValidationError(str(path), [f"queue format follows the extension: "
                                              f"{QUEUE_FORMATS}"])
    try:
        items = codec.read_queue(path, labels)
    except (ValueError, AttributeError, TypeError) as e:  # bad JSON, numbers or shapes
        raise DataValidationError(
            str(path), [f"not a queue written by `forcecov review export` ({e})"]
        ) from e
    bad = [i + 1 for i, it in enumerate(items) if not it.text.strip()]
    if bad:
        raise DataValidationError(str(path), [f"item(s) {bad[:10]} have no passage text"])
    return items


def read_review_file(path: Path, labels: list[str]) -> tuple[list[ReviewRow], list[str]]:
    """Rows and problems from a review file of any supported format."""
    if not path.is_file():
        raise DataValidationError(str(path), ["file not found"])
    codec = codec_for(path, writing=False)
    if codec is None:
        raise DataValidationError(
            str(path), ["unsupported review file: use .csv, .jsonl or Label Studio .json"])
    problems: list[str] = []
    rows = codec.read_reviews(path, labels, problems)
    return rows, problems


def write_audit(ranking: pd.DataFrame, path: Path) -> None:
    """Write ``review audit``'s ranking (the columns :func:`pipeline.review.audit.audit`
    documents): a ``.csv`` file gets the whole table; any other name a JSONL queue to correct
    and import, one line per passage: ``passage_id``, ``text``, ``labels`` (as given),
    ``suggested`` (the model's labels, ``;``-separated) and empty ``notes``."""
    if path.suffix.lower() == ".csv":  # as the queue formats: case does not matter
        write_frame_csv(path, ranking)
        return
    write_jsonl(path, [{"passage_id": str(r["id"]), "text": str(r["text"]),
                        "labels": r["labels"].split(";") if r["labels"] else [],
                        "suggested": r["suggested"] or "", "notes": ""}
                       for r in ranking.to_dict("records")])


def export_queue(project: Project, run_dir: Path, path: Path, *, n: int | None = None,
                 strategy: str | None = None) -> RunQueue:
    """``review export``: build a scoring run's queue (:func:`queue_from_run`) and write it to
    ``path`` in the format its extension names."""
    writer_for(path)  # a wrong extension is refused before the queue is built
    queue = queue_from_run(project, run_dir, n=n, strategy=strategy)
    write_queue(queue.items, path, queue.labels)
    return queue

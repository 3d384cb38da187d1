"""The queue file formats, chosen by extension: .csv (a spreadsheet), .jsonl and
.labelstudio.json (Label Studio tasks, with a labelling interface beside them). Writing a queue,
reading it back for the review page, and reading analysts' decisions back for import."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_open, from_spreadsheet_safe, spreadsheet_safe, write_jsonl
from ..errors import DataValidationError
from .queue import _item

LABEL_STUDIO_SUFFIX = ".labelstudio.json"


def _label_list(value: Any) -> list[str]:
    return [str(x) for x in value] if isinstance(value, (list, tuple, np.ndarray)) else []


def write_queue(queue: pd.DataFrame, path: Path, labels: list[str], model_version: str) -> None:
    """Write the queue in the format the extension names: .csv, .jsonl or .labelstudio.json."""
    name = path.name.lower()
    records = []
    for r in queue.to_dict("records"):
        predicted = _label_list(r.get("labels"))
        records.append({
            "passage_id": r["passage_id"], "text": r["text"], "heading": r.get("heading") or "",
            "force": r.get("force") or "", "page": int(r.get("page") or 0),
            "source_path": r.get("source_path") or "", "model_version": model_version,
            "probs": {lab: float(r[f"p_{lab}"]) for lab in labels}, "labels": predicted,
            "notes": "",
            "uncertainty": float(r.get("uncertainty", 0.0)),
        })
    if name.endswith(LABEL_STUDIO_SUFFIX):
        tasks = [{"data": {k: v for k, v in rec.items() if k not in ("probs", "labels", "notes")},
                  "predictions": [{"model_version": model_version, "score": 1 - rec["uncertainty"],
                                   "result": [{"from_name": "labels", "to_name": "text",
                                               "type": "choices",
                                               "value": {"choices": rec["labels"]}}]}]}
                 for rec in records]
        with atomic_open(path) as fh:
            json.dump(tasks, fh, ensure_ascii=False, indent=1)
        config = path.with_name(path.name[: -len(LABEL_STUDIO_SUFFIX)] + ".labelstudio.xml")
        with atomic_open(config) as fh:
            fh.write(label_studio_config(labels))
    elif name.endswith(".jsonl"):
        write_jsonl(path, records)
    elif name.endswith(".csv"):
        fields = ["passage_id", "force", "page", "heading", "text", *labels, "notes",
                  "model_version", *[f"p_{lab}" for lab in labels], "source_path"]
        plain = ("passage_id", "force", "page", "heading", "text", "notes", "model_version",
                 "source_path")
        with atomic_open(path, newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            for rec in records:
                writer.writerow({**{k: spreadsheet_safe(rec[k]) for k in plain},
                                 **{lab: int(lab in rec["labels"]) for lab in labels},
                                 **{f"p_{lab}": round(rec["probs"][lab], 4) for lab in labels}})
    else:
        raise ValueError(f"{path}: queue format follows the extension: "
                         f".csv, .jsonl or {LABEL_STUDIO_SUFFIX}")


def label_studio_config(labels: list[str]) -> str:
    """The Label Studio labelling interface for the queue (multi-choice over the taxonomy)."""
    choices = "\n".join(f'    <Choice value="{lab}"/>' for lab in labels)
    return (f'<View>\n  <Header value="$heading"/>\n  <Text name="text" value="$text"/>\n'
            '  <Choices name="labels" toName="text" choice="multiple" showInLine="false">\n'
            f'{choices}\n  </Choices>\n'
            '  <TextArea name="notes" toName="text" placeholder="notes" editable="true"/>\n'
            '</View>\n')


def read_queue(path: Path, labels: list[str]) -> list[dict[str, Any]]:
    """Queue items from a file written by ``write_queue`` (.jsonl, .csv or .labelstudio.json)."""
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(str(path), ["queue file not found"])
    name = path.name.lower()
    items: list[dict[str, Any]] = []
    try:
        if name.endswith(".jsonl"):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise DataValidationError(str(path), [f"row {n}: not a JSON object"])
                raw_probs, raw_labels = rec.get("probs"), rec.get("labels")
                probs = raw_probs if isinstance(raw_probs, dict) else {}
                predicted = raw_labels if isinstance(raw_labels, list) else []
                items.append(_item(rec, labels, probs, [str(x) for x in predicted]))
        elif name.endswith(".json"):
            tasks = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(tasks, list):
                raise DataValidationError(
                    str(path), ["a Label Studio queue is a JSON list of tasks"]
                )
            for task in tasks:
                data = task.get("data", {}) if isinstance(task, dict) else {}
                preds = task.get("predictions") if isinstance(task, dict) else None
                pred = preds[0] if isinstance(preds, list) and preds else {}
                choices = [
                    str(c)
                    for r in pred.get("result", [])
                    for c in r.get("value", {}).get("choices", [])
                ]
                rec = {
                    **data,
                    "model_version": data.get("model_version") or pred.get("model_version"),
                }
                items.append(_item(rec, labels, {}, choices))
        elif name.endswith(".csv"):
            with open(path, encoding="utf-8-sig", newline="") as fh:
                for rec in csv.DictReader(fh):
                    probs = {
                        lab: float(rec[f"p_{lab}"])
                        for lab in labels
                        if rec.get(f"p_{lab}") not in (None, "")
                    }
                    predicted = [
                        lab
                        for lab in labels
                        if str(rec.get(lab, "")).strip() in ("1", "1.0", "true", "yes")
                    ]
                    items.append(_item(rec, labels, probs, predicted))
        else:
            raise DataValidationError(
                str(path),
                [f"queue format follows the extension: .csv, .jsonl or {LABEL_STUDIO_SUFFIX}"],
            )
    except (ValueError, AttributeError, TypeError) as e:  # bad JSON, numbers or shapes
        raise DataValidationError(
            str(path), [f"not a queue written by `forcecov review export` ({e})"]
        ) from e
    bad = [i + 1 for i, it in enumerate(items) if not it["text"].strip()]
    if bad:
        raise DataValidationError(str(path), [f"item(s) {bad[:10]} have no passage text"])
    return items


@dataclass
class ReviewRow:
    """One analyst decision read from a file, before it becomes a labelled record."""

    row: int
    passage_id: str
    text: str
    labels: list[str]
    notes: str = ""
    heading: str = ""
    force: str = ""
    model_version: str = ""
    model_prediction: dict[str, Any] = field(default_factory=dict)
    annotator_ref: str = ""


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


def _read_csv(path: Path, labels: list[str], problems: list[str]) -> list[ReviewRow]:
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
        probs = {lab: float(rec[f"p_{lab}"]) for lab in labels
                 if rec.get(f"p_{lab}") not in (None, "")}
        cell = {k: from_spreadsheet_safe(rec.get(k) or "")
                for k in ("passage_id", "text", "notes", "heading", "force", "model_version")}
        rows.append(ReviewRow(n, cell["passage_id"].strip(), cell["text"],
                              [lab for lab, v in values.items() if v],
                              cell["notes"].strip(), cell["heading"], cell["force"],
                              cell["model_version"], {"probs": probs} if probs else {}))
    return rows


def _from_object(n: int, obj: dict[str, Any], problems: list[str]) -> ReviewRow | None:
    if not isinstance(obj.get("labels"), list):
        problems.append(f"row {n}: 'labels' must be a list of category ids")
        return None
    return ReviewRow(n, str(obj.get("passage_id") or ""), str(obj.get("text") or ""),
                     [str(x) for x in obj["labels"]], str(obj.get("notes") or ""),
                     str(obj.get("heading") or ""),
                     str(obj.get("force") or ""), str(obj.get("model_version") or ""),
                     {"probs": obj["probs"]} if isinstance(obj.get("probs"), dict) else {})


def _read_jsonl(path: Path, problems: list[str]) -> list[ReviewRow]:
    from ..corpus import iter_jsonl

    rows = []
    for n, obj, problem in iter_jsonl(path):
        if problem:
            problems.append(f"row {n}: {problem}")
        elif not isinstance(obj, dict):
            problems.append(f"row {n}: not a JSON object")
        elif (row := _from_object(n, obj, problems)) is not None:
            rows.append(row)
    return rows


def _read_label_studio(path: Path, problems: list[str]) -> list[ReviewRow]:
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
            pred = ((task.get("predictions") or [{}])[0]
                    if isinstance(task.get("predictions"), list) else {})
            pred_choices = [c for r in pred.get("result", [])
                            for c in r.get("value", {}).get("choices", [])]
            rows.append(ReviewRow(n, str(data.get("passage_id") or ""), str(data.get("text") or ""),
                                  [str(c) for c in choices], notes, str(data.get("heading") or ""),
                                  str(data.get("force") or ""),
                                  str(data.get("model_version") or pred.get("model_version") or ""),
                                  {"labels": pred_choices} if pred else {},
                                  str(a.get("completed_by") or "")))
    return rows


def read_review_file(path: Path, labels: list[str]) -> tuple[list[ReviewRow], list[str]]:
    """Rows and problems from a review file of any supported format."""
    problems: list[str] = []
    name = path.name.lower()
    if not path.is_file():
        raise DataValidationError(str(path), ["file not found"])
    if name.endswith(".csv"):
        rows = _read_csv(path, labels, problems)
    elif name.endswith(".jsonl"):
        rows = _read_jsonl(path, problems)
    elif name.endswith(".json"):
        rows = _read_label_studio(path, problems)
    else:
        raise DataValidationError(
            str(path), ["unsupported review file: use .csv, .jsonl or Label Studio .json"])
    return rows, problems

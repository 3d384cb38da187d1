"""The analyst review loop: a queue of the passages the model is least sure of, label import
with provenance, conflicts between annotators, and a label audit.

Reviewed labels are appended to ``data/labelled/reviewed.jsonl`` under a lock, atomically,
each with annotator, timestamp, model version and the model's prediction at the time.
Nothing already there is ever rewritten or dropped.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..atomic import (
    append_jsonl,
    atomic_open,
    from_spreadsheet_safe,
    locked,
    spreadsheet_safe,
    write_jsonl,
)
from ..corpus import normalise_text, read_records
from ..errors import DataValidationError
from ..taxonomy import Taxonomy

STRATEGIES = ("uncertainty", "margin", "diverse")
LABEL_STUDIO_SUFFIX = ".labelstudio.json"


# ----------------------------------------------------------------------------- export

def uncertainty_scores(scored: pd.DataFrame, labels: list[str], thresholds: np.ndarray,
                       strategy: str) -> np.ndarray:
    """Higher means less sure. ``margin``: closeness of the nearest label to its threshold;
    ``uncertainty``/``diverse``: mean binary entropy of the labels' probabilities, with each
    probability re-centred so that its threshold sits at 0.5."""
    P: npt.NDArray[np.float64] = scored[[f"p_{lab}" for lab in labels]].to_numpy(dtype=float)
    if strategy == "margin":
        widest = np.maximum(thresholds, 1 - thresholds).min()
        margin: npt.NDArray[np.float64] = 1.0 - np.abs(P - thresholds).min(axis=1) / widest
        return margin
    # Map [0, t] -> [0, .5] and [t, 1] -> [.5, 1], so the entropy peaks at the threshold.
    centred = np.where(P < thresholds, 0.5 * P / thresholds,
                       0.5 + 0.5 * (P - thresholds) / (1 - thresholds))
    centred = np.clip(centred, 1e-6, 1 - 1e-6)
    entropy = -(centred * np.log2(centred) + (1 - centred) * np.log2(1 - centred))
    scores: npt.NDArray[np.float64] = entropy.mean(axis=1)
    return scores


def select_queue(scored: pd.DataFrame, scores: np.ndarray, n: int, *, dedup_similarity: float,
                 diverse: bool = False, diversity_weight: float = 0.3) -> list[int]:
    """Row positions to review, most uncertain first, skipping near-identical passages.

    With ``diverse``, maximal marginal relevance: uncertainty minus similarity to the queue.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(scored) == 0 or n <= 0:
        return []
    vectors = TfidfVectorizer(sublinear_tf=True).fit_transform(scored["text"].astype(str))
    order = list(np.argsort(-scores, kind="stable"))
    chosen: list[int] = []
    pool = order[: max(n * 20, 200)] if diverse else order
    while len(chosen) < n and pool:
        if diverse and chosen:
            sims = (vectors[pool] @ vectors[chosen].T).max(axis=1).toarray().ravel()
            mmr = (1 - diversity_weight) * scores[pool] - diversity_weight * sims
            pick = pool[int(np.argmax(mmr))]
        else:
            pick = pool[0]
        pool = [i for i in pool if i != pick]
        if chosen:
            sim = float((vectors[pick] @ vectors[chosen].T).max())
            if sim >= dedup_similarity:
                continue
        chosen.append(int(pick))
    return chosen


def labelled_keys(labelled_dir: Path) -> tuple[set[str], set[str]]:
    """(normalised texts, passage ids) already labelled, authored or reviewed."""
    texts, ids = set(), set()
    for f in sorted(Path(labelled_dir).glob("*.jsonl")):
        for obj in json_records(f):
            texts.add(normalise_text(obj.get("text", "")))
            if obj.get("passage_id"):
                ids.add(str(obj["passage_id"]))
    return texts, ids


def json_records(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSONL file ([] when it does not exist). A line that is not JSON
    raises :class:`DataValidationError` naming the file and the line, not a traceback."""
    return [obj for _, obj in read_records(path)] if path.exists() else []


def build_queue(scored: pd.DataFrame, labels: list[str], thresholds: np.ndarray, *, n: int,
                strategy: str, dedup_similarity: float,
                labelled_dir: Path | None = None) -> pd.DataFrame:
    """The review queue: unlabelled, non-echo passages the model is least sure of."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    candidates = scored[~scored["echo"].astype(bool)].reset_index(drop=True)
    if labelled_dir is not None:
        texts, ids = labelled_keys(labelled_dir)
        keep = (~candidates["text"].map(normalise_text).isin(texts)
                & ~candidates["passage_id"].astype(str).isin(ids))
        candidates = candidates[keep].reset_index(drop=True)
    scores = uncertainty_scores(candidates, labels, thresholds, strategy)
    priority = scores
    if "ocr_low_confidence" in candidates:
        # Text from a scanned page that Tesseract was unsure of is checked first: its
        # words, not only its labels, may be wrong.
        low = candidates["ocr_low_confidence"].fillna(False).astype(bool).to_numpy()
        priority = np.where(low, scores + 1.0 + float(np.max(scores, initial=0.0)), scores)
    rows = select_queue(candidates, priority, n, dedup_similarity=dedup_similarity,
                        diverse=strategy == "diverse")
    queue = candidates.iloc[rows].copy()
    queue["uncertainty"] = scores[rows].round(4)
    return queue.reset_index(drop=True)


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


# ----------------------------------------------------------------------------- import

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


# ----------------------------------------------------------------------------- audit

def audit(corpus: pd.DataFrame, taxonomy: Taxonomy, params: Any, *, top: int = 50) -> pd.DataFrame:
    """Rank likely label errors from out-of-fold probabilities (grouped CV).

    Uses cleanlab's multi-label ``find_label_issues`` ranked by self-confidence when cleanlab
    is installed; otherwise the same self-confidence ranking by hand. Columns: id, voice,
    text, labels, suggested (labels the model would give), self_confidence, flagged_by.
    """
    from ..classify import grouped_folds, label_matrix, model_frame, out_of_fold_proba
    from ..train import groups_for, make_classifier

    X = model_frame(corpus["text"], corpus["heading"], corpus.get("context"))
    Y = label_matrix(corpus, taxonomy)
    folds = grouped_folds(groups_for(corpus, params.cv.group_by), params.cv.n_splits,
                          params.cv.seed)
    proba = out_of_fold_proba(make_classifier(taxonomy, params), X, Y, folds)
    # Self-confidence: the model's probability of the label as given, worst label per passage.
    self_conf = np.where(Y == 1, proba, 1 - proba).min(axis=1)
    flagged_by = "self-confidence"
    order = np.argsort(self_conf, kind="stable")
    try:
        from cleanlab.multilabel_classification.filter import find_label_issues

        ranked = find_label_issues(labels=[list(np.nonzero(row)[0]) for row in Y], pred_probs=proba,
                                   return_indices_ranked_by="self_confidence")
        if len(ranked):
            order = np.array(list(ranked) + [i for i in order if i not in set(ranked)])
            flagged_by = "cleanlab"
    except ImportError:
        pass
    order = order[:top]
    labs = np.array(taxonomy.labels)
    return pd.DataFrame({
        "id": corpus["id"].to_numpy()[order], "voice": corpus["voice"].to_numpy()[order],
        "text": corpus["text"].to_numpy()[order],
        "labels": [";".join(labs[Y[i] == 1]) for i in order],
        "suggested": [";".join(labs[proba[i] >= 0.5]) for i in order],
        "self_confidence": self_conf[order].round(4), "flagged_by": flagged_by,
        **{f"p_{lab}": proba[order, j].round(4) for j, lab in enumerate(taxonomy.labels)},
    })


def known_passages(run_dir: Path) -> dict[str, dict[str, Any]]:
    """passage_id -> passage fields, from a scoring run, to resolve imports that carry only ids."""
    frame = pd.read_parquet(Path(run_dir) / "passages.parquet",
                            columns=["passage_id", "text", "heading", "force"])
    return {r["passage_id"]: r for r in frame.to_dict("records")}


def run_model_and_thresholds(
    run_dir: Path, models_dir: Path, labels: list[str]
) -> tuple[str, list[str], npt.NDArray[np.float64]]:
    """Model version and thresholds behind a scoring run (from its summary and model card)."""
    from ..modelstore import read_card

    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    version = summary["model_version"]
    card = read_card(Path(models_dir) / version)
    return version, labels, np.array([card["thresholds"][lab] for lab in labels])

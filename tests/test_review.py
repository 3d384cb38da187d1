"""Review loop: export, edit, import (three formats), duplicates, conflicts, audit, promote."""

import csv
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import DataValidationError, ForcecovError
from pipeline.review.formats import read_queue, read_review_file, write_queue
from pipeline.review.queue import build_queue, items_from_frame
from pipeline.review.store import conflicts, import_reviews
from pipeline.taxonomy import load_taxonomy

TAX = load_taxonomy()
LABELS = TAX.labels
THRESHOLDS = np.full(len(LABELS), 0.5)


def _scored(n=12):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        p = rng.uniform(0, 1, len(LABELS))
        rows.append({"passage_id": f"pid-{i}", "doc_id": "d", "force": "Kent", "page": 1,
                     "heading": "H",
                     "text": f"Passage {i} about topic {i * 7} with words {'alpha ' * (i % 3)}",
                     "echo": False,
                     "labels": [lab for lab, q in zip(LABELS, p, strict=True) if q >= 0.5],
                     **{f"p_{lab}": float(q) for lab, q in zip(LABELS, p, strict=True)}})
    # a near-identical passage
    rows.append({**rows[0], "passage_id": "pid-dup", "text": rows[0]["text"]})
    rows.append({**rows[1], "passage_id": "pid-echo", "echo": True,
                 "text": "Recommendation 2a restated"})
    return pd.DataFrame(rows)


def test_queue_prefers_uncertain_passages_and_skips_duplicates_echo_and_labelled(tmp_path):
    scored = _scored()
    scored.loc[3, [f"p_{lab}" for lab in LABELS]] = 0.5  # maximally unsure
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    (labelled / "a.jsonl").write_text(
        json.dumps({"text": scored.loc[5, "text"], "labels": []}) + "\n")
    for strategy in ("uncertainty", "margin", "diverse"):
        queue = build_queue(scored, LABELS, THRESHOLDS, n=20, strategy=strategy,
                            dedup_similarity=0.8, labelled_dir=labelled)
        ids = list(queue["passage_id"])
        assert ids[0] == "pid-3" or strategy == "diverse"
        assert "pid-3" in ids and "pid-echo" not in ids and "pid-5" not in ids
        # near-identical passages do not both fill the queue
        assert not ({"pid-0", "pid-dup"} <= set(ids))


def test_passages_from_low_confidence_ocr_pages_are_queued_first():
    scored = _scored()
    scored.loc[3, [f"p_{lab}" for lab in LABELS]] = 0.5  # the model's least sure passage
    scored["ocr_low_confidence"] = False
    scored.loc[7, "ocr_low_confidence"] = True  # the words themselves may be misread
    queue = build_queue(scored, LABELS, THRESHOLDS, n=3, strategy="uncertainty",
                        dedup_similarity=0.8)
    assert list(queue["passage_id"][:2]) == ["pid-7", "pid-3"]
    assert queue["uncertainty"].between(0, 1).all()


@pytest.fixture
def queue_files(tmp_path):
    queue = build_queue(_scored(), LABELS, THRESHOLDS, n=5, strategy="uncertainty",
                        dedup_similarity=0.95)
    files = {}
    for ext in (".csv", ".jsonl", ".labelstudio.json"):
        files[ext] = tmp_path / f"queue{ext}"
        write_queue(items_from_frame(queue, LABELS, "vtest"), files[ext], LABELS)
    return files, queue


def test_csv_round_trip_with_edits_keeps_provenance(queue_files, tmp_path):
    files, queue = queue_files
    rows = list(csv.DictReader(open(files[".csv"])))
    assert set(LABELS) <= set(rows[0]) and "notes" in rows[0]
    rows[0].update({lab: "0" for lab in LABELS})
    rows[0]["nrm"] = "1"
    rows[0]["notes"] = "referral pathway"
    with open(files[".csv"], "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    reviewed = tmp_path / "labelled" / "reviewed.jsonl"
    now = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.timezone.utc)
    result = import_reviews(files[".csv"], annotator="analyst.a", taxonomy=TAX, reviewed=reviewed,
                            now=now)
    assert result.n_added == len(queue)
    recs = [json.loads(line) for line in reviewed.read_text().splitlines()]
    first = next(r for r in recs if r["passage_id"] == rows[0]["passage_id"])
    assert first["labels"] == ["nrm"] and first["notes"] == "referral pathway"
    assert first["annotator"] == "analyst.a" and first["timestamp"].startswith("2026-11-28T12:00")
    assert first["model_version"] == "vtest"
    assert set(first["model_prediction"]["probs"]) == set(LABELS)
    # Importing the same file again adds nothing.
    again = import_reviews(files[".csv"], annotator="analyst.a", taxonomy=TAX, reviewed=reviewed,
                           now=now)
    assert again.n_added == 0 and len(reviewed.read_text().splitlines()) == len(recs)


def test_bad_file_is_rejected_whole_with_row_numbers(queue_files, tmp_path):
    files, _ = queue_files
    lines = files[".jsonl"].read_text().splitlines()
    bad = json.loads(lines[1])
    bad["labels"] = ["nrm", "made_up"]
    lines[1] = json.dumps(bad)
    lines[3] = json.dumps({"passage_id": "nobody-knows", "labels": []})
    files[".jsonl"].write_text("\n".join(lines) + "\n")
    reviewed = tmp_path / "reviewed.jsonl"
    with pytest.raises(DataValidationError) as info:
        import_reviews(files[".jsonl"], annotator="a", taxonomy=TAX, reviewed=reviewed)
    message = str(info.value)
    assert "row 2: unknown label(s) ['made_up']" in message
    assert "row 4: unknown passage id" in message
    assert not reviewed.exists()  # nothing written


def test_label_studio_export_round_trips_without_losing_a_label(queue_files, tmp_path):
    files, queue = queue_files
    tasks = json.loads(files[".labelstudio.json"].read_text())
    assert tasks[0]["predictions"][0]["result"][0]["type"] == "choices"  # pre-annotations
    assert (tmp_path / "queue.labelstudio.xml").read_text().count("<Choice ") == len(LABELS)
    chosen = {}
    for i, task in enumerate(tasks):  # what Label Studio's JSON export looks like after annotation
        picks = [LABELS[i % len(LABELS)], LABELS[(i + 2) % len(LABELS)]]
        chosen[task["data"]["passage_id"]] = sorted(picks)
        task["annotations"] = [{"completed_by": 3, "created_at": "2026-11-28T10:00:00Z",
                                "was_cancelled": False,
                                "result": [{"from_name": "labels", "to_name": "text",
                                            "type": "choices", "value": {"choices": picks}}]}]
    export = tmp_path / "project-1-at-2026.json"
    export.write_text(json.dumps(tasks))
    reviewed = tmp_path / "reviewed.jsonl"
    result = import_reviews(export, annotator="ls.user", taxonomy=TAX, reviewed=reviewed)
    recs = {r["passage_id"]: r for r in map(json.loads, reviewed.read_text().splitlines())}
    assert result.n_added == len(tasks)
    assert {pid: r["labels"] for pid, r in recs.items()} == chosen


def test_disagreeing_annotators_are_both_kept_and_listed(queue_files, tmp_path):
    files, _ = queue_files
    reviewed = tmp_path / "reviewed.jsonl"
    import_reviews(files[".jsonl"], annotator="alice", taxonomy=TAX, reviewed=reviewed)
    lines = [json.loads(x) for x in files[".jsonl"].read_text().splitlines()]
    lines[0]["labels"] = ["section45"] if lines[0]["labels"] != ["section45"] else ["nrm"]
    files[".jsonl"].write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    import_reviews(files[".jsonl"], annotator="bob", taxonomy=TAX, reviewed=reviewed)
    table = conflicts(reviewed)
    assert set(table["annotator"]) == {"alice", "bob"}
    assert table["passage"].nunique() == 1
    assert len(reviewed.read_text().splitlines()) == 2 * len(lines)


def test_concurrent_imports_lose_nothing(tmp_path):
    """Two processes importing 500 labels each: 1,000 valid lines."""
    import subprocess
    import sys

    files = []
    for who in ("p1", "p2"):
        f = tmp_path / f"{who}.jsonl"
        f.write_text("".join(json.dumps({"passage_id": f"{who}-{i}", "text": f"text {who} {i}",
                                         "labels": ["nrm"]}) + "\n"
                             for i in range(500)))
        files.append(f)
    reviewed = tmp_path / "labelled" / "reviewed.jsonl"
    code = ("import sys, pathlib\nfrom pipeline.review.store import import_reviews\n"
            "from pipeline.taxonomy import load_taxonomy\n"
            "f = pathlib.Path(sys.argv[1])\n"
            "for i in range(0, 500, 25):\n"
            "    part = f.with_name(f.stem + f'-{i}.jsonl')\n"
            "    part.write_text(''.join(f.read_text().splitlines(True)[i:i + 25]))\n"
            "    import_reviews(part, annotator=f.stem, taxonomy=load_taxonomy(),\n"
            "                   reviewed=pathlib.Path(sys.argv[2]))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(f), str(reviewed)]) for f in files]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    lines = reviewed.read_text().splitlines()
    assert len(lines) == 1000
    assert len({json.loads(line)["id"] for line in lines}) == 1000


def test_simulation_and_audit_run_on_a_small_corpus():
    from pipeline.review.audit import audit
    from scripts.simulate import labels_to_match, simulate
    from tests.conftest import fast_params, small_corpus

    corpus = small_corpus(25)
    params = fast_params().override("model", kind="tfidf_lr", calibration="none")
    table = simulate(corpus, TAX, params, start_fraction=0.3, batch=40, rounds=2)
    assert set(table["strategy"]) == {"uncertainty", "random"}
    assert table.groupby("strategy")["n_labels"].apply(lambda s: s.is_monotonic_increasing).all()
    assert 0 <= table["macro_f1"].dropna().max() <= 1
    assert set(labels_to_match(table)) >= {"share", "random_final_macro_f1"}
    # Flip one passage's labels: the audit should rank it among the likeliest errors.
    corpus = corpus.copy()
    i = corpus.index[corpus["investigation"] == 1][0]
    corpus.at[i, "labels"] = ["force_systems"]
    corpus.loc[i, TAX.labels] = [1 if c == "force_systems" else 0 for c in TAX.labels]
    ranked = audit(corpus, TAX, fast_params(), top=30)
    assert corpus.at[i, "id"] in set(ranked["id"])


def test_formula_text_is_neutralised_in_the_queue_csv_and_restored_on_import(tmp_path):
    scored = _scored()
    formula = '=HYPERLINK("http://attacker.example","click")'
    scored.loc[3, "text"] = formula
    scored.loc[3, "heading"] = "@SUM(A1)"
    scored.loc[3, [f"p_{lab}" for lab in LABELS]] = 0.5  # first in the queue
    queue = build_queue(scored, LABELS, THRESHOLDS, n=5, strategy="uncertainty",
                        dedup_similarity=0.95)
    path = tmp_path / "queue.csv"
    write_queue(items_from_frame(queue, LABELS, "vtest"), path, LABELS)
    rows = list(csv.DictReader(open(path, newline="")))
    row = next(r for r in rows if r["passage_id"] == "pid-3")
    # A spreadsheet shows these as text: no cell starts with a formula character.
    assert row["text"] == "'" + formula and row["heading"] == "'@SUM(A1)"
    assert all(not v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())
    row.update({lab: "0" for lab in LABELS}, nrm="1")
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    reviewed = tmp_path / "labelled" / "reviewed.jsonl"
    import_reviews(path, annotator="analyst.a", taxonomy=TAX, reviewed=reviewed)
    recs = {r["passage_id"]: r for r in map(json.loads, reviewed.read_text().splitlines())}
    assert recs["pid-3"]["text"] == formula and recs["pid-3"]["labels"] == ["nrm"]


def test_a_corrupt_reviewed_file_is_named_with_its_line_not_a_traceback(tmp_path, queue_files):
    files, _ = queue_files
    reviewed = tmp_path / "labelled" / "reviewed.jsonl"
    reviewed.parent.mkdir(parents=True)
    reviewed.write_text('{"id": "ok-1", "labels": []}\n{"id": "x", broken\n')
    for call in (lambda: conflicts(reviewed),
                 lambda: import_reviews(files[".csv"], annotator="a", taxonomy=TAX,
                                        reviewed=reviewed),
                 lambda: build_queue(_scored(), LABELS, THRESHOLDS, n=3, strategy="uncertainty",
                                     dedup_similarity=0.9, labelled_dir=reviewed.parent)):
        with pytest.raises(DataValidationError) as info:
            call()
        assert "reviewed.jsonl" in str(info.value) and "line 2" in str(info.value)


def test_the_extension_names_the_format_and_another_one_is_refused(queue_files, tmp_path):
    _, queue = queue_files
    items = items_from_frame(queue, LABELS, "vtest")
    with pytest.raises(ForcecovError, match="queue format follows the extension"):
        write_queue(items, tmp_path / "queue.txt", LABELS)
    other = tmp_path / "queue.txt"
    other.write_text("passage_id\n")
    with pytest.raises(DataValidationError, match="queue format follows the extension"):
        read_queue(other, LABELS)
    with pytest.raises(DataValidationError, match="unsupported review file"):
        read_review_file(other, LABELS)
    # Any .json is read as a Label Studio file; only .labelstudio.json is written as one.
    with pytest.raises(ForcecovError, match="queue format follows the extension"):
        write_queue(items, tmp_path / "queue.json", LABELS)
    (tmp_path / "export.json").write_text((tmp_path / "queue.labelstudio.json").read_text())
    assert [it.passage_id for it in read_queue(tmp_path / "export.json", LABELS)] == list(
        queue["passage_id"])


def test_export_refuses_an_unknown_extension_before_building_the_queue(tmp_path):
    from pipeline.config import Params
    from pipeline.project import Project
    from pipeline.review.formats import export_queue
    from pipeline.taxonomy import load_taxonomy

    project = Project(tmp_path, Params(), load_taxonomy())
    # The run folder does not exist: the extension is what is refused, and nothing is read.
    with pytest.raises(ForcecovError, match=r"queue\.txt: queue format follows the extension"):
        export_queue(project, tmp_path / "no-run", tmp_path / "queue.txt")
    assert not (tmp_path / "queue.txt").exists()


def test_an_audit_ranking_is_csv_whatever_the_case_of_its_extension(tmp_path):
    import pandas as pd

    from pipeline.review.formats import write_audit

    ranking = pd.DataFrame({"id": ["a"], "text": ["We refer to the NRM."], "labels": ["nrm"],
                            "suggested": ["nrm;section45"], "self_confidence": [0.2]})
    write_audit(ranking, tmp_path / "AUDIT.CSV")
    assert pd.read_csv(tmp_path / "AUDIT.CSV")["suggested"].tolist() == ["nrm;section45"]
    write_audit(ranking, tmp_path / "audit.jsonl")
    line = json.loads((tmp_path / "audit.jsonl").read_text())
    assert line == {"passage_id": "a", "text": "We refer to the NRM.", "labels": ["nrm"],
                    "suggested": "nrm;section45", "notes": ""}

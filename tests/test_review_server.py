"""The review page: its JSON API (Flask test client) and one real browser session (Playwright)."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.corpus import _apply_reviews
from pipeline.review.formats import export_queue, read_queue, write_queue
from pipeline.review.hosts import review_url
from pipeline.review.queue import build_queue, items_from_frame, passage_context
from pipeline.review.server import (
    MAX_NOTES_CHARS,
    TOKEN_HEADER,
    create_app,
    prepare,
)
from pipeline.taxonomy import load_taxonomy

TAX = load_taxonomy()
LABELS = TAX.labels
THRESHOLDS = np.full(len(LABELS), 0.5)
REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "test-token-0123456789abcdef"


def _passages(n: int = 8) -> pd.DataFrame:
    """A small scored run: one document, passages in reading order, distinct texts."""
    rng = np.random.default_rng(1)
    topics = [
        "referral pathway",
        "custody checks",
        "victim navigators",
        "intranet guidance",
        "detective allocation",
        "statutory defence",
        "training day",
        "partner meetings",
    ]
    rows = []
    for i in range(n):
        p = rng.uniform(0.2, 0.8, len(LABELS))
        rows.append(
            {
                "passage_id": f"pid-{i}",
                "doc_id": "doc-kent",
                "force": "Kent",
                "page": 1 + i // 3,
                "source_path": "data/raw/Kent Police response.pdf",
                "heading": f"Section {i}",
                "text": f"Passage {i}: the force described its {topics[i % len(topics)]}.",
                "char_start": 100 * i,
                "char_end": 100 * i + 90,
                "echo": False,
                "labels": [lab for lab, q in zip(LABELS, p, strict=True) if q >= 0.5],
                **{f"p_{lab}": float(q) for lab, q in zip(LABELS, p, strict=True)},
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture
def run():
    frame = _passages()
    queue = build_queue(
        frame, LABELS, THRESHOLDS, n=5, strategy="uncertainty", dedup_similarity=0.95
    )
    return frame, items_from_frame(queue, LABELS, "vtest")


def _app(items, reviewed, frame=None, annotator="analyst.a", *, send_token=True, **kwargs):
    """A test client; it sends the session token header on every request unless told not to."""
    app = create_app(
        items,
        annotator=annotator,
        taxonomy=TAX,
        reviewed_path=reviewed,
        context_lookup=passage_context(frame) if frame is not None else None,
        token=TOKEN,
        **kwargs,
    )
    client = app.test_client()
    if send_token:
        client.environ_base["HTTP_" + TOKEN_HEADER.upper().replace("-", "_")] = TOKEN
    return client


def _records(reviewed: Path) -> list[dict]:
    return (
        [json.loads(line) for line in reviewed.read_text().splitlines()]
        if reviewed.exists()
        else []
    )


def test_items_load_with_suggested_labels_and_context(run, tmp_path):
    frame, items = run
    client = _app(items, tmp_path / "reviewed.jsonl", frame)
    progress = client.get("/api/progress").get_json()
    assert progress == {
        "position": 0,
        "total": len(items),
        "done": False,
        "decided": 0,
        "skipped": 0,
        "remaining": len(items),
        "resumed": 0,
        "can_undo": False,
    }
    item = client.get("/api/items/0").get_json()
    assert item["passage_id"] == items[0].passage_id and item["text"] == items[0].text
    assert (item["force"], item["source_path"], item["model_version"]) == (
        "Kent",
        items[0].source_path,
        "vtest",
    )
    assert [c["id"] for c in item["categories"]] == LABELS
    assert [c["display"] for c in item["categories"]] == [c.display for c in TAX.categories]
    assert [c["key"] for c in item["categories"]] == ["1", "2", "3", "4", "5"]
    row = frame.set_index("passage_id").loc[item["passage_id"]]
    for c in item["categories"]:
        assert c["prob"] == pytest.approx(row[f"p_{c['id']}"])
        assert c["suggested"] == c["checked"] == (c["id"] in row["labels"])
    # The neighbours in the same document, by position.
    k = int(item["passage_id"].split("-")[1])
    before, after = item["context"]["before"], item["context"]["after"]
    assert (before and before["passage_id"]) == (f"pid-{k - 1}" if k > 0 else None)
    assert (after and after["passage_id"]) == (f"pid-{k + 1}" if k < len(frame) - 1 else None)
    assert client.get(f"/api/items/{len(items)}").status_code == 404
    # Only a queue file, no run folder: no context.
    assert _app(items, tmp_path / "r2.jsonl").get("/api/items/0").get_json()["context"] == {
        "before": None,
        "after": None,
    }


def test_page_escapes_and_locks_down_scripts(run, tmp_path):
    _, items = run
    client = _app(items, tmp_path / "reviewed.jsonl", annotator="<b>eve</b>", send_token=False)
    resp = client.get(f"/?token={TOKEN}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "&lt;b&gt;eve&lt;/b&gt;" in html and "<b>eve</b>" not in html
    assert "innerHTML" not in html and "http://" not in html and "https://" not in html  # no CDN
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'nonce-" in csp


def test_a_decision_is_saved_with_provenance_through_the_import_path(run, tmp_path):
    _, items = run
    reviewed = tmp_path / "labelled" / "reviewed.jsonl"
    client = _app(items, reviewed)
    resp = client.post(
        "/api/decisions", json={"index": 0, "labels": ["nrm", "section45"], "notes": " pathway "}
    )
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["saved"] and body["next"] == 1 and body["progress"]["decided"] == 1
    [rec] = _records(reviewed)
    assert rec["labels"] == ["nrm", "section45"] and rec["notes"] == "pathway"
    assert rec["annotator"] == rec["author"] == "analyst.a" and rec["source"] == "review"
    assert rec["timestamp"].endswith("+00:00") and rec["model_version"] == "vtest"
    assert rec["passage_id"] == items[0].passage_id and rec["text"] == items[0].text
    assert rec["model_prediction"]["labels"] == list(items[0].labels)
    assert set(rec["model_prediction"]["probs"]) == set(LABELS)
    assert rec["import_file"] == "review-serve" and rec["id"].startswith("review-")
    # Saying the same again adds nothing (the import's de-duplication).
    again = client.post(
        "/api/decisions", json={"index": 0, "labels": ["section45", "nrm"], "notes": "pathway"}
    )
    assert again.status_code == 200 and not again.get_json()["saved"]
    assert len(_records(reviewed)) == 1


def test_bad_requests_are_rejected_with_a_message_and_nothing_written(run, tmp_path):
    _, items = run
    reviewed = tmp_path / "reviewed.jsonl"
    client = _app(items, reviewed)
    resp = client.post("/api/decisions", json={"index": 0, "labels": ["nrm", "made_up"]})
    assert resp.status_code == 400
    assert "unknown label(s) ['made_up']" in resp.get_json()["error"]
    assert resp.get_json()["known"] == LABELS
    for bad in (
        {"index": 0, "labels": "nrm"},
        {"index": 99, "labels": []},
        {"index": "0", "labels": []},
        {"index": 0, "labels": [], "notes": 3},
        ["not", "an", "object"],
    ):
        resp = client.post("/api/decisions", json=bad)
        assert resp.status_code == 400 and resp.get_json()["error"], bad
    # Not JSON (what a cross-site form could send) is refused too.
    assert client.post("/api/decisions", data="index=0&labels=nrm").status_code == 400
    stale = client.post(
        "/api/decisions", json={"index": 0, "passage_id": "someone-else", "labels": []}
    )
    assert stale.status_code == 409
    assert not reviewed.exists()
    assert client.get("/api/progress").get_json()["decided"] == 0


def test_skip_and_undo_never_remove_a_decision(run, tmp_path):
    _, items = run
    reviewed = tmp_path / "reviewed.jsonl"
    client = _app(items, reviewed)
    assert client.post("/api/undo", json={}).status_code == 409  # nothing to undo yet
    first_choice = [LABELS[0]]
    assert (
        client.post("/api/decisions", json={"index": 0, "labels": first_choice}).status_code == 201
    )
    skipped = client.post("/api/skip", json={"index": 1}).get_json()
    assert skipped["next"] == 2 and skipped["progress"]["skipped"] == 1
    # Undo the skip: back to item 1, no longer skipped.
    undone = client.post("/api/undo", json={}).get_json()
    assert undone == {**undone, "undone": "skip", "index": 1, "next": 1}
    assert (
        undone["progress"]["skipped"] == 0
        and client.get("/api/progress").get_json()["position"] == 1
    )
    # Undo the decision: back to item 0, showing what was saved; the record stays on disk.
    undone = client.post("/api/undo", json={}).get_json()
    assert undone["undone"] == "decision" and undone["index"] == 0
    item = client.get("/api/items/0").get_json()
    assert item["saved"]["labels"] == first_choice
    assert [c["id"] for c in item["categories"] if c["checked"]] == first_choice
    assert len(_records(reviewed)) == 1
    # Re-decide: a new record that supersedes the old one; then back to the first choice again.
    assert client.post("/api/decisions", json={"index": 0, "labels": []}).status_code == 201
    client.post("/api/undo", json={})
    assert (
        client.post("/api/decisions", json={"index": 0, "labels": first_choice}).status_code == 201
    )
    recs = _records(reviewed)
    assert [r["labels"] for r in recs] == [first_choice, [], first_choice]
    assert len({r["id"] for r in recs}) == 3
    assert [r["timestamp"] for r in recs] == sorted(
        {r["timestamp"] for r in recs}
    )  # strictly increasing
    # Training takes the newest review per passage: the last decision.
    frame = _apply_reviews(pd.DataFrame(recs))
    assert len(frame) == 1 and frame.iloc[0]["labels"] == first_choice


def test_restart_resumes_after_the_decided_items(run, tmp_path):
    _, items = run
    reviewed = tmp_path / "reviewed.jsonl"
    client = _app(items, reviewed)
    client.post("/api/decisions", json={"index": 0, "labels": ["nrm"]})
    client.post("/api/skip", json={"index": 1})
    client.post("/api/decisions", json={"index": 2, "labels": []})
    again = _app(items, reviewed)  # a new server on the same file
    progress = again.get("/api/progress").get_json()
    assert progress["position"] == 1 and progress["resumed"] == 2 and progress["decided"] == 2
    assert progress["skipped"] == 0 and progress["remaining"] == len(items) - 2  # skips come back
    assert again.get("/api/items/2").get_json()["saved"]["labels"] == []
    assert (
        again.post("/api/skip", json={"index": 1}).get_json()["next"] == 3
    )  # past the decided item 2
    # Resuming matches on text too (a queue without passage ids), and is per annotator.
    no_ids = [replace(it, passage_id="") for it in items]
    assert _app(no_ids, reviewed).get("/api/progress").get_json()["resumed"] == 2
    assert (
        _app(items, reviewed, annotator="analyst.b").get("/api/progress").get_json()["position"]
        == 0
    )


@pytest.mark.parametrize("ext", [".jsonl", ".csv", ".labelstudio.json"])
def test_queue_files_of_every_format_load(run, tmp_path, ext):
    frame, items = run
    queue = build_queue(
        frame, LABELS, THRESHOLDS, n=5, strategy="uncertainty", dedup_similarity=0.95
    )
    path = tmp_path / f"queue{ext}"
    write_queue(items_from_frame(queue, LABELS, "vtest"), path, LABELS)
    loaded = read_queue(path, LABELS)
    assert [it.passage_id for it in loaded] == [it.passage_id for it in items]
    assert [it.labels for it in loaded] == [it.labels for it in items]
    assert all(it.model_version == "vtest" and it.page >= 1 for it in loaded)
    if ext != ".labelstudio.json":  # Label Studio tasks carry predicted labels, not probabilities
        assert loaded[0].probs == pytest.approx(items[0].probs, abs=1e-4)


def _run_folder(tmp_path: Path) -> tuple[Path, Path]:
    """(project root with the vtest model, a scoring run folder scored by it)."""
    root = tmp_path / "root"
    (root / "data" / "labelled").mkdir(parents=True)
    (root / "models" / "vtest").mkdir(parents=True)
    (root / "models" / "vtest" / "model.json").write_text(
        json.dumps({"thresholds": dict.fromkeys(LABELS, 0.5)})
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _passages().to_parquet(run_dir / "passages.parquet")
    (run_dir / "summary.json").write_text(json.dumps({"model_version": "vtest"}))
    return root, run_dir


def _project(root):
    from pipeline.config import Params
    from pipeline.project import Project
    from pipeline.taxonomy import load_taxonomy

    return Project(root, Params(), load_taxonomy())


def test_prepare_builds_the_queue_from_a_run_folder(tmp_path):
    root, run_dir = _run_folder(tmp_path)
    items, context, source, known = prepare(_project(root), queue=None, run_dir=run_dir, n=3)
    assert len(items) == 3 and all(it.model_version == "vtest" for it in items)
    assert context(items[0])["before"] or context(items[0])["after"]
    assert source == "review-serve:run" and set(known) == set(_passages()["passage_id"])


def test_export_and_the_page_build_the_same_queue_from_a_run(tmp_path):
    root, run_dir = _run_folder(tmp_path)
    exported = export_queue(_project(root), run_dir, tmp_path / "queue.jsonl", n=4)
    served, *_ = prepare(_project(root), queue=None, run_dir=run_dir, n=4)
    assert list(exported.items) == served and exported.model_version == "vtest"
    assert read_queue(tmp_path / "queue.jsonl", LABELS) == [
        replace(it, uncertainty=0.0) for it in served  # a queue file is read without it
    ]


# ----------------------------------------------------------------------------- browser


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium")
def test_label_three_passages_by_keyboard_in_a_real_browser(run, tmp_path):
    from playwright.sync_api import expect, sync_playwright
    from werkzeug.serving import make_server

    frame, items = run
    # Untrusted text must show as text, never as markup.
    hostile = "<img src=x onerror=\"document.title='pwned'\"> & <b>not bold</b>"
    frame.loc[frame["passage_id"] == items[0].passage_id, "text"] = hostile
    items[0] = replace(items[0], text=hostile)
    reviewed = tmp_path / "labelled" / "reviewed.jsonl"
    app = create_app(
        items,
        annotator="analyst.kb",
        taxonomy=TAX,
        reviewed_path=reviewed,
        context_lookup=passage_context(frame),
        token=TOKEN,
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = review_url("127.0.0.1", server.server_port, TOKEN)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM),
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(url)
                ready = page.locator("body[data-state=ready]")
                expect(page.locator("body[data-state=ready][data-index='0']")).to_have_count(1)
                expect(page.locator("#text")).to_have_text(hostile)
                assert page.locator("#passage img, #passage b").count() == 0
                expect(page.locator("#progress")).to_have_text(f"1 of {len(items)}")
                expect(page.locator("#context-after .ctx-text")).not_to_be_empty()
                # Notes typed in the box must not trigger shortcuts.
                page.fill("#notes", "")
                page.locator("#notes").press_sequentially("s u 0 1")
                page.keyboard.press("Escape")
                expect(page.locator("#notes")).to_have_value("s u 0 1")
                expect(page.locator("body[data-index='0']")).to_have_count(1)

                def checked() -> list[str]:
                    return page.eval_on_selector_all(
                        "#categories input:checked", "els => els.map(e => e.dataset.cat)"
                    )

                # Item 1: exactly the second category ("0" clears the model's suggestions first).
                page.keyboard.press("0")
                page.keyboard.press("2")
                expect(ready).to_have_count(1)
                assert checked() == [LABELS[1]]
                page.keyboard.press("Enter")
                expect(page.locator("body[data-state=ready][data-index='1']")).to_have_count(1)
                expect(page.locator("#progress")).to_have_text(f"2 of {len(items)}")
                expect(page.locator("#message")).to_contain_text("Saved item 1")
                if os.environ.get("FORCECOV_SCREENSHOT") == "1":  # for the README
                    (REPO / "docs").mkdir(exist_ok=True)
                    page.screenshot(path=str(REPO / "docs" / "review-page.png"), full_page=True)
                # Item 2: none of them.
                page.keyboard.press("0")
                page.keyboard.press("Enter")
                expect(page.locator("body[data-state=ready][data-index='2']")).to_have_count(1)
                # Item 3: first and third, typed quickly after a clear.
                for key in ("0", "1", "3", "Enter"):
                    page.keyboard.press(key)
                expect(page.locator("body[data-state=ready][data-index='3']")).to_have_count(1)
                expect(page.locator("#counts")).to_contain_text("3 decided")
                # U goes back to item 3 showing what was saved; Enter again adds no duplicate.
                page.keyboard.press("u")
                expect(page.locator("body[data-state=ready][data-index='2']")).to_have_count(1)
                expect(page.locator("#saved-earlier")).to_contain_text("You saved this passage")
                assert checked() == [LABELS[0], LABELS[2]]
                page.keyboard.press("Enter")
                expect(page.locator("#message")).to_contain_text("already saved")
                expect(page.locator("body[data-state=ready][data-index='3']")).to_have_count(1)
                assert page.title() != "pwned" and not errors
            finally:
                browser.close()
    finally:
        server.shutdown()
        thread.join(timeout=5)
    recs = _records(reviewed)
    assert [r["passage_id"] for r in recs] == [it.passage_id for it in items[:3]]
    assert [r["labels"] for r in recs] == [[LABELS[1]], [], sorted([LABELS[0], LABELS[2]])]
    assert recs[0]["notes"] == "s u 0 1" and recs[0]["text"] == hostile
    assert all(
        r["annotator"] == "analyst.kb" and r["timestamp"] and r["model_version"] == "vtest"
        for r in recs
    )


# ----------------------------------------------------------------------------- access control


def test_every_route_needs_the_session_token(run, tmp_path):
    _, items = run
    reviewed = tmp_path / "reviewed.jsonl"
    client = _app(items, reviewed, send_token=False)
    requests = [
        ("GET", "/", None),
        ("GET", "/api/progress", None),
        ("GET", "/api/items/0", None),
        ("GET", "/api/items/999", None),  # even a missing item says nothing without the token
        ("POST", "/api/decisions", {"index": 0, "labels": ["nrm"]}),
        ("POST", "/api/skip", {"index": 0}),
        ("POST", "/api/undo", {}),
        ("GET", "/favicon.ico", None),
    ]
    for wrong in (None, "", "x" * len(TOKEN), TOKEN[:-1], TOKEN + "x", "tökén"):
        for method, path, data in requests:
            headers = {TOKEN_HEADER: wrong} if wrong is not None else {}
            resp = client.open(path, method=method, json=data, headers=headers)
            assert resp.status_code == 403, (wrong, path)
            message = resp.get_json()["error"]
            assert "open the URL printed by `forcecov review serve`" in message, message
            assert "token" in message and TOKEN not in resp.get_data(as_text=True)
            assert resp.headers["Cache-Control"] == "no-store"
        # The query parameter is checked the same way.
        assert client.get("/", query_string={"token": wrong or ""}).status_code == 403
    assert not reviewed.exists()  # nothing was saved
    # The right token, as the page's ?token= or the script's header, opens everything.
    page = client.get(f"/?token={TOKEN}")
    assert page.status_code == 200
    assert TOKEN in page.get_data(as_text=True)  # handed to the page's script, which sends it
    assert client.get("/api/progress", headers={TOKEN_HEADER: TOKEN}).status_code == 200
    saved = client.post(
        "/api/decisions", json={"index": 0, "labels": ["nrm"]}, headers={TOKEN_HEADER: TOKEN}
    )
    assert saved.status_code == 201 and len(_records(reviewed)) == 1


def test_the_app_refuses_a_missing_or_short_token(run, tmp_path):
    _, items = run
    for token in ("", "short"):
        with pytest.raises(ValueError, match="session token"):
            create_app(
                items,
                annotator="a",
                taxonomy=TAX,
                reviewed_path=tmp_path / "r.jsonl",
                token=token,
            )


@pytest.mark.parametrize(
    ("host", "extra", "good", "bad"),
    [
        (
            "127.0.0.1",
            (),
            ["localhost", "localhost:8765", "127.0.0.1:8765", "[::1]:8765", "LOCALHOST"],
            ["evil.example", "evil.example:8765", "127.0.0.2", "0.0.0.0:8765"],
        ),
        (
            "::1",
            (),
            ["[::1]:8765", "[::1]", "localhost:8765", "127.0.0.1:8765"],
            ["evil.example:8765", "::1", "[::2]:8765", "[::1]:port", "[::1"],
        ),
        (
            "0.0.0.0",
            ("reviewbox.lan", "192.168.1.20"),
            ["0.0.0.0:8765", "reviewbox.lan:8765", "192.168.1.20:8765", "localhost:8765"],
            ["evil.example:8765", "192.168.1.21:8765", "reviewbox.lan.evil.example"],
        ),
        (
            "192.168.1.20",
            (),
            ["192.168.1.20:8765", "127.0.0.1:8765"],
            ["evil.example:8765", "reviewbox.lan:8765", "192.168.1.20@evil.example"],
        ),
    ],
)
def test_the_host_header_must_name_this_server_on_every_bind(run, tmp_path, host, extra, good, bad):
    # A DNS-rebound page sends its own name as Host; IPv6 and wide binds are checked too.
    _, items = run
    client = _app(items, tmp_path / "reviewed.jsonl", host=host, allowed_hosts=extra)
    for name in good:
        assert client.get("/api/progress", headers={"Host": name}).status_code == 200, name
    for name in [*bad, ""]:
        resp = client.get("/api/progress", headers={"Host": name})
        assert resp.status_code == 400, name
        assert "is not allowed" in resp.get_json()["error"]
        assert client.get(f"/?token={TOKEN}", headers={"Host": name}).status_code == 400
    # Without the token a good Host still gets nowhere.
    bare = _app(items, tmp_path / "reviewed.jsonl", host=host, send_token=False)
    assert bare.get("/api/progress", headers={"Host": good[0]}).status_code == 403


def test_large_requests_and_long_notes_are_refused(run, tmp_path):
    _, items = run
    reviewed = tmp_path / "reviewed.jsonl"
    client = _app(items, reviewed)
    huge = {"index": 0, "labels": ["nrm"], "notes": "x" * 100_000}
    resp = client.post("/api/decisions", json=huge)
    assert resp.status_code == 413
    assert "at most 64 KB" in resp.get_json()["error"]
    # Not JSON, or to another route: still refused by size.
    assert client.post("/api/skip", data="x" * 100_000).status_code == 413
    long_notes = {"index": 0, "labels": ["nrm"], "notes": "y" * (MAX_NOTES_CHARS + 1)}
    resp = client.post("/api/decisions", json=long_notes)
    assert resp.status_code == 400
    assert f"keep them to {MAX_NOTES_CHARS:,}" in resp.get_json()["error"]
    assert not reviewed.exists()
    # The longest allowed notes are saved, even as the largest escaped characters.
    ok = {"index": 0, "labels": ["nrm"], "notes": "\U0001f600" * (MAX_NOTES_CHARS // 2)}
    assert client.post("/api/decisions", json=ok).status_code == 201
    assert len(_records(reviewed)[0]["notes"]) == MAX_NOTES_CHARS // 2
    page = client.get(f"/?token={TOKEN}").get_data(as_text=True)
    assert f'maxlength="{MAX_NOTES_CHARS}"' in page

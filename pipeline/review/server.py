"""A local review page: analysts read each queued passage in context, tick categories, save.

``create_app`` builds the Flask app over a :class:`~pipeline.review.session.Session` of queue
items (pure, testable); ``serve`` reads the queue (a queue file written by ``review export``,
or built from a scoring run folder as export builds it) and runs it on 127.0.0.1 by default.

The page shows passages quoted from police responses, so every request needs the session
token ``serve`` prints in the URL (as Jupyter does; the page's script sends it back in the
``X-Forcecov-Token`` header) and a Host header naming this server (no DNS rebinding), and
request bodies are capped at 64 KB (the checks on hosts are in :mod:`pipeline.review.hosts`).

Every accepted decision is saved at once through :func:`pipeline.review.store.save_reviews`, the
same validation, provenance, lock, atomic append and de-duplication as ``forcecov review
import``. Nothing is ever removed from ``reviewed.jsonl``: undo goes back to the previous item,
and a new decision there is appended and supersedes the old one (the newest review wins).
On start, items this annotator has already reviewed are skipped, so a restart resumes.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DataValidationError, ForcecovError
from ..taxonomy import Taxonomy
from .formats import read_queue
from .hosts import allowed_host_names, bare_host, host_allowed, review_url, warn_if_exposed
from .queue import ContextLookup, QueueItem, passage_context, queue_from_run
from .session import Session, page_categories
from .store import KnownPassage, known_passages_in, save_reviews

if TYPE_CHECKING:
    from flask import Flask, Response
    from flask.typing import ResponseReturnValue
    from rich.console import Console
    from werkzeug.exceptions import HTTPException

    from ..project import Project

TOKEN_HEADER = "X-Forcecov-Token"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
MAX_REQUEST_BYTES = 64 * 1024  # a decision with the longest notes is well under 32 KB
MAX_NOTES_CHARS = 2000


# ----------------------------------------------------------------------------- the app


def create_app(
    queue_items: list[QueueItem],
    *,
    annotator: str,
    taxonomy: Taxonomy,
    reviewed_path: Path,
    context_lookup: ContextLookup | None = None,
    source: str = "review-serve",
    known: Mapping[str, KnownPassage] | None = None,
    token: str,
    host: str = "127.0.0.1",
    allowed_hosts: Iterable[str] = (),
) -> Flask:
    """The review app over ``queue_items`` (as :func:`~pipeline.review.formats.read_queue` or
    :func:`~pipeline.review.queue.queue_from_run` gives them).

    Decisions go to ``reviewed_path`` through :func:`save_reviews` (the import path), recorded
    with ``annotator``; ``source`` becomes each record's ``import_file``.

    Every request, the page included, must carry ``token`` (the ``X-Forcecov-Token`` header or
    a ``?token=`` parameter; else 403) and a Host header from :func:`allowed_host_names` for
    the bound ``host`` plus ``allowed_hosts`` (else 400). Bodies over 64 KB get 413.
    """
    from flask import Flask, g, jsonify, render_template, request
    from flask.json.provider import DefaultJSONProvider
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

    if not annotator.strip():
        raise DataValidationError("review serve", ["--annotator is required: who is labelling?"])
    if len(token) < 16:  # a short token could be guessed; serve uses secrets.token_urlsafe
        raise ValueError("the review server needs a session token of at least 16 characters")
    hosts = allowed_host_names(host, allowed_hosts)
    reviewed_path = Path(reviewed_path)
    labels = taxonomy.labels
    session = Session.resume(queue_items, reviewed_path, annotator)

    # The templates live with the report's, in pipeline/templates.
    app = Flask(__name__, template_folder=str(TEMPLATES))
    if isinstance(app.json, DefaultJSONProvider):  # the default: keep the order we build
        app.json.sort_keys = False
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.extensions["forcecov_review"] = session
    categories = page_categories(taxonomy)

    def error(status: int, message: str, **extra: object) -> tuple[Response, int]:
        return jsonify({"error": message, **extra}), status

    def body() -> Mapping[str, object]:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise _BadRequest("send a JSON object with Content-Type: application/json")
        return data

    def index_of(data: Mapping[str, object]) -> int:
        i = data.get("index")
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(session.items):
            raise _BadRequest(f"'index' must be an item number from 0 to {len(session.items) - 1}")
        pid = data.get("passage_id")
        if pid is not None and str(pid) != session.items[i].passage_id:
            raise _BadRequest(
                f"item {i} is passage {session.items[i].passage_id!r}, not {pid!r}: "
                "reload the page",
                status=409,
            )
        return i

    @app.errorhandler(_BadRequest)
    def _bad(e: _BadRequest) -> ResponseReturnValue:
        return error(e.status, e.message)

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException) -> ResponseReturnValue:
        if e.code == 413:
            return error(
                413,
                f"request too large: at most {MAX_REQUEST_BYTES // 1024} KB "
                f"(notes up to {MAX_NOTES_CHARS:,} characters)",
            )
        if request.path.startswith("/api/"):
            return error(e.code or 500, e.description or e.name)
        return e

    @app.before_request
    def _guard() -> ResponseReturnValue | None:
        # Host first: a DNS-rebound page names the attacker's host, whatever else it sends.
        sent_host = request.headers.get("Host", "")
        if not host_allowed(sent_host, hosts):
            return error(
                400,
                f"Host {sent_host!r} is not allowed: open the URL printed by "
                "`forcecov review serve` (to reach it under another name, restart it with "
                "--allow-host NAME)",
                allowed=sorted(hosts),
            )
        # Every route, the page too: nothing is readable or writable without the token.
        given = request.headers.get(TOKEN_HEADER) or request.args.get("token") or ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            problem = "wrong session token" if given else "no session token"
            return error(
                403,
                f"{problem}: open the URL printed by `forcecov review serve`, which carries "
                "the token (http://HOST:PORT/?token=...)",
            )
        # MAX_CONTENT_LENGTH bites only when a body is read; refuse a declared oversize at once.
        if (request.content_length or 0) > MAX_REQUEST_BYTES:
            raise RequestEntityTooLarge()
        return None

    @app.after_request
    def _headers(resp: Response) -> Response:
        nonce = g.get("csp_nonce")
        script = f"'nonce-{nonce}'" if nonce else "'none'"
        resp.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src {script}; style-src 'unsafe-inline'; "
            "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'"
        )
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.get("/")
    def page() -> ResponseReturnValue:
        g.csp_nonce = secrets.token_urlsafe(16)
        config = {
            "annotator": annotator.strip(),
            "categories": categories,
            "total": len(session.items),
            "token": token,  # the script sends it back on every API call
            "token_header": TOKEN_HEADER,
        }
        return render_template(
            "review.html",
            config=config,
            annotator=annotator.strip(),
            nonce=g.csp_nonce,
            notes_max=MAX_NOTES_CHARS,
        )

    @app.get("/api/progress")
    def progress() -> ResponseReturnValue:
        with session.lock:
            return jsonify(session.progress())

    @app.get("/api/items/<int:i>")
    def get_item(i: int) -> ResponseReturnValue:
        with session.lock:
            if not 0 <= i < len(session.items):
                return error(
                    404,
                    f"no item {i}: the queue has {len(session.items)} items (0 to "
                    f"{len(session.items) - 1})",
                )
            it = session.items[i]
            context = context_lookup(it) if context_lookup else None
            return jsonify(session.item_view(i, categories, context))

    @app.post("/api/decisions")
    def decide() -> ResponseReturnValue:
        data = body()
        chosen = data.get("labels")
        if not isinstance(chosen, list) or not all(isinstance(x, str) for x in chosen):
            return error(400, "'labels' must be a list of category ids", known=labels)
        notes = data.get("notes", "")
        if not isinstance(notes, str):
            return error(400, "'notes' must be a string")
        if len(notes) > MAX_NOTES_CHARS:
            return error(
                400,
                f"'notes' has {len(notes):,} characters; keep them to {MAX_NOTES_CHARS:,}",
            )
        with session.lock:
            i = index_of(data)
            try:
                # The import's one write path: validation, provenance, lock, de-duplication.
                result = save_reviews([session.decision_row(i, chosen, notes)],
                                      annotator=annotator, taxonomy=taxonomy,
                                      reviewed=reviewed_path, source=source, known=known,
                                      supersede=True)
            except DataValidationError as e:
                return error(400, "; ".join(e.problems), problems=e.problems, known=labels)
            rec = result.records[0] if result.records else None
            session.decided(i, rec)
            return jsonify(
                {
                    "saved": rec is not None,
                    "record": rec,
                    "index": i,
                    "next": session.position,
                    "progress": session.progress(),
                }
            ), 201 if rec else 200

    @app.post("/api/skip")
    def skip() -> ResponseReturnValue:
        data = body()
        with session.lock:
            i = index_of(data)
            session.skip(i)
            return jsonify({"index": i, "next": session.position, "progress": session.progress()})

    @app.post("/api/undo")
    def undo() -> ResponseReturnValue:
        body()
        with session.lock:
            undone = session.undo()
            if undone is None:
                return error(409, "nothing to undo")
            kind, i = undone
            return jsonify({"undone": kind, "index": i, "next": i, "progress": session.progress()})

    return app


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


# ----------------------------------------------------------------------------- serve


def prepare(
    project: Project, *, queue: Path | None, run_dir: Path | None, n: int | None
) -> tuple[list[QueueItem], ContextLookup | None, str, dict[str, KnownPassage] | None]:
    """(items, context lookup, source name, known passages) for ``serve``.

    From a queue file, or else built from a scoring run by
    :func:`~pipeline.review.queue.queue_from_run`, as ``review export`` builds it. A run
    folder also gives each passage's neighbours and resolves passage ids.
    """
    import pandas as pd

    labels = project.taxonomy.labels
    frame = context = known = None
    if run_dir is not None:
        from ..runfolder import check_run

        check_run(Path(run_dir))
        frame = pd.read_parquet(Path(run_dir) / "passages.parquet")
        context = passage_context(frame)
        known = known_passages_in(frame)
    if queue is not None:
        return read_queue(queue, labels), context, f"review-serve:{Path(queue).name}", known
    if run_dir is None or frame is None:
        raise ForcecovError("give a queue file or a scoring run folder")
    built = queue_from_run(project, run_dir, n=n, passages=frame)
    return list(built.items), context, f"review-serve:{Path(run_dir).resolve().name}", known


def serve(
    project: Project,
    *,
    queue: Path | None,
    run_dir: Path | None,
    annotator: str,
    host: str = "127.0.0.1",
    port: int = 8765,
    n: int | None = None,
    console: Console | None = None,
    allowed_hosts: Iterable[str] = (),
) -> None:
    """Build the queue and serve the review page until Ctrl+C.

    A fresh session token is made each run and printed in the URL; ``allowed_hosts`` are more
    names the Host header may carry (for a bind beyond loopback).
    """
    from werkzeug.serving import make_server

    say = console.print if console is not None else print
    items, context, source, known = prepare(project, queue=queue, run_dir=run_dir, n=n)
    reviewed = project.paths.reviewed
    host = bare_host(host)  # "[::1]" binds as "::1"
    token = secrets.token_urlsafe(32)
    app = create_app(items, annotator=annotator, taxonomy=project.taxonomy, reviewed_path=reviewed,
                     context_lookup=context, source=source, known=known, token=token, host=host,
                     allowed_hosts=allowed_hosts)
    prog = app.extensions["forcecov_review"].progress()
    if not items:
        say("nothing to review: the queue is empty")
        return
    if logging.getLogger().getEffectiveLevel() > logging.INFO:  # no access log unless --verbose
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    warn_if_exposed(host, port)
    server = make_server(host, port, app, threaded=True)
    say(
        f"Review page for {annotator.strip()} ({prog['total']} passages, {prog['resumed']} "
        f"already reviewed by {annotator.strip()}, {prog['remaining']} to go; saving to "
        f"{reviewed}). Open this URL, which carries the session token; Ctrl+C to stop:"
    )
    say(f"    {review_url(host, server.server_port, token)}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

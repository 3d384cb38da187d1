"""The ``forcecov`` command line: parse, call a stage, print. No logic lives here."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import __version__
from .config import load_params, paths
from .errors import ForcecovError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Measure how well police forces' responses cover each recommendation.")
# soft_wrap: one message stays one line, whatever the terminal width.
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


@contextmanager
def progress_bar(total: int, description: str):
    """A progress bar on stderr when it is a terminal; otherwise nothing."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err, disable=not sys.stderr.isatty(),
                        transient=True)
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda *_: progress.advance(task)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def report_bad_documents(results) -> None:
    for r in results:
        if r.status == "error":
            err.print(f"[red]error[/red] {escape(r.path)}: {escape(r.reason)}")
        elif r.status == "warning":
            err.print(f"[yellow]warning[/yellow] {escape(r.path)}: {escape(r.reason)}")


PdfEngine = Annotated[Optional[str], typer.Option("--pdf-engine", help="pdfium (fast) or plumber")]
Manifest = Annotated[Optional[Path], typer.Option("--manifest", help="CSV with columns path, force")]


@app.command()
def extract(
    inputs: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively)")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder")] = Path("reports"),
    pdf_engine: PdfEngine = None,
    manifest: Manifest = None,
) -> None:
    """Extract passages from PDF, DOCX, TXT and MD responses."""
    from .extract import find_inputs, run_extract
    from .forces import read_manifest
    from .taxonomy import load_taxonomy

    params = load_params().override("ingest", pdf_engine=pdf_engine)
    mapping = read_manifest(manifest) if manifest else None
    files = find_inputs(inputs)
    if not files:
        fail(f"no input files found in {', '.join(map(str, inputs))}")
    with progress_bar(len(files), "Extracting") as advance:
        summary = run_extract(inputs, out_dir, ingest=params.ingest, seg=params.segment,
                              taxonomy=load_taxonomy(), manifest=mapping, on_done=advance)
    report_bad_documents(summary.results)
    out.print(f"{summary.n_files} files: {summary.n_ok} ok, {summary.n_warning} with warnings, "
              f"{summary.n_error} errors; {summary.n_passages} passages -> {out_dir}/passages.jsonl")
    if summary.n_ok + summary.n_warning == 0:
        raise typer.Exit(1)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details to stderr")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if version:
        out.print(f"forcecov {__version__}")
        raise typer.Exit(0)


def main() -> None:
    """Entry point: run the app, turning library errors into one-line messages."""
    try:
        app()
    except ForcecovError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        sys.exit(1)


_ = paths  # paths() is used by later commands; keep the import visible to readers

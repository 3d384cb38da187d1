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


def _model(model_path: Path | None, trust: bool):
    """Load the model named (or models/current), verified; train one if none exists yet."""
    from .modelstore import current_version, load_model, resolve_model_dir
    from .taxonomy import load_taxonomy

    p = paths()
    taxonomy = load_taxonomy()
    if model_path is None and current_version(p.models) is None:
        err.print("No model in models/ yet: training the default model first (offline, under a minute).")
        from .train import train_and_save

        train_and_save(p.labelled, p.models, taxonomy, load_params())
    return load_model(resolve_model_dir(p.models, model_path), taxonomy, models_dir=p.models, trust=trust)


ModelPath = Annotated[Optional[Path], typer.Option("--model", help="Model folder (default: models/current)")]
TrustModel = Annotated[bool, typer.Option("--trust-model", help="Allow a model from outside models/")]


@app.command()
def train(
    data: Annotated[Optional[Path], typer.Option("--data", help="Labelled data folder")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Models folder")] = None,
    no_promote: Annotated[bool, typer.Option("--no-current", help="Do not update models/current")] = False,
) -> None:
    """Train the passage classifier on data/labelled and write models/<version>/."""
    from .taxonomy import load_taxonomy
    from .train import train_and_save

    p = paths()
    taxonomy = load_taxonomy()
    with err.status("Training (grouped cross-validation, then the final fit)..."):
        result, folder = train_and_save(data or p.labelled, out_dir or p.models, taxonomy, load_params(),
                                        make_current=not no_promote)
    m = result.cv_metrics
    out.print(f"trained {result.model.version} on {len(result.train_rows)} passages "
              f"({len(result.eval_rows)} held out for promotion) in {result.seconds:.1f} s")
    out.print(f"grouped CV ({m['group_by']}, {m['n_folds']} folds): macro-F1 {m['macro_f1']:.3f}, ECE {m['ece']:.3f}")
    for lab, s in m["per_label"].items():
        out.print(f"  {lab:<16} F1 {s['f1']:.3f}  P {s['precision']:.3f}  R {s['recall']:.3f}  n={s['support']}")
    out.print(f"-> {folder}" + ("" if no_promote else " (models/current)"))


@app.command()
def classify(
    in_file: Annotated[Path, typer.Option("--in", help="JSONL: one {id, text, heading?} per line")],
    out_file: Annotated[Path, typer.Option("--out", help="JSONL output")],
    model_path: ModelPath = None,
    trust_model: TrustModel = False,
) -> None:
    """Classify passages from a JSONL file: adds probs, labels and echo to each object."""
    from .atomic import write_jsonl
    from .classify import classify_records, read_passage_lines

    records = read_passage_lines(in_file)
    model = _model(model_path, trust_model)
    n = write_jsonl(out_file, classify_records(records, model))
    out.print(f"classified {n} passages with model {model.version} -> {out_file}")


@app.command()
def score(
    inputs: Annotated[list[Path], typer.Argument(help="Files or folders of submissions")],
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder for the outputs")] = Path("reports"),
    model_path: ModelPath = None,
    trust_model: TrustModel = False,
    pdf_engine: PdfEngine = None,
    manifest: Manifest = None,
) -> None:
    """Score submissions: coverage per force and category, with evidence, and an HTML report."""
    from .extract import find_inputs
    from .forces import read_manifest
    from .score import run_score
    from .taxonomy import load_taxonomy

    params = load_params().override("ingest", pdf_engine=pdf_engine)
    files = find_inputs(inputs)
    if not files:
        fail(f"no input files found in {', '.join(map(str, inputs))}")
    model = _model(model_path, trust_model)
    with progress_bar(len(files), "Scoring") as advance:
        summary = run_score(inputs, out_dir, model=model, params=params, taxonomy=load_taxonomy(),
                            manifest=read_manifest(manifest) if manifest else None, on_done=advance)
    report_bad_documents(summary.results)
    out.print(f"{summary.n_files} files: {summary.n_ok} ok, {summary.n_warning} with warnings, "
              f"{summary.n_error} errors; {summary.n_passages} passages, {summary.n_needs_review} need review")
    for cat in summary.summary["categories"].values():
        out.print(f"  {cat['sentence']}")
    out.print(f"-> {out_dir}/report.html, coverage.csv, passages.parquet")
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

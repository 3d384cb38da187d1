"""What the command line prints: the two consoles, the progress bar, one-line errors, and
the tables and summaries each command ends with. Printing only: no stage logic here."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    import pandas as pd

    from .evaluate import Evaluation
    from .extract import ExtractSummary
    from .findings import ScoreSummary
    from .records import DocumentResult
    from .taxonomy import Taxonomy
    from .train import TrainResult

# soft_wrap: one message stays one line, whatever the terminal width.
err = Console(stderr=True, highlight=False, soft_wrap=True)
# Tables are wide; when output is piped (no terminal width), do not squeeze them to 80 columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


@contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr when it is a terminal; otherwise nothing."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err, disable=not sys.stderr.isatty(),
                        transient=True)
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda *_: progress.advance(task)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """``text`` safe to print as part of one line: control characters (a newline in a file
    name could forge a line of output) shown as escapes, rich markup escaped."""
    return escape(_CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text))


def report_bad_documents(results: Iterable[DocumentResult]) -> None:
    for r in results:
        if r.status == "error":
            err.print(f"[red]error[/red] {one_line(r.path)}: {one_line(r.reason)}")
        elif r.status == "warning":
            err.print(f"[yellow]warning[/yellow] {one_line(r.path)}: {one_line(r.reason)}")

def print_extract_summary(summary: ExtractSummary, out_dir: Path) -> None:
    """Bad files one line each, then the counts; exit 1 when no document could be read."""
    report_bad_documents(summary.results)
    out.print(f"{summary.n_files} files: {summary.n_ok} ok, {summary.n_warning} with warnings, "
              f"{summary.n_error} errors; {summary.n_passages} passages "
              f"-> {out_dir}/passages.jsonl")
    if summary.n_ok + summary.n_warning == 0:
        raise typer.Exit(1)

def print_training(result: TrainResult) -> None:
    """What was trained on what, and its grouped cross-validation scores per category."""
    m = result.cv_metrics
    out.print(f"trained {result.model.version} on {len(result.train_rows)} passages "
              f"({len(result.eval_rows)} held out for promotion) in {result.seconds:.1f} s")
    out.print(f"grouped CV ({m['group_by']}, {m['n_folds']} folds): "
              f"macro-F1 {m['macro_f1']:.3f}, ECE {m['ece']:.3f}")
    for lab, s in m["per_label"].items():
        out.print(f"  {lab:<16} F1 {s['f1']:.3f}  P {s['precision']:.3f}  "
                  f"R {s['recall']:.3f}  n={s['support']}")

def print_score_summary(summary: ScoreSummary, compare_with: Path | None,
                        taxonomy: Taxonomy) -> None:
    """What a run found, one line per category; exit 1 when no document could be read."""
    report_bad_documents(summary.results)
    out.print(f"{summary.n_files} files ({summary.n_cached} from cache): {summary.n_ok} ok, "
              f"{summary.n_warning} with warnings, {summary.n_error} errors; "
              f"{summary.n_passages} passages, {summary.n_needs_review} need review; "
              f"{summary.seconds['total']:.1f} s")
    for cat in summary.summary["categories"].values():
        out.print(f"  {cat['sentence']}")
    if compare_with is not None:
        import pandas as pd

        print_changes(pd.read_csv(summary.out_dir / "changes.csv"), taxonomy)
    out.print(f"-> {summary.out_dir}/report.html, coverage.csv, passages.parquet")
    if summary.n_ok + summary.n_warning == 0:
        raise typer.Exit(1)

def print_changes(changes: pd.DataFrame, taxonomy: Taxonomy) -> None:
    """One line per category: how many forces changed, and how."""
    from .compare import COUNTED_CHANGES, change_counts, force_changes

    forces = force_changes(changes)
    out.print(f"forces new in this run: {', '.join(forces['new']) or 'none'}; in the previous "
              f"run only: {', '.join(forces['missing']) or 'none'}")
    for c in change_counts(changes, taxonomy):
        parts = [f"{k}: {c[k]} ({', '.join(c['forces'][k])})"  # type: ignore[index]
                 for k in COUNTED_CHANGES if c[k]]
        out.print(f"  {c['category']}: {'; '.join(parts) if parts else 'no change'}")


def print_table(title: str, frame: pd.DataFrame, float_format: str = "{:.3f}") -> None:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in frame.columns:
        table.add_column(str(col), justify="right" if frame[col].dtype.kind in "fi" else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*[float_format.format(v) if isinstance(v, float) else str(v) for v in row])
    out.print(table)


def print_evaluation(result: Evaluation, out_dir: Path) -> None:
    """The frozen-split headline, echo detection, then every table the evaluation made."""
    from .evaluate import titled_tables

    out.print(f"model {result['model_version']} on the frozen evaluation split "
              f"(n={result['n_eval']}): macro-F1 {result['macro_f1']:.3f}, ECE {result['ece']:.3f}")
    e = result["echo"]
    out.print(f"echo detection: recall {e['recall']:.3f} on {e['n_restated']} restated passages, "
              f"precision {e['precision']:.3f} against {e['n_content']} content passages")
    if "field_model" in result:
        f = result["field_model"]
        out.print(f"on the field set's test part (n={f['n']:.0f}): macro-F1 {f['macro_f1']:.3f}, "
                  f"{f['unlabelled']:.0%} of the passages that carry a label given none")
    for title, table in titled_tables(result):
        print_table(title, table)
    out.print(f"-> {out_dir}/metrics.json, {out_dir}/plots/")


def warn_missing_kind(kind: str, hint: str) -> None:
    """One line for an approach that cannot be built here, with what to install."""
    err.print(f"[yellow]skipping {kind}[/yellow]: not installed ({escape(hint)})")

"""The ``forcecov`` command line: parse, call a stage, print. No logic lives here."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import __version__
from .config import load_params, paths
from .errors import ForcecovError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    from .classify import TrainedModel
    from .config import Params
    from .records import DocumentResult
    from .taxonomy import Taxonomy

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Measure how well police forces' responses cover each recommendation.")
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


def _find_inputs_or_fail(inputs: list[Path]) -> list[Path]:
    """The files to read (folders searched once, here); a usage error when there are none."""
    from .extract import find_inputs

    files = find_inputs(inputs)
    if not files:
        fail(f"no input files found in {', '.join(map(str, inputs))}")
    return files


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


Jobs = Annotated[
    int | None, typer.Option("--jobs", "-j", help="Parallel worker processes (joblib)")
]
Backend = Annotated[str | None, typer.Option("--backend", help="local (joblib) or dask")]
Scheduler = Annotated[
    str | None,
    typer.Option("--scheduler", help="dask scheduler address, e.g. tcp://host:8786"),
]
NoCache = Annotated[
    bool, typer.Option("--no-cache", help="Extract every document again (ignore the cache)")
]


def _cache_dir(no_cache: bool, params: Params) -> Path | None:
    return None if no_cache or not params.score.cache else paths().interim / "cache"


PdfEngine = Annotated[str | None, typer.Option("--pdf-engine", help="pdfium (fast) or plumber")]
Ocr = Annotated[
    bool | None,
    typer.Option("--ocr/--no-ocr", help="Read scanned pages (images with no text layer) with "
                                        "Tesseract; default ingest.ocr in params.yaml"),
]
Manifest = Annotated[Path | None, typer.Option("--manifest", help="CSV with columns path, force")]


@app.command()
def extract(
    inputs: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively)")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder")] = Path("reports"),
    pdf_engine: PdfEngine = None,
    ocr: Ocr = None,
    manifest: Manifest = None,
    jobs: Jobs = None,
    backend: Backend = None,
    scheduler: Scheduler = None,
    no_cache: NoCache = False,
) -> None:
    """Extract passages from PDF, DOCX, TXT and MD responses."""
    from .extract import run_extract
    from .forces import read_manifest
    from .taxonomy import load_taxonomy

    params = load_params().override("ingest", pdf_engine=pdf_engine, ocr=ocr)
    mapping = read_manifest(manifest) if manifest else None
    files = _find_inputs_or_fail(inputs)
    with progress_bar(len(files), "Extracting") as advance:
        summary = run_extract(files, out_dir, ingest=params.ingest, seg=params.segment,
                              taxonomy=load_taxonomy(), manifest=mapping, on_done=advance,
                              jobs=jobs or params.score.jobs,
                              backend=backend or params.score.backend,
                              scheduler=scheduler, cache_dir=_cache_dir(no_cache, params))
    report_bad_documents(summary.results)
    out.print(f"{summary.n_files} files: {summary.n_ok} ok, {summary.n_warning} with warnings, "
              f"{summary.n_error} errors; {summary.n_passages} passages "
              f"-> {out_dir}/passages.jsonl")
    if summary.n_ok + summary.n_warning == 0:
        raise typer.Exit(1)


def _model(model_path: Path | None, trust: bool) -> TrainedModel:
    """Load the model named (or models/current), verified; train one if none exists yet."""
    from .modelstore import current_version, load_model, resolve_model_dir
    from .taxonomy import load_taxonomy

    p = paths()
    taxonomy = load_taxonomy()
    if model_path is None and current_version(p.models) is None:
        err.print("No model in models/ yet: training the default model first "
                  "(offline, under a minute).")
        from .train import train_and_save

        train_and_save(p.labelled, p.models, taxonomy, load_params(), field_dir=p.field)
    return load_model(resolve_model_dir(p.models, model_path), taxonomy, trust=trust)


ModelPath = Annotated[
    Path | None, typer.Option("--model", help="Model folder (default: models/current)")
]
TrustModel = Annotated[
    bool, typer.Option("--trust-model",
                       help="Allow a pickled model (model.joblib), which runs code when loaded; "
                            "array models (model.npz) never need it")
]


@app.command()
def train(
    data: Annotated[Path | None, typer.Option("--data", help="Labelled data folder")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Models folder")] = None,
    no_promote: Annotated[
        bool, typer.Option("--no-current", help="Do not update models/current")
    ] = False,
    kind: Annotated[
        str | None, typer.Option("--kind", help="Approach to train (model.kind in params.yaml "
                                                "by default); `keywords` needs only the "
                                                "taxonomy's keyword lists")
    ] = None,
) -> None:
    """Train the passage classifier on data/labelled and write models/<version>/."""
    from .taxonomy import load_taxonomy, uses_packaged_taxonomy
    from .train import train_and_save

    p = paths()
    taxonomy = load_taxonomy()
    params = load_params().override("model", kind=kind) if kind else load_params()
    with err.status("Training (grouped cross-validation, then the final fit)..."):
        # The field set is labelled against the packaged taxonomy: another one cannot use it.
        result, folder = train_and_save(data or p.labelled, out_dir or p.models, taxonomy,
                                        params, make_current=not no_promote,
                                        field_dir=p.field if uses_packaged_taxonomy() else None)
    m = result.cv_metrics
    out.print(f"trained {result.model.version} on {len(result.train_rows)} passages "
              f"({len(result.eval_rows)} held out for promotion) in {result.seconds:.1f} s")
    out.print(f"grouped CV ({m['group_by']}, {m['n_folds']} folds): "
              f"macro-F1 {m['macro_f1']:.3f}, ECE {m['ece']:.3f}")
    for lab, s in m["per_label"].items():
        out.print(f"  {lab:<16} F1 {s['f1']:.3f}  P {s['precision']:.3f}  "
                  f"R {s['recall']:.3f}  n={s['support']}")
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
    out_dir: Annotated[
        Path, typer.Option("--out", help="Run folder for the outputs")
    ] = Path("reports"),
    model_path: ModelPath = None,
    trust_model: TrustModel = False,
    pdf_engine: PdfEngine = None,
    ocr: Ocr = None,
    manifest: Manifest = None,
    jobs: Jobs = None,
    backend: Backend = None,
    scheduler: Scheduler = None,
    no_cache: NoCache = False,
    shared_output: Annotated[
        bool, typer.Option("--shared-output",
                           help="Make the run's files readable by others (umask) instead of "
                                "private to you (0600/0700): they quote the documents")
    ] = False,
    compare_with: Annotated[
        Path | None, typer.Option("--compare-with",
                                  help="An earlier run folder: also write changes.csv and a "
                                       "report section on what changed since (may be --out)")
    ] = None,
    profile: Annotated[
        bool, typer.Option("--profile", help="Profile the run (cProfile): profile.txt in the "
                                             "run folder; stage timings are in summary.json")
    ] = False,
) -> None:
    """Score submissions: coverage per force and category, with evidence, and an HTML report."""
    from .forces import read_manifest
    from .score import run_score
    from .taxonomy import load_taxonomy

    params = load_params().override("ingest", pdf_engine=pdf_engine, ocr=ocr)
    files = _find_inputs_or_fail(inputs)
    model = _model(model_path, trust_model)
    with progress_bar(len(files), "Scoring") as advance:
        summary = run_score(files, out_dir, model=model, params=params, taxonomy=load_taxonomy(),
                            manifest=read_manifest(manifest) if manifest else None, on_done=advance,
                            jobs=jobs, backend=backend, scheduler=scheduler,
                            cache_dir=_cache_dir(no_cache, params), shared_output=shared_output,
                            previous_run=compare_with, profile=profile)
    report_bad_documents(summary.results)
    out.print(f"{summary.n_files} files ({summary.n_cached} from cache): {summary.n_ok} ok, "
              f"{summary.n_warning} with warnings, {summary.n_error} errors; "
              f"{summary.n_passages} passages, {summary.n_needs_review} need review; "
              f"{summary.seconds['total']:.1f} s")
    for cat in summary.summary["categories"].values():
        out.print(f"  {cat['sentence']}")
    if compare_with is not None:
        import pandas as pd

        print_changes(pd.read_csv(out_dir / "changes.csv"), load_taxonomy())
    out.print(f"-> {out_dir}/report.html, coverage.csv, passages.parquet")
    if summary.n_ok + summary.n_warning == 0:
        raise typer.Exit(1)


@app.command()
def compare(
    old_run: Annotated[Path, typer.Argument(help="The earlier scoring run folder")],
    new_run: Annotated[Path, typer.Argument(help="The later one: changes.csv and a report "
                                                 "section are added to it")],
) -> None:
    """What changed per force and category between two scoring runs (a second round of
    responses, say): new and lost evidence, newly addressed categories, score changes."""
    from .compare import compare_folders
    from .taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    try:
        changes = compare_folders(old_run, new_run, taxonomy)
    except ValueError as e:
        fail(str(e), code=2)
    print_changes(changes, taxonomy)
    out.print(f"-> {new_run}/changes.csv, {new_run}/report.html (section: Changes since the "
              "previous run)")


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


@app.command()
def evaluate(
    model_path: ModelPath = None,
    trust_model: TrustModel = False,
    do_compare: Annotated[
        bool, typer.Option("--compare", help="Compare approaches on the same folds")
    ] = False,
    approaches: Annotated[str, typer.Option(help="Approaches for --compare, comma-separated")] =
        "keywords,tfidf_lr,tfidf_svm,spacy,embeddings",
    lovo: Annotated[bool, typer.Option("--lovo", help="Leave-one-voice-out robustness")] = False,
    coverage_run: Annotated[
        Path | None, typer.Option("--coverage", help="A scoring run folder to check against gold")
    ] = None,
    gold: Annotated[Path | None, typer.Option(help="Gold coverage CSV")] = None,
    scanned_run: Annotated[
        Path | None, typer.Option("--scanned", help="A scoring run of data/raw with --ocr: "
                                  "character error rate and coverage of each scanned sample "
                                  "against its text twin (data/raw/scanned/gold_coverage.csv)")
    ] = None,
    field: Annotated[
        bool, typer.Option("--field", help="Train each of --field-approaches as shipped and "
                           "score it on the field set's test part (data/field)")
    ] = False,
    field_approaches: Annotated[str, typer.Option(help="Approaches for --field, comma-separated "
                                                  "(default: the model.kind in params.yaml)")] = "",
    logo: Annotated[bool, typer.Option(help="With --field: leave one genre out too")] = True,
    depth: Annotated[
        bool, typer.Option("--depth", help="Only the depth heads (sub-points, status, "
                           "specificity): F1 on held-out genres and on the field test part")
    ] = False,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Where metrics.json and plots go")
    ] = Path("reports"),
) -> None:
    """Evaluate the model on the frozen split; optionally compare approaches, LOVO, gold coverage.
    """
    from .corpus import load_corpus
    from .evaluate import run_evaluation
    from .taxonomy import load_taxonomy

    p = paths()
    if depth:
        from .deptheval import evaluate_depth

        with err.status("Fitting the depth heads on each fold..."):
            table = evaluate_depth(p.labelled, p.field, load_taxonomy(), load_params())
        print_table("Depth heads: F1 on held-out genres and on the field test part",
                    table)
        return
    from .score import check_run

    for run in (coverage_run, scanned_run):
        if run is not None:
            check_run(run)  # an incomplete or mixed run folder is refused, not averaged
    taxonomy = load_taxonomy()
    params = load_params()
    model = _model(model_path, trust_model)
    corpus = load_corpus(p.labelled, taxonomy)
    kinds = _available_kinds(approaches) if do_compare else None
    field_set = field_kinds = None
    if field:
        from .fieldset import load_field

        field_set = load_field(p.field, taxonomy,
                               calibration_fraction=params.field.calibration_fraction,
                               seed=params.field.seed)
        field_kinds = _available_kinds(field_approaches or params.model.kind)
    with err.status("Evaluating (with --field, each approach is trained as shipped: minutes)..."):
        result = run_evaluation(model, corpus, taxonomy, params, out_dir, compare_kinds=kinds,
                                lovo=lovo, coverage_run=coverage_run,
                                gold_csv=gold or (p.raw / "gold_coverage.csv"), field=field_set,
                                field_kinds=field_kinds, logo=logo, scanned_run=scanned_run,
                                scanned_gold=p.raw / "scanned" / "gold_coverage.csv")
    tables = result.pop("tables")
    out.print(f"model {result['model_version']} on the frozen evaluation split "
              f"(n={result['n_eval']}): macro-F1 {result['macro_f1']:.3f}, ECE {result['ece']:.3f}")
    print_table("Per category (frozen split)", tables["per_category"])
    e = result["echo"]
    out.print(f"echo detection: recall {e['recall']:.3f} on {e['n_restated']} restated passages, "
              f"precision {e['precision']:.3f} against {e['n_content']} content passages")
    if "field" in tables:
        n_test = int((field_set["part"] == "test").sum()) if field_set is not None else 0
        print_table(f"Field set, test part (n={n_test}; never trained on, thresholds not set "
                    "on it)", tables["field"])
        print_table("Field set per category", tables["field_per_category"])
        print_table("Field set per genre", tables["field_by_genre"])
        print_table("How well a plain classifier tells the sets apart (ROC AUC; 0.5 = not at "
                    "all)", tables["separability"])
        if not tables["logo"].empty:
            print_table("Leave one genre out (thresholds as shipped)", tables["logo"])
    for key, title in (("comparison", "Approaches on the same grouped folds"),
                       ("lovo", "Leave one voice out"),
                       ("coverage", "Coverage agreement with gold"),
                       ("subpoints", "Sub-points evidenced, against gold (document x sub-point)"),
                       ("status", "Status of each document x category, against gold (F1; "
                                  "last rows: macro-F1 and Cohen's kappa)"),
                       ("scanned", "Scanned samples read by OCR against their text twins "
                                   "(cer: character error rate; agree: share of categories "
                                   "whose 'addressed' matches)")):
        if key in tables:
            print_table(title, tables[key])
    out.print(f"-> {out_dir}/metrics.json, {out_dir}/plots/")


def _available_kinds(names: str) -> list[str]:
    """The comma-separated model kinds that can be built here; the others are named on
    stderr with how to install them."""
    from .classifiers.registry import available

    kinds = [k.strip() for k in names.split(",") if k.strip()]
    for k in kinds:
        if not available(k):
            err.print(f"[yellow]skipping {k}[/yellow]: not installed "
                      "(pip install -e '.[embeddings]')")
    return [k for k in kinds if available(k)]


review_app = typer.Typer(no_args_is_help=True, help="The analyst review loop.")
app.add_typer(review_app, name="review")


def _run_model_and_thresholds(
    run_dir: Path,
) -> tuple[str, list[str], npt.NDArray[np.float64]]:
    """Model version and thresholds behind a scoring run (from its summary and model card)."""
    from .review import run_model_and_thresholds
    from .taxonomy import load_taxonomy

    return run_model_and_thresholds(run_dir, paths().models, load_taxonomy().labels)


@review_app.command("export")
def review_export(
    from_dir: Annotated[
        Path, typer.Option("--from", help="A scoring run folder (forcecov score --out)")
    ],
    out_file: Annotated[
        Path, typer.Option("--out", help="Queue file: .csv, .jsonl or .labelstudio.json")
    ],
    n: Annotated[int | None, typer.Option("--n", help="How many passages")] = None,
    strategy: Annotated[str | None, typer.Option(help="uncertainty | margin | diverse")] = None,
) -> None:
    """Queue the passages the model is least sure of, for analysts to label."""
    import pandas as pd

    from .review import build_queue, write_queue
    from .score import check_run

    params = load_params()
    check_run(from_dir)
    version, labels, thresholds = _run_model_and_thresholds(from_dir)
    scored = pd.read_parquet(from_dir / "passages.parquet")
    queue = build_queue(scored, labels, thresholds, n=n or params.review.n,
                        strategy=strategy or params.review.strategy,
                        dedup_similarity=params.review.dedup_similarity,
                        labelled_dir=paths().labelled)
    write_queue(queue, out_file, labels, version)
    out.print(f"queued {len(queue)} passages ({strategy or params.review.strategy}) -> {out_file}")


@review_app.command("import")
def review_import(
    file: Annotated[
        Path, typer.Argument(help="Reviewed .csv, .jsonl or Label Studio export .json")
    ],
    annotator: Annotated[str, typer.Option("--annotator", help="Who gave these labels")],
    from_dir: Annotated[
        Path | None, typer.Option("--from", help="Run folder to resolve passage ids")
    ] = None,
) -> None:
    """Append reviewed labels to data/labelled/reviewed.jsonl, with provenance."""
    from .review import import_reviews, known_passages
    from .taxonomy import load_taxonomy

    result = import_reviews(file, annotator=annotator, taxonomy=load_taxonomy(),
                            reviewed=paths().reviewed,
                            known=known_passages(from_dir) if from_dir else None)
    out.print(f"{result.n_rows} decisions read: {result.n_added} added, "
              f"{result.n_already} already imported -> {result.path}")


@review_app.command("conflicts")
def review_conflicts() -> None:
    """List passages on which annotators disagree."""
    from .review import conflicts

    table = conflicts(paths().reviewed)
    if table.empty:
        out.print("no conflicts")
        return
    print_table(f"{table['passage'].nunique()} passages with conflicting labels", table)


@review_app.command("audit")
def review_audit(
    top: Annotated[int, typer.Option(help="How many to list")] = 30,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Also write the ranking as a queue (.csv/.jsonl)"),
    ] = None,
) -> None:
    """Rank likely label errors in data/labelled from out-of-fold probabilities."""
    from .atomic import write_frame_csv, write_jsonl
    from .corpus import load_corpus
    from .review import audit
    from .taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    with err.status("Cross-validating to find likely label errors..."):
        table = audit(load_corpus(paths().labelled, taxonomy), taxonomy, load_params(), top=top)
    ranked_by = table["flagged_by"].iloc[0] if len(table) else "-"
    print_table(f"Likely label errors (ranked by {ranked_by})",
                table[["id", "labels", "suggested", "self_confidence", "text"]].assign(
                    text=table["text"].str.slice(0, 70)))
    if out_file:
        if out_file.suffix == ".csv":
            write_frame_csv(out_file, table)
        else:
            write_jsonl(out_file, [{"passage_id": r["id"], "text": r["text"],
                                    "labels": r["labels"].split(";") if r["labels"] else [],
                                    "suggested": r["suggested"], "notes": ""}
                                   for r in table.to_dict("records")])
        out.print(f"-> {out_file}")


@review_app.command("serve")
def review_serve(
    queue: Annotated[
        Path | None, typer.Option("--queue", help="A queue file from `review export`")
    ] = None,
    from_dir: Annotated[Path | None, typer.Option("--from", help="A scoring run folder")] = None,
    annotator: Annotated[str, typer.Option("--annotator", help="Who is labelling")] = "analyst",
    host: Annotated[
        str, typer.Option(help="Address to bind (127.0.0.1 by default; anything beyond "
                               "loopback warns, and the session token is then the only "
                               "protection)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8765,
    n: Annotated[int | None, typer.Option("--n", help="Queue size when built from --from")] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option("--allow-host",
                     help="Another name or address this machine is reached by (repeatable; "
                          "only needed with a --host beyond loopback)"),
    ] = None,
) -> None:
    """A local review page: read each passage in context, tick categories, save at once."""
    from .reviewserver import serve

    if (queue is None) == (from_dir is None):
        fail("give exactly one of --queue FILE or --from RUN_DIR", code=2)
    serve(queue=queue, run_dir=from_dir, annotator=annotator, host=host, port=port, n=n,
          console=out, allowed_hosts=allow_host or ())


@app.command()
def promote(
    candidate: Annotated[
        str | None, typer.Option(help="Candidate version (default: newest not current)")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if the gate fails (recorded in the card)")
    ] = False,
    by: Annotated[str, typer.Option(help="Who is promoting")] = "unknown",
    trust_model: TrustModel = False,
) -> None:
    """Compare a candidate with models/current on the frozen split; promote if no worse."""
    from .classifiers.cv import split_frozen
    from .corpus import load_corpus
    from .modelstore import current_version, load_model
    from .promote import gate, latest_candidate
    from .promote import promote as do_promote
    from .taxonomy import load_taxonomy

    p = paths()
    taxonomy = load_taxonomy()
    params = load_params()
    current = current_version(p.models)
    version = candidate or latest_candidate(p.models, current)
    if version is None:
        fail("no candidate model: train one with `forcecov train --no-current`")
    cand_model = load_model(p.models / version, taxonomy, trust=trust_model)
    cur_model = load_model(p.models / current, taxonomy, trust=trust_model) if current else None
    _, frozen = split_frozen(load_corpus(p.labelled, taxonomy), params)
    result = gate(cand_model, cur_model, frozen, taxonomy, params.promote)
    print_table(f"{version} vs {current or '(none)'} on the frozen split (n={len(frozen)})",
                result.table.fillna(float("nan")))
    if do_promote(p.models, version, result, force=force, by=by):
        note = " (forced; recorded in the card)" if force and not result.passed else ""
        out.print(f"promoted {version} -> models/current{note}")
    else:
        out.print("not promoted: " + "; ".join(result.reasons) + " (use --force to override)")
        raise typer.Exit(1)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"forcecov {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit",
                                          callback=_print_version, is_eager=True)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details to stderr")] = False,
    root: Annotated[
        Path | None,
        typer.Option("--root", help="Project folder (params.yaml, models/, data/); default "
                                    "$FORCECOV_ROOT, else the installed package's project, "
                                    "never the working directory"),
    ] = None,
    taxonomy: Annotated[
        Path | None,
        typer.Option("--taxonomy", help="Recommendation framework (categories, sub-points, "
                                        "keywords) to score against; default the packaged "
                                        "one (pipeline/taxonomy.yaml)"),
    ] = None,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from .config import root_and_source

    if root is not None:
        if not (root / "params.yaml").is_file():
            fail(f"{root}: not a forcecov project (no params.yaml); pass the folder that "
                 "holds params.yaml, models/ and data/", code=2)
        os.environ["FORCECOV_ROOT"] = str(root.resolve())  # also seen by worker processes
    if taxonomy is not None:
        from .taxonomy import TAXONOMY_ENV, TaxonomyError, load_taxonomy

        try:
            load_taxonomy(taxonomy)
        except TaxonomyError as e:  # names the file and the reason
            fail(str(e), code=2)
        os.environ[TAXONOMY_ENV] = str(taxonomy.resolve())
    if verbose:
        where, source = root_and_source()
        err.print(f"project root: {where} (from {source})")


def main() -> None:
    """Entry point: run the app, turning library errors into one-line messages."""
    try:
        app()
    except ForcecovError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        sys.exit(1)


_ = paths  # paths() is used by later commands; keep the import visible to readers

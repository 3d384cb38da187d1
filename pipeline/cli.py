"""The ``forcecov`` command line: parse, call a stage, print. No logic lives here."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from . import __version__
from .errors import ForcecovError
from .review.cli import review_app
from .terminal import (
    err,
    fail,
    out,
    print_changes,
    print_evaluation,
    print_extract_summary,
    print_score_summary,
    print_table,
    print_training,
    progress_bar,
    warn_missing_kind,
)

if TYPE_CHECKING:
    from .classify import TrainedModel
    from .config import Params
    from .project import Project

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Measure how well police forces' responses cover each recommendation.")


def _find_inputs_or_fail(inputs: list[Path]) -> list[Path]:
    """The files to read (folders searched once, here); a usage error when there are none."""
    from .inputfiles import find_inputs

    files = find_inputs(inputs)
    if not files:
        fail(f"no input files found in {', '.join(map(str, inputs))}")
    return files


Jobs = Annotated[
    int | None,
    typer.Option("--jobs", "-j", help="Documents read at once, each in its own worker process")
]
Backend = Annotated[str | None, typer.Option("--backend", help="local (joblib) or dask")]
Scheduler = Annotated[
    str | None,
    typer.Option("--scheduler", help="dask scheduler address, e.g. tcp://host:8786"),
]
NoCache = Annotated[
    bool, typer.Option("--no-cache", help="Extract every document again (ignore the cache)")
]
PdfEngine = Annotated[str | None, typer.Option("--pdf-engine", help="pdfium (fast) or plumber")]
Ocr = Annotated[
    bool | None,
    typer.Option("--ocr/--no-ocr", help="Read scanned pages (images with no text layer) with "
                                        "Tesseract; default ingest.ocr in params.yaml"),
]
Manifest = Annotated[Path | None, typer.Option("--manifest", help="CSV with columns path, force")]
ModelPath = Annotated[
    Path | None, typer.Option("--model", help="Model folder (default: models/current)")
]
TrustModel = Annotated[
    bool, typer.Option("--trust-model",
                       help="Allow a pickled model (model.joblib), which runs code when loaded; "
                            "array models (model.npz) never need it")
]
SharedOutput = Annotated[
    bool, typer.Option("--shared-output",
                       help="Make the run's files readable by others (umask) instead of "
                            "private to you (0600/0700): they quote the documents")
]
CompareWith = Annotated[
    Path | None, typer.Option("--compare-with",
                              help="An earlier run folder: also write changes.csv and a "
                                   "report section on what changed since (may be --out)")
]
Profile = Annotated[
    bool, typer.Option("--profile", help="Profile the run (cProfile): profile.txt in the "
                                         "run folder; stage timings are in summary.json")
]


def _cache_dir(no_cache: bool, project: Project) -> Path | None:
    return None if no_cache or not project.params.score.cache else project.paths.interim / "cache"


def _ingest_params(project: Project, pdf_engine: str | None, ocr: bool | None) -> Params:
    return project.params.override("ingest", pdf_engine=pdf_engine, ocr=ocr)


@app.command()
def extract(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively)")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder")] = Path("reports"),
    pdf_engine: PdfEngine = None, ocr: Ocr = None, manifest: Manifest = None,
    jobs: Jobs = None, backend: Backend = None, scheduler: Scheduler = None,
    no_cache: NoCache = False,
) -> None:
    """Extract passages from PDF, DOCX, TXT and MD responses."""
    from .extract import run_extract
    from .forces import read_manifest

    project: Project = ctx.obj
    params = _ingest_params(project, pdf_engine, ocr)
    files = _find_inputs_or_fail(inputs)
    with progress_bar(len(files), "Extracting") as advance:
        summary = run_extract(files, out_dir, ingest=params.ingest, seg=params.segment,
                              taxonomy=project.taxonomy, on_done=advance,
                              manifest=read_manifest(manifest) if manifest else None,
                              jobs=jobs or params.score.jobs,
                              backend=backend or params.score.backend, scheduler=scheduler,
                              cache_dir=_cache_dir(no_cache, project))
    print_extract_summary(summary, out_dir)


def _model(project: Project, model_path: Path | None, trust: bool) -> TrainedModel:
    """The model named (or models/current), verified; trained first if there is none."""
    from .modelstore import model_for

    return model_for(project, model_path, trust=trust, on_training=lambda: err.print(
        "No model in models/ yet: training the default model first (offline, under a minute)."))


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[Path | None, typer.Option("--data", help="Labelled data folder")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Models folder")] = None,
    no_promote: Annotated[bool, typer.Option("--no-current", help="Keep models/current")] = False,
    kind: Annotated[
        str | None, typer.Option("--kind", help="Approach to train (model.kind in params.yaml "
                                                "by default); `keywords` needs only the "
                                                "taxonomy's keyword lists")
    ] = None,
    depth_only: Annotated[bool, typer.Option(
        "--depth-only", help="Refit only the depth heads (status, specificity, sub-points) "
                             "and the fallback; classifier, thresholds and echo stay those "
                             "of models/current")] = False,
) -> None:
    """Train the passage classifier on data/labelled and write models/<version>/."""
    from .train import train_for_project

    with err.status("Refitting the depth heads..." if depth_only else
                    "Training (grouped cross-validation, then the final fit)..."):
        result, folder = train_for_project(ctx.obj, data=data, out_dir=out_dir, kind=kind,
                                           make_current=not no_promote, depth_only=depth_only)
    if result is not None:
        print_training(result)
    out.print(f"-> {folder}" + ("" if no_promote else " (models/current)"))


@app.command()
def classify(
    ctx: typer.Context,
    in_file: Annotated[Path, typer.Option("--in", help="JSONL: extract's passages.jsonl, or "
                                                       "one {id, text, heading?} per line")],
    out_file: Annotated[Path, typer.Option("--out", help="passages.parquet (scored passages, "
                                                         "for `forcecov report`) or JSONL")],
    model_path: ModelPath = None, trust_model: TrustModel = False, jobs: Jobs = None,
) -> None:
    """Classify passages: extract's output into passages.parquet, or any JSONL into JSONL.

    A .parquet --out is the chain's classify stage (read by `forcecov report`); a JSONL
    --out gets each input object with probs, labels and echo added."""
    from .predict import classify_file

    project: Project = ctx.obj
    model = _model(project, model_path, trust_model)
    n = classify_file(in_file, out_file, model=model, params=project.params,
                      taxonomy=project.taxonomy, jobs=jobs)
    out.print(f"classified {n} passages with model {model.version} -> {out_file}")


@app.command()
def report(
    ctx: typer.Context,
    passages_file: Annotated[Path, typer.Argument(help="Scored passages: `forcecov classify "
                                                       "--out X.parquet`")],
    documents: Annotated[Path, typer.Option("--documents", help="extract's documents.csv")],
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder")] = Path("reports"),
    shared_output: SharedOutput = False, compare_with: CompareWith = None,
) -> None:
    """Coverage and the HTML report from classified passages: a run folder like `score`'s."""
    from .findings import report_classified

    project: Project = ctx.obj
    summary = report_classified(passages_file, documents, out_dir, params=project.params,
                                taxonomy=project.taxonomy, shared_output=shared_output,
                                previous_run=compare_with)
    print_score_summary(summary, compare_with, project.taxonomy)


@app.command()
def score(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="Files or folders of submissions")],
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder")] = Path("reports"),
    model_path: ModelPath = None, trust_model: TrustModel = False,
    pdf_engine: PdfEngine = None, ocr: Ocr = None, manifest: Manifest = None,
    jobs: Jobs = None, backend: Backend = None, scheduler: Scheduler = None,
    no_cache: NoCache = False, shared_output: SharedOutput = False,
    compare_with: CompareWith = None, profile: Profile = False,
) -> None:
    """Score submissions: coverage per force and category, with evidence, and an HTML report."""
    from .forces import read_manifest
    from .score import run_score

    project: Project = ctx.obj
    params = _ingest_params(project, pdf_engine, ocr)
    files = _find_inputs_or_fail(inputs)
    model = _model(project, model_path, trust_model)
    with progress_bar(len(files), "Scoring") as advance:
        summary = run_score(files, out_dir, model=model, params=params, taxonomy=project.taxonomy,
                            manifest=read_manifest(manifest) if manifest else None, on_done=advance,
                            jobs=jobs, backend=backend, scheduler=scheduler,
                            cache_dir=_cache_dir(no_cache, project), shared_output=shared_output,
                            previous_run=compare_with, profile=profile)
    print_score_summary(summary, compare_with, project.taxonomy)


@app.command()
def compare(
    ctx: typer.Context,
    old_run: Annotated[Path, typer.Argument(help="The earlier scoring run folder")],
    new_run: Annotated[Path, typer.Argument(help="The later one: changes.csv and a report "
                                                 "section are added to it")],
) -> None:
    """What changed per force and category between two scoring runs (a second round of
    responses, say): new and lost evidence, newly addressed categories, score changes."""
    from .compare import compare_folders

    taxonomy = ctx.obj.taxonomy
    try:
        changes = compare_folders(old_run, new_run, taxonomy)
    except ValueError as e:
        fail(str(e), code=2)
    print_changes(changes, taxonomy)
    out.print(f"-> {new_run}/changes.csv, {new_run}/report.html (section: Changes since the "
              "previous run)")


Approaches = Annotated[str, typer.Option(help="Approaches for --compare, comma-separated")]
CoverageRun = Annotated[
    Path | None, typer.Option("--coverage", help="A scoring run folder to check against gold")
]
ScannedRun = Annotated[
    Path | None, typer.Option("--scanned", help="A scoring run of data/raw with --ocr: "
                              "character error rate and coverage of each scanned sample "
                              "against its text twin (data/raw/scanned/gold_coverage.csv)")
]
FieldFlag = Annotated[
    bool, typer.Option("--field", help="Train each of --field-approaches as shipped and "
                       "score it on the field set's test part (data/field)")
]
FieldApproaches = Annotated[str, typer.Option(help="Approaches for --field, comma-separated "
                                              "(default: the model.kind in params.yaml)")]
DepthFlag = Annotated[
    bool, typer.Option("--depth", help="Only the depth heads (sub-points, status, "
                       "specificity): F1 on held-out genres and on the field test part")
]
EvalOut = Annotated[Path, typer.Option("--out", help="Where metrics.json and plots go")]


@app.command()
def evaluate(
    ctx: typer.Context, model_path: ModelPath = None, trust_model: TrustModel = False,
    do_compare: Annotated[bool, typer.Option("--compare", help="Compare approaches on the "
                                                                "same folds")] = False,
    approaches: Approaches = "keywords,tfidf_lr,tfidf_svm,spacy,embeddings",
    lovo: Annotated[bool, typer.Option("--lovo", help="Leave-one-voice-out robustness")] = False,
    coverage_run: CoverageRun = None, scanned_run: ScannedRun = None,
    gold: Annotated[Path | None, typer.Option(help="Gold coverage CSV")] = None,
    field: FieldFlag = False, field_approaches: FieldApproaches = "",
    logo: Annotated[bool, typer.Option(help="With --field: leave one genre out too")] = True,
    depth: DepthFlag = False, out_dir: EvalOut = Path("reports"),
) -> None:
    """Evaluate the model on the frozen split; also approaches, LOVO, the field set, gold."""
    from .evaluate import EvaluationRequest, evaluate_project

    project: Project = ctx.obj
    if depth:
        return evaluate_depth_heads(project)
    request = EvaluationRequest(out_dir, approaches if do_compare else None, lovo, coverage_run,
                                gold, scanned_run, (field_approaches or project.params.model.kind)
                                if field else None, logo)
    model = _model(project, model_path, trust_model)
    with err.status("Evaluating (with --field, each approach is trained as shipped: minutes)..."):
        result = evaluate_project(project, model, request, on_missing=warn_missing_kind)
    print_evaluation(result, out_dir)


def evaluate_depth_heads(project: Project) -> None:
    """``evaluate --depth``: each depth head's F1 on held-out genres and the field test part."""
    from .deptheval import evaluate_depth

    with err.status("Fitting the depth heads on each fold..."):
        table = evaluate_depth(project.paths.labelled, project.paths.field, project.taxonomy,
                               project.params)
    print_table("Depth heads: F1 on held-out genres and on the field test part", table)


app.add_typer(review_app, name="review")


@app.command()
def promote(
    ctx: typer.Context,
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
    from .promote import promote_candidate

    done = promote_candidate(ctx.obj, candidate, force=force, by=by, trust=trust_model)
    print_table(f"{done.candidate} vs {done.current or '(none)'} on the frozen split "
                f"(n={done.n_frozen})", done.result.table.fillna(float("nan")))
    if not done.promoted:
        out.print("not promoted: " + "; ".join(done.result.reasons) +
                  " (use --force to override)")
        raise typer.Exit(1)
    out.print(f"promoted {done.candidate} -> models/current" +
              (" (forced; recorded in the card)" if done.forced else ""))


def _print_version(value: bool) -> None:
    if value:
        out.print(f"forcecov {__version__}")
        raise typer.Exit(0)


Version = Annotated[bool, typer.Option("--version", help="Print the version and exit",
                                       callback=_print_version, is_eager=True)]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log details to stderr")]
Root = Annotated[
    Path | None,
    typer.Option("--root", help="Project folder (params.yaml, models/, data/); default "
                                "$FORCECOV_ROOT, else the installed package's project, "
                                "never the working directory"),
]
ParamsFile = Annotated[
    Path | None, typer.Option("--params", help="Parameters file (default: the project's "
                                               "params.yaml)"),
]
TaxonomyFile = Annotated[
    Path | None,
    typer.Option("--taxonomy", help="Recommendation framework (categories, sub-points, "
                                    "keywords) to score against; default the packaged "
                                    "one (pipeline/taxonomy.yaml)"),
]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override one parameter for this run, e.g. --set "
                               "coverage.addressed_min=0.6 (repeatable)"),
]


@app.callback()
def _root(
    ctx: typer.Context, version: Version = False, verbose: Verbose = False, root: Root = None,
    params_file: ParamsFile = None, taxonomy: TaxonomyFile = None, overrides: Overrides = None,
) -> None:
    """Build the project once (root, parameters, taxonomy) for the command that follows."""
    from .project import open_project

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        ctx.obj = open_project(root, params_file, taxonomy, overrides or ())
    except ForcecovError as e:  # names the file or flag, and what to pass instead
        fail(str(e), code=2)
    if verbose:
        from .config import root_and_source

        err.print("project root: {} (from {})".format(*root_and_source()))


def main() -> None:
    """Entry point: run the app, turning library errors into one-line messages."""
    try:
        app()
    except ForcecovError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")
        sys.exit(1)

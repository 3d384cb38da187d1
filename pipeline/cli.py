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
    print_extract_summary,
    print_score_summary,
    print_table,
    print_training,
    progress_bar,
)

if TYPE_CHECKING:
    from .classify import TrainedModel
    from .config import Params
    from .project import Project

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Measure how well police forces' responses cover each recommendation.")


def _find_inputs_or_fail(inputs: list[Path]) -> list[Path]:
    """The files to read (folders searched once, here); a usage error when there are none."""
    from .extract import find_inputs

    files = find_inputs(inputs)
    if not files:
        fail(f"no input files found in {', '.join(map(str, inputs))}")
    return files


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
) -> None:
    """Train the passage classifier on data/labelled and write models/<version>/."""
    from .train import train_and_save

    project: Project = ctx.obj
    p = project.paths
    params = project.params.override("model", kind=kind) if kind else project.params
    with err.status("Training (grouped cross-validation, then the final fit)..."):
        # The field set is labelled against the packaged taxonomy: another one cannot use it.
        result, folder = train_and_save(data or p.labelled, out_dir or p.models, project.taxonomy,
                                        params, make_current=not no_promote,
                                        field_dir=p.field if project.packaged_taxonomy else None)
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


@app.command()
def evaluate(
    ctx: typer.Context,
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

    project: Project = ctx.obj
    p = project.paths
    if depth:
        from .deptheval import evaluate_depth

        with err.status("Fitting the depth heads on each fold..."):
            table = evaluate_depth(p.labelled, p.field, project.taxonomy, project.params)
        print_table("Depth heads: F1 on held-out genres and on the field test part",
                    table)
        return
    from .runfolder import check_run

    for run in (coverage_run, scanned_run):
        if run is not None:
            check_run(run)  # an incomplete or mixed run folder is refused, not averaged
    taxonomy, params = project.taxonomy, project.params
    model = _model(project, model_path, trust_model)
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

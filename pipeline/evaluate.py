"""Evaluation: the model on the frozen split, approaches compared on the same folds,
leave-one-voice-out robustness (:func:`~pipeline.classifiers.cv.leave_one_group_out`), echo
detection, calibration, coverage against gold, scanned documents against their text twins;
the field set through :mod:`pipeline.fieldeval`.

Every function returns plain data (typed dicts and DataFrames); the CLI prints and writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import pandas as pd

from .agreement import coverage_vs_gold, scanned_vs_twins, status_agreement, subpoint_agreement
from .classifiers.cv import (
    FoldTiming,
    choose_thresholds,
    cv_set,
    labelled_frame,
    leave_one_group_out,
    out_of_fold_proba,
    split_frozen,
)
from .classifiers.echo import make_echo_detector
from .classifiers.registry import make
from .classify import TrainedModel, on_subject
from .config import Params
from .fieldeval import field_comparison, field_scores, separability_table
from .metrics import (
    Scores,
    calibration_curve,
    expected_calibration_error,
    macro_f1,
    per_label_scores,
    summary,
)
from .taxonomy import Taxonomy

if TYPE_CHECKING:
    from .project import Project


class HeldOutScores(Scores):
    """A trained model's scores on labelled rows it never saw, with its calibration curve."""

    n: int
    calibration: list[dict[str, float]]


class EchoScores(TypedDict):
    """Echo detection on the corpus: recall on restated passages, precision against content."""

    recall: float
    precision: float
    n_restated: int
    n_content: int
    false_positives: int


class FrozenSplitMetrics(TypedDict):
    """The model on the frozen split, and echo detection: in every metrics.json."""

    model_version: str
    macro_f1: float
    ece: float
    n_eval: int
    per_label: dict[str, float]
    echo: EchoScores


class EvaluationMetrics(FrozenSplitMetrics, total=False):
    """metrics.json: what each requested evaluation adds (by approach, voice, category,
    status or set, as named)."""

    comparison: dict[str, float]
    lovo_worst_macro_f1: float
    lovo_mean_macro_f1: float
    field: dict[str, dict[str, float]]
    field_model: dict[str, float]
    separability_auc: dict[str, float]
    coverage_agreement: dict[str, float]
    subpoint_f1: dict[str, float]
    status_agreement: dict[str, float]
    scanned: dict[str, float]


class Evaluation(EvaluationMetrics, total=False):
    """What :func:`run_evaluation` returns: metrics.json's content, and tables to print."""

    tables: dict[str, pd.DataFrame]


def evaluate_model(model: TrainedModel, rows: pd.DataFrame, taxonomy: Taxonomy) -> HeldOutScores:
    """Scores of a trained model on labelled rows (the frozen evaluation split)."""
    X, Y = labelled_frame(rows, taxonomy)
    proba = model.classifier.predict_proba(X)
    subject = on_subject(list(rows["text"]), model.fallback_cues)
    return HeldOutScores(**summary(Y, proba, model.thresholds, taxonomy.labels,
                                   model.fallback_ratio, subject),
                         n=int(len(rows)), calibration=calibration_curve(Y, proba))


def echo_metrics(corpus: pd.DataFrame, taxonomy: Taxonomy, params: Params) -> EchoScores:
    """Echo detection on the corpus: recall on restated passages, precision against content."""
    detector = make_echo_detector(taxonomy, params.echo).fit(list(corpus["text"]))
    flagged = detector.predict(list(corpus["text"]))
    restated = (corpus["kind"] == "restated").to_numpy()
    content = (corpus["kind"] == "content").to_numpy()
    tp = int((flagged & restated).sum())
    fp = int((flagged & content).sum())
    return {"recall": tp / max(int(restated.sum()), 1), "precision": tp / max(tp + fp, 1),
            "n_restated": int(restated.sum()), "n_content": int(content.sum()),
            "false_positives": fp}


def compare(corpus: pd.DataFrame, taxonomy: Taxonomy, params: Params,
            kinds: list[str]) -> pd.DataFrame:
    """Each approach on the same grouped folds: per-label F1, macro-F1, ECE, speed.

    Thresholds are chosen on each approach's own out-of-fold probabilities, as in training.
    """
    rows, _ = split_frozen(corpus, params)
    data = cv_set(rows, taxonomy, params)
    records = []
    for kind in kinds:
        timing = FoldTiming()
        proba = out_of_fold_proba(make(kind, taxonomy, params), data.X, data.Y, data.folds,
                                  timing=timing)
        thresholds = choose_thresholds(data.Y, proba, params.thresholds)
        pred = (proba >= thresholds).astype(int)
        scores = per_label_scores(data.Y, pred, taxonomy.labels)
        records.append({"approach": kind,
                        **{f"f1_{lab}": scores[lab]["f1"] for lab in taxonomy.labels},
                        "macro_f1": macro_f1(data.Y, pred),
                        "ece": expected_calibration_error(data.Y, proba),
                        "train_seconds": timing.fit_seconds / len(data.folds),
                        "passages_per_s": len(data.Y) / max(timing.predict_seconds, 1e-9)})
    return pd.DataFrame(records)


def calibration_png(curve: list[dict[str, float]]) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect")
    ax.plot([c["predicted"] for c in curve], [c["observed"] for c in curve], marker="o",
            label="model")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title("Calibration on the frozen evaluation split")
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def run_evaluation(model: TrainedModel, corpus: pd.DataFrame, taxonomy: Taxonomy, params: Params,
                   out_dir: Path, *, compare_kinds: list[str] | None = None, lovo: bool = False,
                   coverage_run: Path | None = None,
                   gold_csv: Path | None = None, field: pd.DataFrame | None = None,
                   field_kinds: list[str] | None = None, logo: bool = True,
                   scanned_run: Path | None = None,
                   scanned_gold: Path | None = None) -> Evaluation:
    """Run the requested evaluations and write metrics.json, plots and tables into ``out_dir``.

    Returns the metrics dict plus DataFrames under ``tables`` for printing.
    """
    from .atomic import write_bytes, write_frame_csv, write_json

    _, frozen = split_frozen(corpus, params)
    held_out = evaluate_model(model, frozen, taxonomy)
    metrics: EvaluationMetrics = {
        "model_version": model.version,
        "macro_f1": held_out["macro_f1"], "ece": held_out["ece"], "n_eval": held_out["n"],
        "per_label": {lab: s["f1"] for lab, s in held_out["per_label"].items()},
        "echo": echo_metrics(corpus, taxonomy, params),
    }
    tables: dict[str, pd.DataFrame] = {}
    per_cat = pd.DataFrame([{"category": lab, **s} for lab, s in held_out["per_label"].items()])
    tables["per_category"] = per_cat
    plots = out_dir / "plots"
    write_frame_csv(plots / "per_category.csv", per_cat)
    write_frame_csv(plots / "calibration.csv", pd.DataFrame(held_out["calibration"]))
    write_bytes(plots / "calibration.png", calibration_png(held_out["calibration"]))
    if compare_kinds:
        table = compare(corpus, taxonomy, params, compare_kinds)
        tables["comparison"] = table
        write_frame_csv(out_dir / "comparison.csv", table)
        metrics["comparison"] = table.set_index("approach")["macro_f1"].to_dict()
    if lovo:
        table = leave_one_group_out(corpus, taxonomy, params, group="voice")
        tables["lovo"] = table
        write_frame_csv(out_dir / "lovo.csv", table)
        metrics["lovo_worst_macro_f1"] = float(table["macro_f1"].min())
        metrics["lovo_mean_macro_f1"] = float(table["macro_f1"].mean())
    if field is not None:
        # The model itself, as it ships (thresholds and fallback), on the same test part.
        own = field_scores(model, field[field["part"] == "test"].reset_index(drop=True),
                           taxonomy)
        metrics["field_model"] = {"macro_f1": own["macro_f1"], "unlabelled": own["unlabelled"],
                                  "n": float(own["n"])}
        tables["field_model"] = pd.DataFrame([{"category": lab, **sc}
                                              for lab, sc in own["per_label"].items()])
    if field is not None and field_kinds is not None:
        tables.update(field_comparison(corpus, field, taxonomy, params,
                                       field_kinds or [params.model.kind], logo=logo))
        for name in ("field", "field_per_category", "field_by_genre", "logo"):
            if not tables[name].empty:
                write_frame_csv(out_dir / f"{name}.csv", tables[name])
        metrics["field"] = tables["field"].set_index("approach").to_dict("index")
        tables["separability"] = separability_table(corpus, field)
        write_frame_csv(out_dir / "separability.csv", tables["separability"])
        metrics["separability_auc"] = tables["separability"].set_index("sets")["auc"].to_dict()
    if coverage_run is not None:
        gold_file = gold_csv or coverage_run / "gold_coverage.csv"
        table = coverage_vs_gold(coverage_run, gold_file)
        tables["coverage"] = table
        write_frame_csv(out_dir / "coverage_agreement.csv", table)
        metrics["coverage_agreement"] = table.set_index("category")["agreement"].to_dict()
        gold_columns = set(pd.read_csv(gold_file, nrows=0).columns)
        if "subpoints" in gold_columns:
            table = subpoint_agreement(coverage_run, gold_file, taxonomy)
            tables["subpoints"] = table
            write_frame_csv(out_dir / "subpoint_agreement.csv", table)
            metrics["subpoint_f1"] = table.set_index("subpoint")["f1"].to_dict()
        if "status" in gold_columns:
            table = status_agreement(coverage_run, gold_file)
            tables["status"] = table
            write_frame_csv(out_dir / "status_agreement.csv", table)
            metrics["status_agreement"] = table.set_index("status")["f1"].to_dict()
    if scanned_run is not None:
        table = scanned_vs_twins(scanned_run, scanned_gold or scanned_run / "gold_coverage.csv")
        tables["scanned"] = table
        write_frame_csv(out_dir / "scanned_agreement.csv", table)
        overall = table.iloc[-1]
        metrics["scanned"] = {"cer": float(overall["cer"]),
                              "cer_300dpi": float(table.loc[table["dpi"] == 300, "cer"].mean()),
                              "agree_twin": float(overall["agree_twin"]),
                              "agree_gold": float(overall["agree_gold"])}
    write_json(out_dir / "metrics.json", metrics)
    return Evaluation(**metrics, tables=tables)


@dataclass(frozen=True)
class EvaluationRequest:
    """What ``forcecov evaluate`` was asked for, beyond the frozen split it always scores.

    ``compare_kinds`` / ``field_kinds``: comma-separated approaches to compare on the grouped
    folds / to train as shipped and score on the field set (None: not asked). ``gold``: the
    gold coverage file for ``coverage_run`` (default data/raw/gold_coverage.csv).
    """

    out_dir: Path
    compare_kinds: str | None = None
    lovo: bool = False
    coverage_run: Path | None = None
    gold: Path | None = None
    scanned_run: Path | None = None
    field_kinds: str | None = None
    logo: bool = True


def evaluate_project(project: Project, model: TrainedModel, request: EvaluationRequest, *,
                     on_missing: Callable[[str, str], None] | None = None) -> Evaluation:
    """:func:`run_evaluation` of the project's labelled data and field set as
    ``request`` asks. Run folders are checked first: an incomplete or mixed one is refused,
    not averaged. Approaches that cannot be built here go to ``on_missing`` and are skipped."""
    from .classifiers.registry import installed_kinds
    from .corpus import load_corpus
    from .fieldset import load_field
    from .runfolder import check_run

    for run in (request.coverage_run, request.scanned_run):
        if run is not None:
            check_run(run)
    p, taxonomy, params = project.paths, project.taxonomy, project.params
    field = None
    # The field set is labelled against the packaged taxonomy: another one cannot use it.
    if project.packaged_taxonomy and any(p.field.glob("*.jsonl")):
        field = load_field(p.field, taxonomy, seed=params.field.seed,
                           calibration_fraction=params.field.calibration_fraction)
    compare_kinds = (installed_kinds(request.compare_kinds, on_missing)
                     if request.compare_kinds is not None else None)
    field_kinds = (installed_kinds(request.field_kinds, on_missing)
                   if request.field_kinds is not None else None)
    return run_evaluation(model, load_corpus(p.labelled, taxonomy), taxonomy, params,
                          request.out_dir, compare_kinds=compare_kinds, lovo=request.lovo,
                          coverage_run=request.coverage_run,
                          gold_csv=request.gold or (p.raw / "gold_coverage.csv"), field=field,
                          field_kinds=field_kinds, logo=request.logo,
                          scanned_run=request.scanned_run,
                          scanned_gold=p.raw / "scanned" / "gold_coverage.csv")


# The tables of an evaluation in the order they are printed, with their titles.
TABLE_TITLES = (
    ("per_category", "Per category (frozen split)"),
    ("field_model", "The model on the field set's test part (never trained on, thresholds "
                    "and fallback not set on it)"),
    ("field", "Field set, test part (never trained on, thresholds not set on it)"),
    ("field_per_category", "Field set per category"),
    ("field_by_genre", "Field set per genre"),
    ("separability", "How well a plain classifier tells the sets apart (ROC AUC; 0.5 = not "
                     "at all)"),
    ("logo", "Leave one genre out (thresholds as shipped)"),
    ("comparison", "Approaches on the same grouped folds"),
    ("lovo", "Leave one voice out"),
    ("coverage", "Coverage agreement with gold"),
    ("subpoints", "Sub-points evidenced, against gold (document x sub-point)"),
    ("status", "Status of each document x category, against gold (F1; last rows: macro-F1 "
               "and Cohen's kappa)"),
    ("scanned", "Scanned samples read by OCR against their text twins (cer: character error "
                "rate; agree: share of categories whose 'addressed' matches)"),
)


def titled_tables(result: Evaluation) -> list[tuple[str, pd.DataFrame]]:
    """The evaluation's non-empty tables with their titles, in :data:`TABLE_TITLES` order."""
    tables = result.get("tables", {})
    return [(title, tables[key]) for key, title in TABLE_TITLES
            if key in tables and not tables[key].empty]


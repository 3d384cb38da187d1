"""A simulation of the review loop: does labelling the passages the model is least sure of
reach a good model with fewer labels than labelling at random?

Start from a fraction of the training corpus, add ``batch`` labels a round (chosen by
uncertainty, or at random), retrain, and score macro-F1 on the frozen evaluation split.

    python -m scripts.simulate --out reports/simulation
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.classifiers.cv import labelled_frame, split_frozen
from pipeline.classifiers.registry import make_classifier
from pipeline.config import Params
from pipeline.metrics import macro_f1
from pipeline.review.queue import uncertainty_scores
from pipeline.taxonomy import Taxonomy


def simulate(corpus: pd.DataFrame, taxonomy: Taxonomy, params: Params, *,
             start_fraction: float = 0.1, batch: int = 100, rounds: int | None = None,
             seed: int = 0) -> pd.DataFrame:
    """Macro-F1 per round for the ``uncertainty`` and ``random`` strategies.

    Columns: strategy, round, n_labels, macro_f1. Thresholds are fixed at 0.5 so that the
    comparison measures the choice of labels, not threshold tuning.
    """
    pool, frozen = split_frozen(corpus, params)
    X_pool, Y_pool = labelled_frame(pool, taxonomy)
    X_eval, Y_eval = labelled_frame(frozen, taxonomy)
    rng = np.random.default_rng(seed)
    start = rng.choice(len(pool), size=max(int(start_fraction * len(pool)), 20), replace=False)
    n_rounds = rounds if rounds is not None else int(np.ceil((len(pool) - len(start)) / batch))
    thresholds = np.full(len(taxonomy.labels), 0.5)
    rows = []
    for strategy in ("uncertainty", "random"):
        labelled = list(start)
        order_rng = np.random.default_rng(seed + 1)
        for r in range(n_rounds + 1):
            est = make_classifier(taxonomy, params)
            Y = Y_pool[labelled]
            if (Y.sum(axis=0) == 0).any():  # a category still without positives: cannot fit yet
                rows.append({"strategy": strategy, "round": r, "n_labels": len(labelled),
                             "macro_f1": np.nan})
            else:
                est.fit(X_pool.iloc[labelled].reset_index(drop=True), Y)
                pred = (est.predict_proba(X_eval) >= thresholds).astype(int)
                rows.append({"strategy": strategy, "round": r, "n_labels": len(labelled),
                             "macro_f1": macro_f1(Y_eval, pred)})
            rest = np.setdiff1d(np.arange(len(pool)), labelled)
            if len(rest) == 0 or r == n_rounds:
                break
            if strategy == "random" or (Y.sum(axis=0) == 0).any():
                pick = order_rng.choice(rest, size=min(batch, len(rest)), replace=False)
            else:
                P = est.predict_proba(X_pool.iloc[rest].reset_index(drop=True))
                frame = pd.DataFrame({f"p_{lab}": P[:, j] for j, lab in enumerate(taxonomy.labels)})
                scores = uncertainty_scores(frame, taxonomy.labels, thresholds, "uncertainty")
                pick = rest[np.argsort(-scores, kind="stable")[:batch]]
            labelled += list(pick)
    return pd.DataFrame(rows)


def labels_to_match(table: pd.DataFrame) -> dict[str, float]:
    """How many labels uncertainty needs to reach random's final macro-F1, as a share."""
    rnd = table[table["strategy"] == "random"].dropna()
    unc = table[table["strategy"] == "uncertainty"].dropna()
    target = float(rnd["macro_f1"].iloc[-1])
    reached = unc[unc["macro_f1"] >= target]
    need = float(reached["n_labels"].iloc[0]) if len(reached) else float("nan")
    total = float(rnd["n_labels"].iloc[-1])
    return {"random_final_macro_f1": target, "random_labels": total,
            "uncertainty_labels_needed": need,
            "share": need / total if need == need else float("nan")}


def plot_png(table: pd.DataFrame) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, g in table.groupby("strategy"):
        ax.plot(g["n_labels"], g["macro_f1"], marker=".", label=strategy)
    ax.set_xlabel("labelled passages")
    ax.set_ylabel("macro-F1 on the frozen split")
    ax.set_title("Review-loop simulation: uncertainty vs random")
    ax.legend()
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    from pipeline.atomic import write_bytes, write_frame_csv, write_json
    from pipeline.corpus import load_corpus
    from pipeline.project import open_project

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("reports/simulation"))
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--start", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args(argv)
    project = open_project()
    taxonomy = project.taxonomy
    table = simulate(load_corpus(project.paths.labelled, taxonomy), taxonomy, project.params,
                     start_fraction=args.start, batch=args.batch, rounds=args.rounds)
    summary = labels_to_match(table)
    write_frame_csv(args.out / "simulation.csv", table)
    write_bytes(args.out / "simulation.png", plot_png(table))
    write_json(args.out / "simulation.json", summary)
    wide = table.pivot(index="round", columns="strategy", values=["n_labels", "macro_f1"])
    print(wide.round(3).to_string())
    print(f"random reaches {summary['random_final_macro_f1']:.3f} with "
          f"{summary['random_labels']:.0f} labels; "
          f"uncertainty reaches it with {summary['uncertainty_labels_needed']:.0f} "
          f"({summary['share']:.0%} of the labels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

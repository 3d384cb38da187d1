"""The analyst review loop, one concern a module:

- ``queue``: uncertainty scores, choosing the passages to review, the typed queue item, and
  building a queue from a scoring run folder;
- ``formats``: the queue file formats (.csv, .jsonl, .labelstudio.json), written and read back;
- ``store``: the append-only label file ``data/labelled/reviewed.jsonl`` (records with
  provenance, import, superseding decisions, conflicts);
- ``audit``: ranking likely label errors in the labelled data;
- ``server`` and ``hosts``: the local review page and the checks on where it is reachable.

Callers import from the submodules; nothing is re-exported here.
"""

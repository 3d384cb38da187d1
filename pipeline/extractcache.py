"""The per-document extraction cache (``data/interim/cache/``): re-scoring an unchanged
folder skips extraction, and no entry written by other code or settings is read back."""

from __future__ import annotations

import functools
from pathlib import Path

from .config import IngestParams, SegmentParams
from .records import DocumentResult, Extracted, Passage
from .taxonomy import Taxonomy


@functools.cache
def code_digest() -> str:
    """sha256 of the package's own source and data files: a cache entry written by other
    code is never read back (an edited reader, or a checkout of another commit, with the
    same ``PIPELINE_VERSION``)."""
    import hashlib

    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".yaml")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


class ExtractCache:
    """Per-document cache of extraction results, keyed by content sha256, the code that
    extracts (:func:`code_digest`) and everything else that changes what extraction produces
    (params, taxonomy refs, the manifest's force for the file). Entries are JSON, written
    atomically."""

    def __init__(self, folder: Path, *, ingest: IngestParams, seg: SegmentParams,
                 taxonomy: Taxonomy | None, manifest: dict[str, str] | None):
        import hashlib
        import json

        from . import PIPELINE_VERSION

        self.folder = Path(folder)
        refs = sorted(taxonomy.subpoints) if taxonomy else []
        settings = json.dumps([PIPELINE_VERSION, code_digest(), ingest.__dict__, seg.__dict__,
                               refs],
                              sort_keys=True, default=str)
        self._salt = hashlib.sha256(settings.encode()).hexdigest()[:16]
        self.manifest = manifest or {}
        self.hits = 0

    def _file(self, path: Path, sha: str) -> Path:
        force = self.manifest.get(str(path)) or self.manifest.get(path.name) or ""
        return self.folder / sha[:2] / f"{sha}-{self._salt}-{force.replace('/', '_')}.json"

    def get(self, path: Path, sha: str) -> Extracted | None:
        import json

        entry = self._file(path, sha)
        if not entry.is_file():
            return None
        try:
            data = json.loads(entry.read_text(encoding="utf-8"))
            result = DocumentResult(**{**data["result"], "path": str(path)})
            passages = [Passage(**{**p, "rec_refs": tuple(p["rec_refs"]), "source_path": str(path)})
                        for p in data["passages"]]
        except (ValueError, KeyError, TypeError):
            return None  # a damaged entry is simply recomputed
        self.hits += 1
        return Extracted(result, passages)

    def put(self, path: Path, extracted: Extracted) -> None:
        from .atomic import write_json

        if extracted.result.status == "error" or not extracted.result.sha256:
            return  # errors are cheap to find again and may be fixed by a new version
        write_json(self._file(path, extracted.result.sha256),
                   {"result": extracted.result.__dict__,
                    "passages": [p.to_json() for p in extracted.passages]})

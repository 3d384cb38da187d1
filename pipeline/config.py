"""Paths anchored at the repository root, and typed, frozen parameters from ``params.yaml``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

PACKAGE_PROJECT = Path(__file__).resolve().parent.parent


def find_root() -> Path:
    """The project root: ``$FORCECOV_ROOT`` (which ``--root`` sets), else the project the
    installed package belongs to.

    Never the working directory: a folder tree someone else prepared (their params.yaml,
    their models/) must not be picked up just because forcecov was run inside it.
    """
    return root_and_source()[0]


def root_and_source() -> tuple[Path, str]:
    """The project root and where it came from (shown by ``forcecov -v``)."""
    env = os.environ.get("FORCECOV_ROOT")
    if env:
        return Path(env).resolve(), "FORCECOV_ROOT / --root"
    return PACKAGE_PROJECT, "the installed package's project"


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def labelled(self) -> Path:
        return self.root / "data" / "labelled"

    @property
    def field(self) -> Path:
        return self.root / "data" / "field"

    @property
    def interim(self) -> Path:
        return self.root / "data" / "interim"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def reviewed(self) -> Path:
        return self.labelled / "reviewed.jsonl"


def paths(root: Path | None = None) -> Paths:
    return Paths(root or find_root())


@dataclass(frozen=True)
class IngestParams:
    """``ingest``: reading files (engines, limits, OCR); used by :mod:`pipeline.extract`."""

    pdf_engine: str = "pdfium"
    max_pages: int = 2000
    timeout_seconds: float = 60
    max_file_mb: float = 200
    max_memory_mb: float = 512
    isolate: bool = True
    ocr: bool = False
    ocr_dpi: int = 300
    ocr_lang: str = "eng"
    ocr_min_chars: int = 50
    ocr_min_confidence: float = 70.0
    ocr_page_seconds: float = 30.0
    docx_max_uncompressed_mb: float = 300
    docx_max_ratio: float = 100
    furniture_min_fraction: float = 0.5
    furniture_edge_lines: int = 3
    paragraph_gap: float = 0.6
    worker_nice: int = 10

    def __post_init__(self) -> None:
        if self.pdf_engine not in ("pdfium", "plumber"):
            raise ValueError(
                f"ingest.pdf_engine must be pdfium or plumber, not {self.pdf_engine!r}")
        if self.timeout_seconds <= 0 or self.max_memory_mb <= 0:
            raise ValueError("ingest.timeout_seconds and ingest.max_memory_mb must be positive")
        if not 0 <= self.worker_nice <= 19:
            raise ValueError(f"ingest.worker_nice must be 0 to 19, not {self.worker_nice}")


@dataclass(frozen=True)
class SegmentParams:
    """``segment``: how long a passage may be (:mod:`pipeline.segment`)."""

    max_words: int = 150
    max_chars: int = 2000
    min_chars: int = 3


@dataclass(frozen=True)
class FeatureParams:
    """``features``: the default classifier's TF-IDF blocks (:mod:`pipeline.classifiers.tfidf`)."""

    word_ngram_max: int = 2
    char_ngram_min: int = 2
    char_ngram_max: int = 5
    min_df: int = 2
    max_features_word: int = 40000
    max_features_char: int = 80000
    sublinear_tf: bool = True
    heading_weight: float = 0.5


@dataclass(frozen=True)
class ModelParams:
    """``model``: which approach (``kind``) and its linear model's settings."""

    kind: str = "tfidf_svm_word"  # params.yaml's too (tests/test_config.py checks)
    C: float = 8.0
    class_weight: str | None = "balanced"
    max_iter: int = 2000
    calibration: str = "sigmoid"
    static_C: float = 4.0


@dataclass(frozen=True)
class FieldParams:
    """``field``: how the field set is split into calibration and test parts, by page."""

    calibration_fraction: float = 0.4
    seed: int = 11

    def __post_init__(self) -> None:
        if not 0 <= self.calibration_fraction < 1:
            raise ValueError("field.calibration_fraction must be in [0, 1)")


@dataclass(frozen=True)
class CVParams:
    """``cv``: grouped cross-validation (:mod:`pipeline.classifiers.cv`)."""

    n_splits: int = 5
    group_by: str = "genre"
    seed: int = 13


@dataclass(frozen=True)
class ThresholdParams:
    """``thresholds``: how per-category decision thresholds are chosen."""

    policy: str = "shift"
    fixed: float = 0.5
    grid_min: float = 0.05
    grid_max: float = 0.85
    grid_step: float = 0.01
    max_unlabelled: float | None = 0.1
    fallback_min_ratio: float = 0.3

    def __post_init__(self) -> None:
        if self.policy not in ("cv_f1", "fixed", "shift"):
            raise ValueError("thresholds.policy must be cv_f1, fixed or shift, "
                             f"not {self.policy!r}")
        if self.max_unlabelled is not None and not 0 < self.max_unlabelled < 1:
            raise ValueError("thresholds.max_unlabelled must be between 0 and 1 (a share), "
                             "or null for no fallback")
        if not 0 < self.fallback_min_ratio <= 1:
            raise ValueError("thresholds.fallback_min_ratio must be above 0 and at most 1")


@dataclass(frozen=True)
class EchoParams:
    """``echo``: when a passage only restates a recommendation
    (:mod:`pipeline.classifiers.echo`)."""

    similarity: float = 0.5
    max_words: int = 90
    cue_similarity: float = 0.05
    own_voice_similarity: float = 0.75


@dataclass(frozen=True)
class CoverageParams:
    """``coverage``: how evidence becomes a score (:mod:`pipeline.coverage`)."""

    addressed_min: float = 0.5
    top_evidence: int = 5
    review_margin: float = 0.15
    min_evidence_words: int = 5
    planned_weight: float = 0.5
    not_stated_weight: float = 1.0
    general_weight: float = 0.5


@dataclass(frozen=True)
class ThemeParams:
    """``themes``: clustering each category's evidence into themes (:mod:`pipeline.themes`)."""

    max_themes: int = 6
    passages_per_theme: int = 6
    label_terms: int = 3
    quotes: int = 2
    min_forces: int = 2
    seed: int = 0
    fit_passages: int = 2000

    def __post_init__(self) -> None:
        if self.fit_passages < self.passages_per_theme:
            raise ValueError("themes.fit_passages must be at least themes.passages_per_theme")


@dataclass(frozen=True)
class DepthParams:
    """``depth``: the sub-point, status and specificity heads (:mod:`pipeline.depthfit`)."""

    C: float = 4.0
    max_iter: int = 2000
    min_df: int = 2
    max_features: int = 40000
    min_positives: int = 20
    min_annotations: int = 100
    sentence_min: float = 0.6
    public_weight: float = 2.0

    def __post_init__(self) -> None:
        if self.public_weight <= 0:
            raise ValueError("depth.public_weight must be positive (1 weighs every annotation "
                             "alike)")


@dataclass(frozen=True)
class ReviewParams:
    """``review``: the analyst queue (:mod:`pipeline.review.queue`)."""

    strategy: str = "uncertainty"
    n: int = 50
    dedup_similarity: float = 0.8


@dataclass(frozen=True)
class PromoteParams:
    """``promote``: how much worse a candidate may be and still replace current."""

    max_macro_f1_drop: float = 0.01
    max_category_f1_drop: float = 0.03
    max_depth_f1_drop: float = 0.03
    eval_fraction: float = 0.2
    eval_seed: int = 7


@dataclass(frozen=True)
class ScoreParams:
    """``score``: parallelism and the extraction cache of a scoring run."""

    jobs: int = 1
    backend: str = "local"
    cache: bool = True


@dataclass(frozen=True)
class Params:
    ingest: IngestParams = field(default_factory=IngestParams)
    segment: SegmentParams = field(default_factory=SegmentParams)
    features: FeatureParams = field(default_factory=FeatureParams)
    model: ModelParams = field(default_factory=ModelParams)
    cv: CVParams = field(default_factory=CVParams)
    thresholds: ThresholdParams = field(default_factory=ThresholdParams)
    echo: EchoParams = field(default_factory=EchoParams)
    coverage: CoverageParams = field(default_factory=CoverageParams)
    depth: DepthParams = field(default_factory=DepthParams)
    themes: ThemeParams = field(default_factory=ThemeParams)
    review: ReviewParams = field(default_factory=ReviewParams)
    promote: PromoteParams = field(default_factory=PromoteParams)
    score: ScoreParams = field(default_factory=ScoreParams)
    # Last: from here on the class body's name ``field`` is this attribute, not the function.
    field: FieldParams = field(default_factory=FieldParams)

    def override(self, section: str, **values: Any) -> Params:
        """A copy with some values of one section replaced (None values are ignored)."""
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return self
        return replace(self, **{section: replace(getattr(self, section), **values)})

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {
            f.name: {g.name: getattr(getattr(self, f.name), g.name)
                     for g in fields(getattr(self, f.name))}
            for f in fields(self)
        }


def parse_params(raw: dict[str, Any] | None) -> Params:
    """Build :class:`Params` from a mapping, refusing unknown sections and keys."""
    raw = raw or {}
    sections = {}
    for f in fields(Params):
        section_cls = type(getattr(Params(), f.name))
        given = raw.get(f.name) or {}
        known = {g.name for g in fields(section_cls)}
        unknown = set(given) - known
        if unknown:
            raise ValueError(f"params.yaml: unknown key(s) in '{f.name}': {sorted(unknown)}")
        sections[f.name] = section_cls(**given)
    unknown_sections = set(raw) - {f.name for f in fields(Params)}
    if unknown_sections:
        raise ValueError(f"params.yaml: unknown section(s): {sorted(unknown_sections)}")
    return Params(**sections)


def load_params(path: Path | None = None) -> Params:
    """Read ``params.yaml`` (the project's by default); defaults where the file is absent."""
    path = path or paths().params
    if not path.is_file():
        return Params()
    return parse_params(yaml.safe_load(path.read_text(encoding="utf-8")))

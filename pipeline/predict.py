"""The classify stage: passages in, scored passages out.

:func:`predict_passages` scores a frame of passages (:data:`pipeline.records.PASSAGE_COLUMNS`)
and is what ``forcecov score`` calls batch by batch; :func:`classify_extracted` runs it over
extract's passages.jsonl into passages.parquet for the DVC chain.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from .classify import TrainedModel
from .config import Params
from .depth import multi_subpoints
from .passagefile import PassageWriter
from .records import PASSAGE_COLUMNS
from .taxonomy import Taxonomy


def predict_passages(passages: pd.DataFrame, model: TrainedModel, params: Params, *,
                     jobs: int = 1) -> pd.DataFrame:
    """Passages with the model's probabilities, labels, echo flag, confidence, needs_review.

    With ``jobs`` > 1 and enough passages, the rows are split across worker processes:
    feature extraction is pure Python, so threads would not help.
    """
    margin, min_words = params.coverage.review_margin, params.coverage.min_evidence_words
    if jobs > 1 and len(passages) >= 500 * jobs:
        from joblib import Parallel, delayed

        parts = [passages.iloc[i::jobs] for i in range(jobs)]
        results = Parallel(n_jobs=jobs)(delayed(model.predict)(part, review_margin=margin,
                                                               min_words=min_words)
                                        for part in parts)
        preds = pd.concat([r.set_axis(part.index) for r, part in zip(results, parts, strict=True)])
        preds = preds.loc[passages.index]
    else:
        preds = model.predict(passages, review_margin=margin, min_words=min_words)
    scored = pd.concat([passages.reset_index(drop=True), preds.reset_index(drop=True)], axis=1)
    # Text read from a page Tesseract was unsure of goes to an analyst, whatever the model says.
    ocr_conf = pd.to_numeric(scored.get("ocr_confidence", pd.Series(np.nan, index=scored.index)),
                             errors="coerce")
    scored["ocr_low_confidence"] = (ocr_conf < params.ingest.ocr_min_confidence).to_numpy()
    scored["needs_review"] = scored["needs_review"].astype(bool) | scored["ocr_low_confidence"]
    return scored


def classify_file(in_file: Path, out_file: Path, *, model: TrainedModel, params: Params,
                  taxonomy: Taxonomy, jobs: int | None = None) -> int:
    """``forcecov classify``: into ``out_file`` by its suffix. A ``.parquet`` gets extract's
    passages scored (:func:`classify_extracted`); anything else gets JSONL, each input
    object with ``probs``, ``labels`` and ``echo`` added. Returns the number of passages."""
    if Path(out_file).suffix == ".parquet":
        return classify_extracted(in_file, out_file, model=model, params=params,
                                  taxonomy=taxonomy, jobs=jobs or params.score.jobs)
    from .atomic import write_jsonl
    from .classify import classify_records, read_passage_lines

    return write_jsonl(out_file, classify_records(read_passage_lines(in_file), model))


def classify_extracted(passages_jsonl: Path, out_file: Path, *, model: TrainedModel,
                       params: Params, taxonomy: Taxonomy, jobs: int = 1,
                       chunk: int = 2000) -> int:
    """The classify stage of the chain: extract's passages.jsonl, scored in chunks into
    ``out_file`` (passages.parquet, :func:`pipeline.records.scored_passage_schema`).
    Returns the number of passages."""
    import json

    writer = PassageWriter(Path(out_file), model.labels, multi_subpoints(taxonomy),
                           model_version=model.version)
    n = 0
    try:
        with open(passages_jsonl, encoding="utf-8") as fh:
            lines = (json.loads(line) for line in fh if line.strip())
            while batch := list(itertools.islice(lines, chunk)):
                writer.write(predict_passages(pd.DataFrame(batch, columns=PASSAGE_COLUMNS),
                                              model, params, jobs=jobs))
                n += len(batch)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return n

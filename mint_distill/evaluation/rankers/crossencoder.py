"""Cross-encoder pair scoring (a sentence-transformers CrossEncoder folder) for reranking."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ...models.precision import Precision, autocast, resolve_precision
from ...students.crossencoder import predict_logits
from ..cache import PairScoreCache, cache_key
from ..encoders import load_cross_encoder


class CrossEncoderScorer:
    """Scores (request, item) pairs with a CrossEncoder's raw logits, cached by model and texts."""

    def __init__(
        self,
        model: str,
        batch_size: int = 32,
        cache_dir: str | os.PathLike | None = None,
        device: str | None = None,
        precision: Precision = "float32",
    ):
        self.reference = model
        self.batch_size = batch_size
        self.model, model_fingerprint = load_cross_encoder(model, device)
        self.precision = resolve_precision(precision, self.model.device.type)
        identity = cache_key(
            kind="cross-encoder", model=model_fingerprint, max_length=self.model.max_length, scores="logits",
            **({"precision": self.precision} if self.precision != "float32" else {}),
        )
        path = Path(cache_dir) / "pair-scores" / identity / "scores.jsonl" if cache_dir is not None else None
        self.cache = PairScoreCache(path)
        self.counters: dict[str, int] = {}

    def score(self, requests: Sequence[str], items: Sequence[str]) -> list[float]:
        before = self.cache.scored
        scores = self.cache.score(requests, items, self._predict, chunk_size=self.batch_size * 4,
                                  description="cross-encoder scoring")
        self.counters = {"pairs": len(scores), "pairs_scored": self.cache.scored - before}
        return scores

    def _predict(self, items: list[str], requests: list[str]) -> list[float]:
        pairs = list(zip(requests, items))
        with autocast(self.precision, self.model.device.type):
            return predict_logits(self.model, pairs, batch_size=self.batch_size)

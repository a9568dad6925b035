"""UPR (Sachan et al., 2022), the Mint paper's LM baseline: rerank by log P(request | item).

The likelihood comes from `mint_distill.scoring.LikelihoodScorer`, the scorer the filter stage
uses, so reranking and filtering share one implementation, prompt and on-disk cache format.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ...models.precision import Precision


class LikelihoodPairScorer:
    """Scores (request, item) pairs by the request's log-likelihood given the item text."""

    def __init__(
        self,
        model: str,
        model_type: Literal["auto", "causal", "seq2seq"] = "auto",
        quantization: Literal["none", "8bit", "4bit"] = "none",
        precision: Precision = "float32",
        score: Literal["sum", "mean"] = "sum",
        max_item_tokens: int = 480,
        batch_size: int = 16,
        trust_remote_code: bool = False,
        cache_dir: str | os.PathLike | None = None,
    ):
        from ...scoring import LikelihoodScorer, ScoreCache

        self.reference = model
        self.cache = ScoreCache(Path(cache_dir) / "likelihoods.sqlite") if cache_dir is not None else None
        self.scorer = LikelihoodScorer(
            model, model_type=model_type, quantization=quantization, precision=precision, score=score,
            max_item_tokens=max_item_tokens, batch_size=batch_size,
            trust_remote_code=trust_remote_code, cache=self.cache,
        )
        self.counters: dict[str, int] = {}

    def score(self, requests: Sequence[str], items: Sequence[str]) -> list[float]:
        cached_before = len(self.cache) if self.cache is not None else 0
        scores = self.scorer.score(list(items), list(requests))
        self.counters = {"pairs": len(scores)}
        if self.cache is not None:
            self.counters["pairs_scored"] = len(self.cache) - cached_before
        return scores

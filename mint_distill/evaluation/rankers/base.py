"""What every ranker does, and reranking a first stage's top-k with a pair scorer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ...students.fusion import fuse
from ..collection import EvalCollection
from ..trec import Run, ranked


class Ranker(Protocol):
    """Scores each request's candidate pool; returns at most `depth` items per request."""

    counters: dict[str, int]

    def rank(self, collection: EvalCollection, depth: int) -> Run: ...


class PairScorer(Protocol):
    """Scores (request, item) text pairs; higher means a better match."""

    counters: dict[str, int]

    def score(self, requests: Sequence[str], items: Sequence[str]) -> list[float]: ...


class Reranker:
    """Rescore the first `top_k` items of a first-stage run with a pair scorer.

    With `fusion_weight`, a rescored item's score is `fuse`d with its first-stage score. The first
    stage's items below `top_k` follow the rescored ones in their original order (with scores
    below every rescored item), so the run keeps its depth for recall measures.
    """

    def __init__(self, scorer: PairScorer, first_stage: Run, top_k: int, fusion_weight: float | None = None):
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self.scorer = scorer
        self.first_stage = first_stage
        self.top_k = top_k
        self.fusion_weight = fusion_weight

    @property
    def counters(self) -> dict[str, int]:
        return self.scorer.counters

    def rank(self, collection: EvalCollection, depth: int) -> Run:
        orders = {qid: ranked(self.first_stage.get(qid, {}), depth) for qid in collection.qids()}
        pairs = [(qid, item) for qid, order in orders.items() for item, _ in order[: self.top_k]]
        scores = self.scorer.score(
            [collection.requests[qid] for qid, _ in pairs], [collection.items[item] for _, item in pairs]
        )
        head: dict[str, dict[str, float]] = {}
        for (qid, item), score in zip(pairs, scores, strict=True):
            head.setdefault(qid, {})[item] = float(score)
        run: Run = {}
        for qid, order in orders.items():
            if not order:
                continue
            rescored = head.get(qid, {})
            if self.fusion_weight is not None:
                rescored = fuse(dict(order[: self.top_k]), rescored, self.fusion_weight)
            floor = min(rescored.values())
            tail = {item: floor - position for position, (item, _) in enumerate(order[self.top_k:], start=1)}
            run[qid] = dict(ranked({**rescored, **tail}, depth))
        return run

"""The cross-encoder's dev task: rerank the bi-encoder's top k for each dev request, as at test time.

A reranker is judged on the candidates it will be given: the first stage's top k, which are
mostly near neighbours of the relevant items. Ranking a request's kept items among its mined
negatives (ranks 100-300 in the paper's setting) is a far easier task that a cross-encoder can
master without ordering near neighbours any better, so it is not what selects the checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .data import StudentData
from .dev_metrics import ranking_measures
from .fusion import fuse


@dataclass(frozen=True)
class DevReranking:
    """Each dev request's candidates with their first-stage scores, and its kept items among them.

    Items shown for the request that the filter did not keep are removed from its candidates:
    neither relevant nor safe to count as wrong. Requests without a kept item in their top k
    are left out, since no reranking can change them.
    """

    candidates: dict[str, dict[str, float]]
    relevant: dict[str, set[str]]
    requests_without_kept_items: int

    @classmethod
    def from_rankings(
        cls, rankings: Mapping[str, Sequence[tuple[str, float]]], data: StudentData, top_k: int
    ) -> DevReranking:
        kept = data.positives("dev")
        candidates, relevant, missed = {}, {}, 0
        for request_id, ranking in rankings.items():
            positives = set(kept.get(request_id, ()))
            unkept = data.shown.get(request_id, frozenset()) - positives
            top = dict([(item, score) for item, score in ranking if item not in unkept][:top_k])
            if positives.isdisjoint(top):
                missed += 1
                continue
            candidates[request_id] = top
            relevant[request_id] = positives & set(top)
        return cls(candidates, relevant, missed)

    def measures(self, scored: Mapping[tuple[str, str], float], k: int = 10) -> dict[str, float]:
        """MRR@k and Recall@k of the reranked candidates, from (request id, item id) -> score."""
        return self._measures(
            {r: {item: scored[r, item] for item in items} for r, items in self.candidates.items()}, k
        )

    def first_stage_measures(self, k: int = 10) -> dict[str, float]:
        """The same measures for the first stage's own scores: the bar a reranker must clear."""
        return self._measures(self.candidates, k)

    def fused_measures(
        self, scored: Mapping[tuple[str, str], float], weights: Sequence[float], k: int = 10
    ) -> tuple[float, dict[str, float]]:
        """The weight whose `fuse` of reranker and first-stage scores has the highest MRR@k, and
        its measures. Ties go to the higher weight: the reranker must earn the first stage's share,
        or a dev split too small to tell them apart would record the first stage's order alone."""
        best: tuple[float, dict[str, float]] | None = None
        for weight in sorted(weights, reverse=True):
            fused = {
                r: fuse(first_stage, {item: scored[r, item] for item in first_stage}, weight)
                for r, first_stage in self.candidates.items()
            }
            found = self._measures(fused, k)
            if best is None or found.get(f"mrr@{k}", 0.0) > best[1].get(f"mrr@{k}", 0.0):
                best = (weight, found)
        if best is None:
            raise ValueError("no fusion weight given")
        return best

    def _measures(self, scores: Mapping[str, Mapping[str, float]], k: int) -> dict[str, float]:
        per_request = []
        for request_id, items in self.candidates.items():
            row = scores[request_id]
            relevant = {column for column, item in enumerate(items) if item in self.relevant[request_id]}
            per_request.append(ranking_measures(torch.tensor([[row[item] for item in items]]), [relevant], k=k))
        if not per_request:
            return {}
        return {name: sum(m[name] for m in per_request) / len(per_request) for name in per_request[0]}

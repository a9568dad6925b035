"""Dev measures for model selection: how well a student ranks each dev request's kept items."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def ranking_measures(
    scores: torch.Tensor,
    relevant: Sequence[set[int]],
    excluded: Sequence[set[int]] = (),
    k: int = 10,
) -> dict[str, float]:
    """Mean MRR@k and Recall@k over queries.

    `scores` is (queries, candidates); `relevant[q]` holds the candidate columns relevant to
    query q; `excluded[q]` columns are removed from q's ranking (items shown for the request
    that the filter did not keep: neither relevant nor safe to count as wrong).
    """
    scores = scores.float().clone()
    reciprocal_ranks, recalls = [], []
    for row, positives in enumerate(relevant):
        if not positives:
            continue
        for column in excluded[row] if excluded else ():
            scores[row, column] = float("-inf")
        top = torch.topk(scores[row], min(k, scores.size(1))).indices.tolist()
        hits = [rank for rank, column in enumerate(top, start=1) if column in positives]
        reciprocal_ranks.append(1.0 / hits[0] if hits else 0.0)
        recalls.append(len(hits) / len(positives))
    if not reciprocal_ranks:
        return {}
    return {
        f"mrr@{k}": sum(reciprocal_ranks) / len(reciprocal_ranks),
        f"recall@{k}": sum(recalls) / len(recalls),
    }

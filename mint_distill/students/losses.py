"""Training objectives of the two students, computed from embeddings or scores.

Bi-encoder losses see every process's documents: embeddings are all-gathered with gradient
(sentence-transformers' `gather_across_devices`), so the in-batch negative pool is the global
batch whatever the number of processes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def mnrl_loss(
    queries: Tensor,
    documents: list[Tensor],
    *,
    scale: float,
    gather: bool,
    symmetric: bool = False,
) -> Tensor:
    """Multiple negatives ranking loss (InfoNCE over cosine scores).

    `documents[0]` holds each query's positive, further tensors its hard negatives; every other
    query's documents in the (gathered) batch are negatives too. `symmetric` adds the other
    direction, each positive ranking its own query among the batch's queries, and averages the
    two softmaxes (sentence-transformers' MultipleNegativesSymmetricRankingLoss).
    """
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    loss = MultipleNegativesRankingLoss(
        model=None,
        scale=scale,
        gather_across_devices=gather,
        directions=("query_to_doc", "doc_to_query") if symmetric else ("query_to_doc",),
        partition_mode="per_direction" if symmetric else "joint",
    )
    return loss.compute_loss_from_embeddings([queries, *documents], labels=None)


def triplet_loss(
    queries: Tensor, documents: list[Tensor], *, margin: float, gather: bool
) -> Tensor:
    """Triplet margin loss on euclidean distances, every in-batch document a negative.

    For query i with positive p_i, each other document n of the (gathered) batch, and the
    query's own hard negatives, adds max(0, d(q_i, p_i) - d(q_i, n) + margin); the mean is taken.
    """
    from sentence_transformers.util import all_gather_with_grad, get_rank

    local = queries.size(0)
    offset = 0
    if gather:
        documents = [all_gather_with_grad(d) for d in documents]
        offset = get_rank() * local
    candidates = torch.cat(documents, dim=0)
    distances = torch.cdist(queries, candidates)
    own = torch.arange(local, device=queries.device) + offset
    positive = distances[torch.arange(local, device=queries.device), own]
    hinge = F.relu(positive.unsqueeze(1) - distances + margin)
    is_negative = torch.ones_like(hinge, dtype=torch.bool)
    is_negative[torch.arange(local, device=queries.device), own] = False
    return hinge[is_negative].mean()


def listwise_loss(scores: Tensor) -> Tensor:
    """Softmax cross-entropy over groups: `scores` is (groups, 1 + negatives), positive first
    (groups padded to a common width hold -inf, which the softmax ignores)."""
    target = torch.zeros(scores.size(0), dtype=torch.long, device=scores.device)
    return F.cross_entropy(scores.float(), target)


def pointwise_bce_loss(scores: Tensor, mask: Tensor | None = None) -> Tensor:
    """Binary cross-entropy on the same groups: label 1 for the positive, 0 for each negative.

    `mask` marks real entries of groups padded to a common width.
    """
    labels = torch.zeros_like(scores, dtype=torch.float)
    labels[:, 0] = 1.0
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    return F.binary_cross_entropy_with_logits(scores.float()[mask], labels[mask])

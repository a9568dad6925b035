"""Score every (request, shown item) pair and apply the keep rule: the filter as a library call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .keep import KeepRule
from .records import CatalogItem, SyntheticRequest

if TYPE_CHECKING:
    from ..scoring import LikelihoodScorer


def pair_texts(requests: list[SyntheticRequest], items: dict[str, CatalogItem]) -> tuple[list[str], list[str]]:
    """Item texts and request texts of every pair, request by request in shown order."""
    item_texts, request_texts = [], []
    for request in requests:
        for item_id in request.item_ids:
            item_texts.append(items[item_id].text)
            request_texts.append(request.text)
    return item_texts, request_texts


def filter_requests(
    requests: list[SyntheticRequest],
    items: dict[str, CatalogItem],
    rule: KeepRule,
    scorer: LikelihoodScorer | None = None,
) -> list[dict]:
    """`pairs.jsonl` records: one per (request, shown item), with score (null unless scored), rank and kept.

    Method `likelihood` needs a scorer; `random` and `none` never load a model.
    """
    scores: list[float | None]
    if rule.method == "likelihood":
        if scorer is None:
            raise ValueError("method `likelihood` needs a LikelihoodScorer")
        scores = list(scorer.score(*pair_texts(requests, items)))
    else:
        scores = [None] * sum(len(request.item_ids) for request in requests)
    records, start = [], 0
    for request in requests:
        own = scores[start:start + len(request.item_ids)]
        start += len(request.item_ids)
        decisions = rule.decide(request.request_id, len(own), own if rule.method == "likelihood" else None)
        for item_id, score, decision in zip(request.item_ids, own, decisions):
            records.append({
                "request_id": request.request_id, "user_id": request.user_id, "split": request.split,
                "item_id": item_id, "score": score, "rank": decision.rank, "kept": decision.kept,
            })
    return records

"""Score every (request, shown item) pair and apply the keep rule: the filter as a library call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .keep import KeepRule
from .records import CatalogItem, SyntheticRequest


class PairScorer(Protocol):
    """Scores (item, request) pairs, higher for an item that explains its request better."""

    def score(self, items: list[str], requests: list[str]) -> Sequence[float]: ...


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
    scorer: PairScorer | None = None,
) -> list[dict]:
    """`pairs.jsonl` records: one per (request, shown item), with score (null unless scored), rank and kept.

    Methods `likelihood` and `encoder` need a scorer; `random` and `none` never load a model.
    """
    scores: list[float | None]
    if rule.scored:
        if scorer is None:
            raise ValueError(f"method `{rule.method}` needs a scorer")
        scores = list(scorer.score(*pair_texts(requests, items)))
    else:
        scores = [None] * sum(len(request.item_ids) for request in requests)
    records, start = [], 0
    for request in requests:
        own = scores[start:start + len(request.item_ids)]
        start += len(request.item_ids)
        decisions = rule.decide(request.request_id, len(own), own if rule.scored else None)
        for item_id, score, decision in zip(request.item_ids, own, decisions):
            records.append({
                "request_id": request.request_id, "user_id": request.user_id, "split": request.split,
                "item_id": item_id, "score": score, "rank": decision.rank, "kept": decision.kept,
            })
    return records

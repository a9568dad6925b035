"""What rankers and metrics need from a test collection, as plain dicts, and its pool coverage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .trec import Qrels

if TYPE_CHECKING:
    from ..data.pointrec import TestCollection


@dataclass
class EvalCollection:
    """Requests, item texts, one candidate pool per request, and graded judgements.

    `pools[qid]` lists the items a ranker may return for request `qid`; every pooled item has a
    text in `items`. Judged items outside a pool cannot be retrieved but, when `qrels` holds
    them, still count in the ideal ranking, so `coverage()` says how much of the judged set the
    pools hold.
    `request_info` holds descriptive fields per request (city, category, ...) that coverage
    rows repeat; `notes` holds facts about how the collection was built, for reports.
    """

    name: str
    pool: str
    requests: dict[str, str]
    items: dict[str, str]
    pools: dict[str, list[str]]
    qrels: Qrels
    request_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(qid for qid in self.pools if qid not in self.requests)
        if unknown:
            raise ValueError(f"pools for unknown requests: {unknown[:5]}")
        textless = sorted({item for pool in self.pools.values() for item in pool if item not in self.items})
        if textless:
            raise ValueError(f"{len(textless)} pooled items have no text, e.g. {textless[:5]}")

    def qids(self) -> list[str]:
        return sorted(self.requests)

    def pool_of(self, qid: str) -> list[str]:
        return self.pools.get(qid, [])

    def coverage(self, relevance_level: int = 3) -> list[dict[str, Any]]:
        """Per request: pool size, and judged / relevant (grade >= 1) / highly relevant
        (grade >= `relevance_level`) items in total and inside the pool."""
        rows = []
        for qid in self.qids():
            judged = self.qrels.get(qid, {})
            pooled = set(self.pool_of(qid))
            row: dict[str, Any] = {"qid": qid, **self.request_info.get(qid, {}), "pool_size": len(pooled)}
            for label, minimum in (("judged", None), ("relevant", 1), (f"grade{relevance_level}", relevance_level)):
                ids = {item for item, grade in judged.items() if minimum is None or grade >= minimum}
                row[label] = len(ids)
                row[f"{label}_in_pool"] = len(ids & pooled)
            rows.append(row)
        return rows

    def coverage_summary(self, relevance_level: int = 3) -> dict[str, Any]:
        """Totals of `coverage()` and the share of judged and relevant items the pools contain."""
        rows = self.coverage(relevance_level)
        keys = ["pool_size", *(f"{label}{part}" for label in ("judged", "relevant", f"grade{relevance_level}")
                                for part in ("", "_in_pool"))]
        totals = {key: sum(row[key] for row in rows) for key in keys}
        summary: dict[str, Any] = {"requests": len(rows), **totals}
        for label in ("judged", "relevant", f"grade{relevance_level}"):
            if totals.get(label):
                summary[f"{label}_in_pool_share"] = round(totals[f"{label}_in_pool"] / totals[label], 4)
        summary["requests_with_empty_pool"] = sum(1 for row in rows if row["pool_size"] == 0)
        return summary


def from_test_collection(collection: TestCollection, pool: str) -> EvalCollection:
    """Adapt the data layer's test collection (requests, items, pools, qrels) to plain dicts."""
    qids = collection.qids()
    pools = {qid: list(collection.pool(qid)) for qid in qids}
    pooled = {item for ids in pools.values() for item in ids}
    texts = {}
    for item in sorted(pooled):
        text = collection.item_text(item)
        if text is not None:
            texts[item] = text
    # A pool may name items the catalog holds no text for; rankers cannot score them.
    pools = {qid: [item for item in ids if item in texts] for qid, ids in pools.items()}
    computed_here = {"qid", "judged", "relevant", "grade3", "pool", "pool_size", "relevant_in_pool", "kept"}
    info = {
        row["qid"]: {key: value for key, value in row.items() if key not in computed_here}
        for row in collection.coverage()
    }
    return EvalCollection(
        name=collection.name,
        pool=pool,
        requests={qid: collection.requests[qid].text for qid in qids},
        items=texts,
        pools=pools,
        qrels={qid: collection.evaluation_qrels(qid) for qid in qids},
        request_info={qid: info.get(qid, {}) for qid in qids},
        notes={
            "pooled_items_without_text": len(pooled) - len(texts),
            "requests_in_collection": len(collection.requests),
            "condensed_qrels": collection.spec.condensed_qrels,
            "judgements": sum(len(collection.qrels.get(qid, {})) for qid in qids),
            "judgements_with_text": sum(
                1 for qid in qids for item in collection.qrels.get(qid, {}) if collection.item_text(item) is not None
            ),
            "min_pool_size": collection.spec.min_pool_size,
        },
    )

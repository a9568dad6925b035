"""Throughput of each ranker on this machine: items encoded per second, requests ranked per second.

The default collection is synthetic, with Pointrec-like lengths (requests of about 120 words,
POI texts of about 90 words: name, city, categories and web snippets), so the figures do not
depend on any data being present. Caches are off, so every number is a cold computation.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from ..recipe.sections.evaluation import EvaluationSection, RankerSpec
from .collection import EvalCollection

_WORDS = ["quiet", "bar", "live", "music", "jazz", "cheap", "pizza", "harbour", "museum", "modern", "art", "family", "friendly", "vegetarian", "local", "craft", "beer", "rooftop", "view", "cocktails", "brunch", "seafood", "tapas", "hiking", "trail", "park", "river", "old", "town", "gallery", "festival", "street", "food", "market", "wine", "cellar", "club", "dance", "late", "night", "coffee", "bakery", "castle", "beach", "kayak", "cycling", "tour", "history", "theatre", "concert", "vintage", "shop", "garden", "lake", "sunset", "romantic", "partner", "kids", "budget"]
_CATEGORIES = ("Nightlife", "Restaurants and Food", "Arts & Entertainment", "Active Life")


def synthetic_collection(requests: int = 10, pool_size: int = 20, seed: int = 0) -> EvalCollection:
    """Requests and POI-like items of realistic length, one pool of `pool_size` items per request."""
    generator = random.Random(seed)

    def words(count: int) -> str:
        return " ".join(generator.choice(_WORDS) for _ in range(count))

    texts, pools, qrels, queries = {}, {}, {}, {}
    for r in range(requests):
        category = _CATEGORIES[r % len(_CATEGORIES)]
        queries[f"q{r}"] = f"Looking for {category.lower()} in Springfield, US. {words(115)}."
        pools[f"q{r}"] = []
        for i in range(pool_size):
            item = f"p{r}-{i}"
            snippets = " ".join(f"title: {words(5)}, snippet: {words(12)}." for _ in range(4))
            texts[item] = f"{words(2).title()} in Springfield, US is known for {category.lower()}. Specifically: {words(3)}. {snippets}"
            pools[f"q{r}"].append(item)
        qrels[f"q{r}"] = {pools[f"q{r}"][0]: 3}
    return EvalCollection("synthetic", "synthetic", queries, texts, pools, qrels)


def bench_evaluation(
    rankers: Sequence[RankerSpec] | None = None,
    collection: EvalCollection | None = None,
    *,
    depth: int = 200,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Seconds, items encoded per second and requests ranked per second for each ranker.

    Dense rankers: `items_per_second` is item encoding alone; `requests_per_second` is encoding
    the request and scoring its pool against stored item vectors (serving cost). BM25: indexing
    and scoring together. Rerankers rescore their first stage's top-k: `pairs_per_second`.
    Default rankers: the recipe defaults (bm25, both zero-shot encoders, UPR); rankers whose model
    cannot be loaded here are reported with the error instead of figures.
    """
    import torch

    from ..errors import MintError
    from .systems import make_ranker

    collection = collection or synthetic_collection()
    specs = list(rankers) if rankers is not None else list(EvaluationSection().rankers)
    pooled = sorted({item for qid in collection.qids() for item in collection.pool_of(qid)})
    report: dict[str, Any] = {
        "collection": {"name": collection.name, "requests": len(collection.qids()), "pooled_items": len(pooled)},
        "torch_threads": torch.get_num_threads(),
        "rankers": {},
    }
    runs = {}
    for spec in specs:
        try:
            ranker = make_ranker(spec, runs, batch_size=batch_size, cache_dir=None)
        except (MintError, ValueError) as error:  # model not available here, or its first stage missing
            report["rankers"][spec.name] = {"kind": spec.kind, "unavailable": str(error)}
            continue
        figures: dict[str, Any] = {"kind": spec.kind, "model": spec.model}
        if spec.kind in ("dense", "biencoder"):
            clock = time.perf_counter()
            ranker.encode_items([collection.items[item] for item in pooled])
            seconds = time.perf_counter() - clock
            figures.update(encode_seconds=round(seconds, 3), items_per_second=round(len(pooled) / seconds, 2))
        clock = time.perf_counter()
        runs[spec.name] = ranker.rank(collection, depth)
        seconds = time.perf_counter() - clock
        figures.update(rank_seconds=round(seconds, 3), requests_per_second=round(len(runs[spec.name]) / seconds, 2))
        if spec.kind == "bm25":
            figures["items_per_second"] = round(len(collection.items) / seconds, 2)
        if spec.first_stage:
            pairs = ranker.counters.get("pairs", 0)
            figures.update(top_k=spec.top_k, pairs=pairs, pairs_per_second=round(pairs / seconds, 2))
        report["rankers"][spec.name] = figures
    return report

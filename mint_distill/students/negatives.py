"""Hard negatives: rank the catalog for each request and draw negatives from a rank window.

The paper draws the cross-encoder's 4 negatives per positive from ranks 101-300 of the trained
bi-encoder: hard enough to teach, deep enough to rarely be unlabelled positives. A training
catalog smaller than the window's end gets a proportionally scaled window (`effective_window`).
Items shown to the teacher for the request's user are never negatives.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..bm25 import import_bm25s
from ..console import progress_bar
from .data import Pair

log = logging.getLogger(__name__)


def effective_window(start: int, end: int, catalog_size: int, per_positive: int) -> tuple[int, int]:
    """The rank window [start, end) to use on a catalog of `catalog_size` items.

    A catalog with at least `end` items keeps the window. A smaller one scales both ends by
    catalog_size / end (ranks 100-300 on 150 items become 50-150), and the start moves up so the
    window holds at least `per_positive` items where the catalog allows.
    """
    if catalog_size >= end:
        return start, end
    scale = catalog_size / end
    scaled_start, scaled_end = int(start * scale), catalog_size
    if scaled_end - scaled_start < per_positive:
        scaled_start = max(0, scaled_end - per_positive)
    return scaled_start, scaled_end


def pair_seed(seed: int, request_id: str, item_id: str) -> int:
    """A stable per-pair seed, independent of file order and process count."""
    digest = hashlib.sha256(f"{seed}\0{request_id}\0{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def sample_negatives(
    ranking: Sequence[str],
    window: tuple[int, int],
    count: int,
    excluded: Iterable[str],
    rng: random.Random,
) -> list[str]:
    """Up to `count` items drawn from ranks [start, end) of `ranking`, in rank order.

    Excluded items are skipped. If the window holds too few, the ranks just after the window
    (easier negatives), then those just before it, fill the rest, so every pair gets `count`
    negatives where the catalog allows.
    """
    start, end = window
    excluded = set(excluded)
    inside = [item for item in ranking[start:end] if item not in excluded]
    if len(inside) >= count:
        chosen = set(rng.sample(inside, count))
    else:
        outside = [
            item for item in (*ranking[end:], *reversed(ranking[:start])) if item not in excluded
        ]
        chosen = set(inside) | set(outside[: count - len(inside)])
    return [item for item in ranking if item in chosen]


def mine_negatives(
    rankings: Mapping[str, Sequence[str]],
    pairs: Iterable[Pair],
    shown: Mapping[str, Iterable[str]],
    *,
    window: tuple[int, int],
    per_positive: int,
    seed: int,
) -> list[dict]:
    """`negatives.jsonl` records for `pairs`: {"request_id", "item_id", "negatives": [...]}."""
    records = []
    for pair in pairs:
        rng = random.Random(pair_seed(seed, pair.request_id, pair.item_id))
        excluded = {pair.item_id, *shown.get(pair.request_id, ())}
        negatives = sample_negatives(rankings[pair.request_id], window, per_positive, excluded, rng)
        records.append(
            {"request_id": pair.request_id, "item_id": pair.item_id, "negatives": negatives}
        )
    return records


def bm25_rankings(
    queries: Mapping[str, str], items: Mapping[str, str], depth: int
) -> dict[str, list[str]]:
    """Request id -> the `depth` best catalog item ids by BM25 (bm25s, English stopwords)."""
    bm25s = import_bm25s()

    item_ids = list(items)
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize([items[i] for i in item_ids], stopwords="en", show_progress=False),
        show_progress=False,
    )
    query_ids = list(queries)
    tokens = bm25s.tokenize([queries[q] for q in query_ids], stopwords="en", show_progress=False)
    documents, _ = retriever.retrieve(tokens, k=min(depth, len(item_ids)), show_progress=False)
    return {query: [item_ids[int(d)] for d in row] for query, row in zip(query_ids, documents)}


def dense_rankings(
    model,
    queries: Mapping[str, str],
    items: Mapping[str, str],
    depth: int,
    *,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
) -> dict[str, list[tuple[str, float]]]:
    """Request id -> the `depth` best catalog items by the bi-encoder, as (item id, cosine) pairs.

    With `cache_dir`, embeddings are saved chunk by chunk, so an interrupted run re-encodes only
    the chunk it was in.
    """
    import torch

    item_ids, query_ids = list(items), list(queries)
    item_vectors = encode_in_chunks(
        model, [items[i] for i in item_ids], "items", batch_size, cache_dir
    )
    query_vectors = encode_in_chunks(
        model, [queries[q] for q in query_ids], "requests", batch_size, cache_dir
    )
    rankings: dict[str, list[tuple[str, float]]] = {}
    depth = min(depth, len(item_ids))
    for start in range(0, len(query_ids), 256):
        top = torch.topk(query_vectors[start : start + 256] @ item_vectors.T, depth, dim=1)
        for query, indices, values in zip(
            query_ids[start : start + 256], top.indices.tolist(), top.values.tolist()
        ):
            rankings[query] = [(item_ids[i], value) for i, value in zip(indices, values)]
    return rankings


def encode_in_chunks(
    model,
    texts: list[str],
    name: str,
    batch_size: int,
    cache_dir: str | Path | None,
    chunk_size: int = 512,
):
    """Normalised embeddings of `texts` (a float32 tensor), cached per chunk under `cache_dir`."""
    import torch
    from safetensors.torch import load_file, save_file

    from ..io import atomic_path

    folder = Path(cache_dir) if cache_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    chunks = []
    with progress_bar(f"encoding {name}", len(texts), unit="text") as bar:
        for index, start in enumerate(range(0, len(texts), chunk_size)):
            part = texts[start : start + chunk_size]
            path = (
                folder / f"{name}-{index:05d}-{len(part)}.safetensors"
                if folder is not None
                else None
            )
            if path is not None and path.is_file():
                vectors = load_file(str(path))["embeddings"]
            else:
                vectors = (
                    model.encode(
                        part,
                        batch_size=batch_size,
                        convert_to_tensor=True,
                        normalize_embeddings=True,
                        show_progress_bar=False,
                    )
                    .float()
                    .cpu()
                )
                if path is not None:
                    with atomic_path(path) as tmp:
                        save_file({"embeddings": vectors.contiguous()}, str(tmp))
            chunks.append(vectors)
            bar.advance(len(part))
    return torch.cat(chunks) if chunks else torch.empty(0)

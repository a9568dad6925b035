"""Recommend catalog items for narrative requests with a trained (or exported) encoder.

    from mint_distill.recommend import recommend

    answers = recommend(["Looking for quiet bars with live music ..."],
                        encoder="exports/poi", catalog="runs/pointrec/data/items.jsonl", k=5)
    for result in answers[0].results:
        print(result.rank, result.item_id, result.score)

With an ONNX export as the encoder nothing here imports torch; bundles, adapter folders and
model references load sentence-transformers.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..students.fusion import recorded_fusion_weight
from .catalog import Catalog, pointrec_city_catalog, read_jsonl_catalog
from .encoders import Encoder, open_encoder
from .index import CatalogIndex, build_or_load_index
from .recommender import Answer, Recommendation, Recommender, open_reranker, recorded_reranking
from .requests import numbered

__all__ = [
    "Answer",
    "Catalog",
    "CatalogIndex",
    "Encoder",
    "Recommendation",
    "Recommender",
    "build_or_load_index",
    "open_encoder",
    "open_reranker",
    "pointrec_city_catalog",
    "read_jsonl_catalog",
    "recommend",
    "recorded_fusion_weight",
    "recorded_reranking",
]


def recommend(
    requests: list[str],
    *,
    encoder: str | Encoder,
    catalog: str | os.PathLike | Catalog,
    k: int = 10,
    reranker: str | None = None,
    rerank_top_k: int | None = None,
    fusion_weight: float | None = None,
    index_dir: str | os.PathLike | None = None,
    precision: str = "int8",
) -> list[Answer]:
    """Top `k` items of `catalog` (a JSON lines file or a Catalog) for each request text.

    The catalog is indexed once per encoder (see `build_or_load_index`); `encoder` is an ONNX
    export folder, a bundle, an adapter folder or a model reference (see `open_encoder`);
    `precision` picks the int8 or fp32 model of an ONNX export; `fusion_weight` fuses the
    reranker's scores with the encoder's over its `rerank_top_k` candidates (both default to what
    the reranker's folder records; see `recorded_reranking`).
    """
    catalog = catalog if isinstance(catalog, Catalog) else read_jsonl_catalog(catalog)
    encoder = open_encoder(encoder, precision=precision) if isinstance(encoder, str) else encoder
    scorer = open_reranker(reranker) if reranker else None
    index = build_or_load_index(catalog, encoder, Path(index_dir) if index_dir else None)
    if reranker:
        fusion_weight, rerank_top_k = recorded_reranking(reranker, fusion_weight, rerank_top_k)
    return Recommender(catalog, encoder, index, scorer, rerank_top_k, fusion_weight).recommend(numbered(requests), k)

"""Answer narrative requests from an indexed catalog, optionally reranked by a cross-encoder."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import Catalog
from .encoders import Encoder
from .index import CatalogIndex


@dataclass
class Recommendation:
    rank: int
    item_id: str
    name: str | None
    text: str
    score: float
    rerank_score: float | None = None

    def as_dict(self) -> dict[str, Any]:
        record = {"rank": self.rank, "item_id": self.item_id, "name": self.name, "score": round(self.score, 6)}
        if self.rerank_score is not None:
            record["rerank_score"] = round(self.rerank_score, 6)
        return record


@dataclass
class Answer:
    request_id: str
    request: str
    results: list[Recommendation] = field(default_factory=list)


class Recommender:
    """Ranks the catalog for each request with the encoder (cosine or dot, as the model says);
    with a reranker, its top `rerank_top_k` are rescored by the cross-encoder and reordered
    (with `fusion_weight`, by its score fused with the encoder's, as the evaluate stage does)."""

    def __init__(
        self,
        catalog: Catalog,
        encoder: Encoder,
        index: CatalogIndex,
        reranker=None,
        rerank_top_k: int = 50,
        fusion_weight: float | None = None,
    ):
        if index.ids != catalog.ids:
            raise ValueError("the index was built for another catalog order")
        self.catalog, self.encoder, self.index = catalog, encoder, index
        self.reranker, self.rerank_top_k, self.fusion_weight = reranker, rerank_top_k, fusion_weight

    def recommend(self, requests: list[tuple[str, str]], k: int = 10) -> list[Answer]:
        """Top `k` items for each (request id, request text), best first."""
        if not requests:
            return []
        depth = max(k, self.rerank_top_k) if self.reranker is not None else k
        hits = self.index.search(self.encoder.encode([text for _, text in requests]), depth)
        answers = []
        for (request_id, text), found in zip(requests, hits, strict=True):
            results = [self._recommendation(row, score) for row, score in found]
            if self.reranker is not None:
                results = self._rerank(text, results[: self.rerank_top_k])
            for rank, result in enumerate(results[:k], start=1):
                result.rank = rank
            answers.append(Answer(request_id, text, results[:k]))
        return answers

    def _recommendation(self, row: int, score: float) -> Recommendation:
        return Recommendation(0, self.catalog.ids[row], self.catalog.names[row], self.catalog.texts[row], score)

    def _rerank(self, request: str, results: list[Recommendation]) -> list[Recommendation]:
        predicted = self.reranker.predict([(request, result.text) for result in results], show_progress_bar=False)
        scores = {result.item_id: float(score) for result, score in zip(results, predicted, strict=True)}
        if self.fusion_weight is not None:
            from ..students.fusion import fuse

            scores = fuse({result.item_id: result.score for result in results}, scores, self.fusion_weight)
        for result in results:
            result.rerank_score = scores[result.item_id]
        return sorted(results, key=lambda r: (-r.rerank_score, r.item_id))


def open_reranker(spec: str, bundle_paths: list[str | os.PathLike] = (), base: str | None = None):
    """A CrossEncoder: the `crossencoder` component of a bundle (folder or installed domain),
    a LoRA-tuned CrossEncoder folder, or a CrossEncoder folder / reference."""
    from sentence_transformers import CrossEncoder

    from ..adapters.bundle import ADAPTER_CONFIG, MANIFEST, BundleError
    from ..adapters.installed import find_bundle
    from ..adapters.loading import load_adapted_model, load_bundle
    from ..models import resolve_model

    folder = Path(spec).expanduser()
    if (folder / MANIFEST).is_file() or not folder.exists():
        try:
            bundle = find_bundle(spec, bundle_paths)
        except BundleError:
            bundle = None
        if bundle is not None:
            return load_bundle(bundle.path, component="crossencoder", base=base, merge=True)
    if (folder / ADAPTER_CONFIG).is_file():
        return load_adapted_model(folder, base, kind="cross-encoder", merge=True)
    return CrossEncoder(resolve_model(spec).location, device="cpu")

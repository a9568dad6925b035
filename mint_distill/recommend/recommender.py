"""Answer narrative requests from an indexed catalog, optionally reranked by a cross-encoder."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import Catalog
from .encoders import Encoder
from .index import CatalogIndex

DEFAULT_RERANK_TOP_K = 50


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
    (with `fusion_weight`, by its score fused with the encoder's, as the evaluate stage does),
    and any further items follow in the encoder's order."""

    def __init__(
        self,
        catalog: Catalog,
        encoder: Encoder,
        index: CatalogIndex,
        reranker=None,
        rerank_top_k: int = DEFAULT_RERANK_TOP_K,
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
                results = self._rerank(text, results)
            for rank, result in enumerate(results[:k], start=1):
                result.rank = rank
            answers.append(Answer(request_id, text, results[:k]))
        return answers

    def _recommendation(self, row: int, score: float) -> Recommendation:
        return Recommendation(0, self.catalog.ids[row], self.catalog.names[row], self.catalog.texts[row], score)

    def _rerank(self, request: str, results: list[Recommendation]) -> list[Recommendation]:
        """The top `rerank_top_k` reordered by the cross-encoder, then the rest in the encoder's
        order, with rerank scores below every reranked item's (TREC tools order a run by score)."""
        from ..students.crossencoder import predict_logits

        head, tail = results[: self.rerank_top_k], results[self.rerank_top_k :]
        predicted = predict_logits(self.reranker, [(request, result.text) for result in head])
        scores = {result.item_id: score for result, score in zip(head, predicted, strict=True)}
        if self.fusion_weight is not None:
            from ..students.fusion import fuse

            scores = fuse({result.item_id: result.score for result in head}, scores, self.fusion_weight)
        for result in head:
            result.rerank_score = scores[result.item_id]
        floor = min(scores.values(), default=0.0)
        for position, result in enumerate(tail, start=1):
            result.rerank_score = floor - position
        return sorted(head, key=lambda r: (r.rerank_score, r.item_id), reverse=True) + tail  # trec_eval's order


def open_reranker(spec: str, bundle_paths: list[str | os.PathLike] = (), base: str | None = None):
    """A CrossEncoder: the `crossencoder` component of a bundle (folder or installed domain),
    a LoRA-tuned CrossEncoder folder, or a CrossEncoder folder / reference."""
    from sentence_transformers import CrossEncoder

    from ..adapters.bundle import ADAPTER_CONFIG
    from ..adapters.loading import load_adapted_model, load_bundle
    from ..models import resolve_model
    from .encoders import refuse_other_kind

    bundle = _reranker_bundle(spec, bundle_paths)
    if bundle is not None:
        return load_bundle(bundle.path, component="crossencoder", base=base, merge=True)
    folder = Path(spec).expanduser()
    if (folder / ADAPTER_CONFIG).is_file():
        return load_adapted_model(folder, base, kind="cross-encoder", merge=True)
    refuse_other_kind(spec, "cross-encoder", "--rerank")
    return CrossEncoder(resolve_model(spec).location, device="cpu")


def recorded_reranking(
    spec: str,
    fusion_weight: float | None = None,
    rerank_top_k: int | None = None,
    bundle_paths: list[str | os.PathLike] = (),
) -> tuple[float | None, int]:
    """(fusion weight, rerank top k) for the reranker `spec`: the values given, else those its
    folder's `mint-student.json` records (the weight chosen on the synthetic dev split, and how many
    candidates it was chosen over), else no fusion and `DEFAULT_RERANK_TOP_K`."""
    from ..adapters.bundle import component_entry
    from ..students.fusion import recorded_fusion_weight, recorded_rerank_top_k

    bundle = _reranker_bundle(spec, bundle_paths)
    if bundle is not None:
        folder = bundle.path / component_entry(bundle.path, bundle.manifest, "crossencoder")["path"]
    else:
        folder = Path(spec).expanduser()
    if fusion_weight is None:
        fusion_weight = recorded_fusion_weight(folder)
    if rerank_top_k is None:
        rerank_top_k = recorded_rerank_top_k(folder) or DEFAULT_RERANK_TOP_K
    return fusion_weight, rerank_top_k


def _reranker_bundle(spec: str, bundle_paths: list[str | os.PathLike]):
    """The bundle `spec` names (a bundle folder or an installed domain), or None."""
    from ..adapters.bundle import MANIFEST, BundleError
    from ..adapters.installed import find_bundle

    folder = Path(spec).expanduser()
    if (folder / MANIFEST).is_file():
        return find_bundle(folder, bundle_paths)  # a bundle: a bad manifest is an error, not a model
    if folder.exists():
        return None
    try:
        return find_bundle(spec, bundle_paths)
    except BundleError:
        return None  # not an installed bundle: a model reference

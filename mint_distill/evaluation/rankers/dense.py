"""Bi-encoder ranking: any sentence-transformers model, zero-shot or trained (incl. PEFT adapters)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...models.precision import Precision, autocast, resolve_precision
from ..cache import EncodingCache, cache_key
from ..collection import EvalCollection
from ..encoders import load_biencoder
from ..trec import Run, ranked


class DenseRanker:
    """Encode requests and pooled items, rank each pool by the model's similarity function.

    Vectors are cached under `cache_dir` by model fingerprint, sequence length and text, so a
    second evaluation with the same model encodes nothing.
    """

    def __init__(
        self,
        model: str,
        batch_size: int = 32,
        cache_dir: str | os.PathLike | None = None,
        device: str | None = None,
        precision: Precision = "float32",
    ):
        self.reference = model
        self.batch_size = batch_size
        self.model, model_fingerprint = load_biencoder(model, device)
        self.precision = resolve_precision(precision, self.model.device.type)
        identity = cache_key(
            kind="sentence-transformer",
            model=model_fingerprint,
            max_seq_length=self.model.max_seq_length,
            similarity=self.model.similarity_fn_name,
            **({"precision": self.precision} if self.precision != "float32" else {}),
        )
        root = Path(cache_dir) / "encodings" / identity if cache_dir is not None else None
        self.request_cache = EncodingCache(root / "requests" if root else None)
        self.item_cache = EncodingCache(root / "items" if root else None)
        self.counters: dict[str, int] = {}

    def encode_items(self, texts: Sequence[str]) -> np.ndarray:
        return self.item_cache.encode(list(texts), self._encode_documents, description="encoding items")

    def encode_requests(self, texts: Sequence[str]) -> np.ndarray:
        return self.request_cache.encode(list(texts), self._encode_queries, description="encoding requests")

    def _encode_documents(self, texts: list[str]) -> np.ndarray:
        with autocast(self.precision, self.model.device.type):
            vectors = self.model.encode_document(texts, batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False)
        return vectors.float().cpu().numpy()

    def _encode_queries(self, texts: list[str]) -> np.ndarray:
        with autocast(self.precision, self.model.device.type):
            vectors = self.model.encode_query(texts, batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False)
        return vectors.float().cpu().numpy()

    def rank(self, collection: EvalCollection, depth: int) -> Run:
        qids = [qid for qid in collection.qids() if collection.pool_of(qid)]
        pooled = sorted({item for qid in qids for item in collection.pool_of(qid)})
        encoded_before = (self.item_cache.encoded, self.request_cache.encoded)
        item_vectors = self.encode_items([collection.items[item] for item in pooled])
        request_vectors = self.encode_requests([collection.requests[qid] for qid in qids])
        row = {item: position for position, item in enumerate(pooled)}
        run: Run = {}
        for qid, vector in zip(qids, request_vectors):
            pool = collection.pool_of(qid)
            similarities = self.model.similarity(vector[None, :], item_vectors[[row[item] for item in pool]])[0]
            run[qid] = dict(ranked(dict(zip(pool, similarities.tolist())), depth))
        self.counters = {
            "items": len(pooled),
            "items_encoded": self.item_cache.encoded - encoded_before[0],
            "requests": len(qids),
            "requests_encoded": self.request_cache.encoded - encoded_before[1],
        }
        return run

"""Measures of a teacher: round-trip retrievability (consistency) and diversity of its requests.

Round-trip retrievability, as Promptagator uses it: a request is a good training query when a
zero-shot encoder, given the request, finds the items of the user it was written for. Each
request queries the whole training catalog; Recall@k counts the user's items in the top k,
MRR the rank of the first one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from .gates import words


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct word n-grams over all n-grams of all texts (higher is more diverse)."""
    grams = [
        tuple(tokens[i : i + n]) for tokens in map(words, texts) for i in range(len(tokens) - n + 1)
    ]
    return len(set(grams)) / len(grams) if grams else 0.0


def duplicate_share(texts: Sequence[str]) -> float:
    """Share of texts that repeat an earlier one (case and spacing ignored)."""
    normalised = [" ".join(words(text)) for text in texts]
    return 1.0 - len(set(normalised)) / len(normalised) if normalised else 0.0


class Catalog:
    """A training catalog (`items.jsonl` records) encoded once, cached on disk by encoder and texts."""

    def __init__(
        self,
        encoder,
        items: Sequence[dict],
        cache_dir: str | Path | None = None,
        encoder_name: str = "",
    ):
        import numpy as np

        self.encoder = encoder
        self.item_ids = [str(item["item_id"]) for item in items]
        texts = [item["text"] for item in items]
        self.index = {item_id: position for position, item_id in enumerate(self.item_ids)}
        self._by_name = {
            _name_key(item): str(item["item_id"]) for item in items if item.get("name")
        }
        digest = hashlib.sha256(
            "\0".join([encoder_name, *self.item_ids, *texts]).encode()
        ).hexdigest()[:16]
        cached = Path(cache_dir) / f"catalog-{digest}.npy" if cache_dir else None
        if cached is not None and cached.is_file():
            self.embeddings = np.load(cached, allow_pickle=False)
        else:
            self.embeddings = encoder.encode(
                texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True
            )
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.save(cached, self.embeddings, allow_pickle=False)

    def resolve(self, item: dict) -> str | None:
        """The catalog id of a shown item: its own id, else the item with the same name and city."""
        item_id = item.get("item_id")
        if item_id is not None and str(item_id) in self.index:
            return str(item_id)
        return self._by_name.get(_name_key(item))

    def round_trip(
        self, queries: Sequence[str], positives: Sequence[Sequence[str]], k: int = 10
    ) -> dict:
        """Mean Recall@k and MRR of each query's positive items; queries with none in the catalog are skipped."""
        import numpy as np

        kept = [
            (q, [self.index[i] for i in pos if i in self.index])
            for q, pos in zip(queries, positives)
        ]
        kept = [(q, pos) for q, pos in kept if pos]
        if not kept:
            return {"queries": 0, f"recall@{k}": None, "mrr": None}
        vectors = self.encoder.encode(
            [q for q, _ in kept], batch_size=32, convert_to_numpy=True, normalize_embeddings=True
        )
        scores = vectors @ self.embeddings.T
        ranks = np.argsort(-scores, axis=1)
        recalls, reciprocal = [], []
        for row, (_, relevant) in enumerate(kept):
            position = np.empty(len(self.item_ids), dtype=np.int64)
            position[ranks[row]] = np.arange(len(self.item_ids))
            found = position[relevant]
            recalls.append(float(np.mean(found < k)))
            reciprocal.append(1.0 / (1 + int(found.min())))
        return {
            "queries": len(kept),
            f"recall@{k}": round(float(np.mean(recalls)), 4),
            "mrr": round(float(np.mean(reciprocal)), 4),
        }


def _name_key(item: dict) -> tuple[str, str]:
    return (str(item.get("name") or "").casefold(), str(item.get("city") or "").casefold())

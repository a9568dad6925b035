"""A catalog's embeddings, computed once per (catalog content, encoder) and kept on disk.

```
<index home>/<fingerprint[:16]>/
  embeddings.npy   float32, one row per item, in `ids.json` order
  ids.json         item ids
  index.json       fingerprint, catalog sha256, encoder, count, dimension, similarity
  .chunks/         scratch while building: finished chunks survive an interruption
```
Search is exact (one matrix product in numpy), which suits catalogs of a city or a product line;
an approximate index (e.g. FAISS) only pays off for millions of items.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..console import progress_bar
from ..errors import MintError
from ..io import atomic_path, read_json, sha256_json, write_json_atomic
from .catalog import Catalog
from .encoders import Encoder

log = logging.getLogger(__name__)

CHUNK = 256
INDEX_VERSION = 1


@dataclass
class CatalogIndex:
    folder: Path
    ids: list[str]
    embeddings: np.ndarray
    info: dict[str, Any]

    @property
    def similarity(self) -> str:
        return self.info["similarity"]

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """For each query embedding, the top `k` (row, score) pairs, best first."""
        scores = similarity_scores(queries, self.embeddings, self.similarity)
        k = min(k, scores.shape[1])
        results = []
        for row in scores:
            top = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
            # Ties broken by descending item id, as trec_eval breaks them, so results do not depend
            # on the catalog's order: every item tied with the k-th is a candidate, not the ones
            # argpartition happened to keep.
            candidates = np.flatnonzero(row >= row[top].min())
            order = sorted(candidates, key=lambda i: (row[i], self.ids[i]), reverse=True)[:k]
            results.append([(int(i), float(row[i])) for i in order])
        return results


def similarity_scores(queries: np.ndarray, items: np.ndarray, similarity: str) -> np.ndarray:
    if similarity == "cosine":
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        items = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
    elif similarity != "dot":
        raise MintError(f"similarity `{similarity}` is not supported by recommend (cosine or dot)")
    return queries @ items.T


def index_fingerprint(catalog: Catalog, encoder: Encoder) -> str:
    return sha256_json({"catalog": catalog.sha256, "encoder": encoder.fingerprint, "version": INDEX_VERSION})


def build_or_load_index(
    catalog: Catalog, encoder: Encoder, home: Path | None = None, *, rebuild: bool = False
) -> CatalogIndex:
    """The catalog's index for this encoder: loaded when one with the same fingerprint exists,
    otherwise built in chunks (an interrupted build resumes from its finished chunks)."""
    fingerprint = index_fingerprint(catalog, encoder)
    folder = Path(home or catalog.index_home) / fingerprint[:16]
    if rebuild and folder.exists():
        shutil.rmtree(folder)
    if (folder / "index.json").is_file():
        try:
            return _load(catalog, folder, fingerprint)
        except (MintError, OSError, ValueError) as error:  # derived data: rebuild it, as --rebuild-index would
            log.warning("%s: cannot use this catalog index (%s); rebuilding it", folder, error)
            shutil.rmtree(folder)
    return _build(catalog, encoder, folder, fingerprint)


def _load(catalog: Catalog, folder: Path, fingerprint: str) -> CatalogIndex:
    info = read_json(folder / "index.json")
    if not isinstance(info, dict) or info.get("fingerprint") != fingerprint or "similarity" not in info:
        raise MintError("index.json is not this index's")
    ids = read_json(folder / "ids.json")
    if ids != catalog.ids:
        raise MintError("ids.json does not list the catalog's items")
    try:
        embeddings = np.load(folder / "embeddings.npy", allow_pickle=False)
    except ValueError as error:  # a cut or overwritten file
        raise MintError(f"embeddings.npy: {error}") from None
    if embeddings.ndim != 2 or embeddings.shape[0] != len(catalog):
        raise MintError(f"embeddings.npy has shape {embeddings.shape} for {len(catalog)} items")
    return CatalogIndex(folder, ids, embeddings, info)


def _build(catalog: Catalog, encoder: Encoder, folder: Path, fingerprint: str) -> CatalogIndex:
    chunks = folder / ".chunks"
    chunks.mkdir(parents=True, exist_ok=True)
    starts = range(0, len(catalog), CHUNK)
    done = [start for start in starts if (chunks / f"{start:09d}.npy").is_file()]
    with progress_bar(
        f"indexing {catalog.name}", len(catalog), unit="item", completed=min(len(done) * CHUNK, len(catalog))
    ) as bar:
        for start in starts:
            path = chunks / f"{start:09d}.npy"
            if path.is_file():
                continue
            texts = catalog.texts[start : start + CHUNK]
            with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.save(handle, np.asarray(encoder.encode(texts), dtype=np.float32), allow_pickle=False)
            bar.advance(len(texts))
    embeddings = np.concatenate([np.load(chunks / f"{start:09d}.npy", allow_pickle=False) for start in starts])
    if embeddings.shape[0] != len(catalog):
        raise MintError(f"{folder}: {embeddings.shape[0]} embeddings for {len(catalog)} items; rebuild the index")
    with atomic_path(folder / "embeddings.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, embeddings, allow_pickle=False)
    write_json_atomic(folder / "ids.json", catalog.ids)
    info = {
        "fingerprint": fingerprint,
        "catalog": catalog.name,
        "catalog_sha256": catalog.sha256,
        "encoder": encoder.description,
        "encoder_fingerprint": encoder.fingerprint,
        "count": len(catalog),
        "dimension": int(embeddings.shape[1]),
        "similarity": encoder.similarity,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(folder / "index.json", info)
    shutil.rmtree(chunks, ignore_errors=True)
    return CatalogIndex(folder, list(catalog.ids), embeddings, info)

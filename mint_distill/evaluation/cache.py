"""Caches that let a re-evaluation skip work already done with unchanged models.

Both caches are keyed by the model's identity (a digest of its files and settings) and by the
sha256 of each text, so evaluating a newly trained model encodes only with that model, and an
unchanged baseline is read back instead of recomputed. Writes are incremental: an interrupted
evaluation keeps every chunk it finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..console import progress_bar
from ..io import JsonlAppender, atomic_path, read_jsonl, sha256_file, sha256_json, sha256_tree
from ..models.cache import FILES_RECORD, home


def evaluation_cache_dir(configured: str | None) -> Path:
    """`configured` (`evaluation.cache_dir`), else $MINT_DISTILL_HOME/evaluation-cache (shared by
    every run and recipe on this machine)."""
    return Path(configured).expanduser() if configured else home() / "evaluation-cache"


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def folder_fingerprint(folder: str | os.PathLike, embedded: bool = False) -> str:
    """A digest of a model folder's files (for an `embedded` model, of its pull record, which
    names every file's sha256)."""
    folder = Path(folder)
    return sha256_file(folder / FILES_RECORD) if embedded else sha256_tree(folder)


def cache_key(**identity: object) -> str:
    """A short folder name for a model identity (any JSON-serialisable description)."""
    return sha256_json(identity)[:32]


class EncodingCache:
    """Vectors of texts under one encoder and role, stored as safetensors shards in `folder`.

    `folder=None` keeps nothing between calls. `encoded` counts texts this instance had to
    encode (cache misses).
    """

    def __init__(self, folder: str | os.PathLike | None):
        self.folder = Path(folder) if folder is not None else None
        self.encoded = 0
        self._rows: dict[str, np.ndarray] = {}
        if self.folder is not None and self.folder.is_dir():
            self._load()

    def _load(self) -> None:
        from safetensors import safe_open

        for shard in sorted(self.folder.glob("*.safetensors")):
            with safe_open(str(shard), framework="numpy") as handle:
                keys = json.loads(handle.metadata()["keys"])
                vectors = handle.get_tensor("vectors")
            self._rows.update(zip(keys, vectors))

    def encode(
        self,
        texts: Sequence[str],
        encode: Callable[[list[str]], np.ndarray],
        chunk_size: int = 256,
        description: str = "encoding",
    ) -> np.ndarray:
        """Vectors for `texts` in order, calling `encode` only on texts not cached yet."""
        keys = [text_key(text) for text in texts]
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts):
            if key not in self._rows:
                missing.setdefault(key, text)
        if missing:
            pending = list(missing.items())
            with progress_bar(description, total=len(pending), unit="texts") as bar:
                for start in range(0, len(pending), chunk_size):
                    chunk = pending[start:start + chunk_size]
                    vectors = np.asarray(encode([text for _, text in chunk]), dtype=np.float32)
                    self._store([key for key, _ in chunk], vectors)
                    self.encoded += len(chunk)
                    bar.advance(len(chunk))
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._rows[key] for key in keys])

    def _store(self, keys: list[str], vectors: np.ndarray) -> None:
        self._rows.update(zip(keys, vectors))
        if self.folder is None:
            return
        from safetensors.numpy import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / f"{uuid.uuid4().hex}.safetensors") as tmp:
            save_file({"vectors": np.ascontiguousarray(vectors)}, str(tmp), metadata={"keys": json.dumps(keys)})


class PairScoreCache:
    """Scores of (request, item) pairs under one scorer, appended to `path` (JSON lines).

    `path=None` keeps nothing between calls. `scored` counts pairs this instance had to score.
    """

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self.scored = 0
        self._scores: dict[tuple[str, str], float] = {}
        if self.path is not None and self.path.is_file():
            for record in read_jsonl(self.path):
                self._scores[(record["request"], record["item"])] = record["score"]

    def score(
        self,
        requests: Sequence[str],
        items: Sequence[str],
        score: Callable[[list[str], list[str]], Sequence[float]],
        chunk_size: int = 64,
        description: str = "scoring",
    ) -> list[float]:
        """Scores of the pairs (requests[i], items[i]), calling `score(items, requests)` on misses."""
        keys = [(text_key(request), text_key(item)) for request, item in zip(requests, items, strict=True)]
        missing: dict[tuple[str, str], tuple[str, str]] = {}
        for key, request, item in zip(keys, requests, items):
            if key not in self._scores:
                missing.setdefault(key, (request, item))
        if missing:
            pending = list(missing.items())
            appender = JsonlAppender(self.path) if self.path is not None else None
            try:
                with progress_bar(description, total=len(pending), unit="pairs") as bar:
                    for start in range(0, len(pending), chunk_size):
                        chunk = pending[start:start + chunk_size]
                        values = score([item for _, (_, item) in chunk], [request for _, (request, _) in chunk])
                        records = []
                        for (key, _), value in zip(chunk, values, strict=True):
                            self._scores[key] = float(value)
                            records.append({"request": key[0], "item": key[1], "score": float(value)})
                        if appender is not None:
                            appender.write_batch(records)
                        self.scored += len(chunk)
                        bar.advance(len(chunk))
            finally:
                if appender is not None:
                    appender.close()
        return [self._scores[key] for key in keys]

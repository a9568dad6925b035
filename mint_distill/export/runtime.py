"""Encode texts with an exported ONNX encoder: tokenizers + onnxruntime + numpy, no torch.

An export folder holds `onnx_encoder.json` (written by `mint_distill.export.export_encoder`)
naming the ONNX files, the tokenizer, the pooling and whether embeddings are normalised. This
module must not import torch (directly or through transformers / sentence-transformers): it
is what `mint-distill recommend` runs on a CPU-only server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import MintError
from ..io import read_json

RUNTIME_CONFIG = "onnx_encoder.json"
RUNTIME_FORMAT = "mint-distill/onnx-encoder"
POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len_tokens", "lasttoken")

Precision = Literal["fp32", "int8"]


def is_onnx_export(folder: str | os.PathLike) -> bool:
    return (Path(folder) / RUNTIME_CONFIG).is_file()


def read_runtime_config(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / RUNTIME_CONFIG
    if not path.is_file():
        raise MintError(
            f"{folder}: not an ONNX export of mint-distill (no {RUNTIME_CONFIG}); create one with `mint-distill export`"
        )
    config = read_json(path)
    if config.get("format") != RUNTIME_FORMAT:
        raise MintError(f"{path}: `format` must be `{RUNTIME_FORMAT}`")
    if config.get("pooling") not in POOLING_MODES:
        raise MintError(f"{path}: pooling `{config.get('pooling')}` is not one of {', '.join(POOLING_MODES)}")
    return config


class OnnxEncoder:
    """Sentence embeddings from an export folder, equal (up to float rounding) to the
    sentence-transformers model it was exported from.

    `precision="int8"` uses the dynamically quantized model when the export has one.
    `threads` bounds onnxruntime's intra-op threads (default: onnxruntime's choice).
    """

    def __init__(self, folder: str | os.PathLike, precision: Precision = "int8", threads: int | None = None):
        import onnxruntime
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.config = read_runtime_config(self.folder)
        models = self.config["models"]
        if precision not in models:
            available = ", ".join(models)
            raise MintError(f"{self.folder}: no {precision} model in this export (it has: {available})")
        self.precision = precision
        self.model_path = self.folder / models[precision]
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.tokenizer = Tokenizer.from_file(str(self.folder / self.config["tokenizer"]))
        self.tokenizer.enable_truncation(max_length=int(self.config["max_seq_length"]))
        self.tokenizer.enable_padding(pad_id=int(self.config["pad_id"]), pad_token=self.config["pad_token"])

    @property
    def dimension(self) -> int:
        return int(self.config["dimension"])

    @property
    def similarity(self) -> str:
        return self.config.get("similarity", "cosine")

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """float32 embeddings, one row per text, in input order."""
        rows = []
        # Batches of similar lengths waste less compute on padding; the order is restored below.
        order = np.argsort([-len(text) for text in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            rows.append(self._encode_batch([texts[i] for i in order[start : start + batch_size]]))
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        embeddings = np.empty((len(texts), self.dimension), dtype=np.float32)
        embeddings[order] = np.concatenate(rows)
        return embeddings

    def features(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The tokenized batch (padded to its longest text) as the graph's inputs are named."""
        encodings = self.tokenizer.encode_batch(texts)
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        features = self.features(texts)
        (hidden,) = self.session.run([self.config["output"]], {name: features[name] for name in self.input_names})
        pooled = pool(hidden, features["attention_mask"], self.config["pooling"])
        if self.config.get("normalize"):
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """sentence-transformers' Pooling modes over token embeddings (batch, tokens, dim)."""
    mask = mask.astype(hidden.dtype)[:, :, None]
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return np.where(mask > 0, hidden, -1e9).max(axis=1)
    if mode == "lasttoken":
        last = mask[:, :, 0].sum(axis=1).astype(int) - 1
        return hidden[np.arange(hidden.shape[0]), np.maximum(last, 0)]
    summed = (hidden * mask).sum(axis=1)
    counts = np.maximum(mask.sum(axis=1), 1e-9)
    return summed / (np.sqrt(counts) if mode == "mean_sqrt_len_tokens" else counts)

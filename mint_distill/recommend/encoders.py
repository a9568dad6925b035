"""The encoders `recommend` can use, behind one small interface with a content fingerprint.

- an ONNX export folder (`onnx_encoder.json`): tokenizers + onnxruntime, torch is never imported;
- an adapter bundle (a folder, or a domain installed under `adapters/`): PyTorch, LoRA merged;
- a LoRA adapter folder (e.g. runs/NAME/average-biencoder/model): PyTorch, on its base;
- any other model reference (`embedded:NAME`, a sentence-transformers folder, a hub id).

The fingerprint identifies everything that decides the embeddings (weights, tokenizer, pooling,
maximum length), so a catalog index is reused only by the encoder that built it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import MintError, ModelUnavailableError
from ..io import sha256_file

# Files above this size are weights, identified by `weights_sha256` instead of being re-hashed.
_SMALL_FILE = 5_000_000


class Encoder(Protocol):
    description: str
    fingerprint: str
    similarity: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class OnnxTextEncoder:
    """An exported ONNX encoder (no torch)."""

    folder: Path
    precision: str
    batch_size: int = 32
    threads: int | None = None

    def __post_init__(self) -> None:
        from ..export.runtime import OnnxEncoder

        self._encoder = OnnxEncoder(self.folder, self.precision, threads=self.threads)
        self.description = f"ONNX {self._encoder.precision} {self.folder}"
        self.similarity = self._encoder.similarity
        config = self._encoder.config
        identity = {key: config.get(key) for key in ("max_seq_length", "pooling", "normalize", "pad_id")}
        self.fingerprint = _digest(
            "onnx",
            sha256_file(self._encoder.model_path),
            sha256_file(self.folder / config["tokenizer"]),
            repr(sorted(identity.items())),
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._encoder.encode(texts, batch_size=self.batch_size)


@dataclass
class TorchTextEncoder:
    """A sentence-transformers model (bundle, adapter folder or model reference)."""

    model: Any
    description: str
    fingerprint: str
    batch_size: int = 32

    @property
    def similarity(self) -> str:
        return getattr(self.model, "similarity_fn_name", None) or "cosine"

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)


def open_encoder(
    spec: str,
    *,
    precision: str = "int8",
    base: str | None = None,
    bundle_paths: list[str | os.PathLike] = (),
    batch_size: int = 32,
    threads: int | None = None,
) -> Encoder:
    """The encoder named by `spec` (see the module docstring for what it may be)."""
    from ..export.runtime import is_onnx_export

    folder = Path(spec).expanduser()
    if is_onnx_export(folder):
        available = _onnx_precisions(folder)
        chosen = precision if precision in available else available[0]
        return OnnxTextEncoder(folder, chosen, batch_size=batch_size, threads=threads)
    return _torch_encoder(spec, base=base, bundle_paths=bundle_paths, batch_size=batch_size)


def _onnx_precisions(folder: Path) -> list[str]:
    from ..export.runtime import read_runtime_config

    return list(read_runtime_config(folder)["models"])


def _torch_encoder(spec: str, *, base: str | None, bundle_paths, batch_size: int) -> TorchTextEncoder:
    from ..adapters.bundle import ADAPTER_CONFIG, MANIFEST, BundleError
    from ..adapters.installed import find_bundle
    from ..adapters.loading import load_adapted_model, load_bundle
    from ..models import resolve_model
    from ..models.loading import load_sentence_transformer

    folder = Path(spec).expanduser()
    bundle = None
    if (folder / MANIFEST).is_file() or not folder.exists():
        try:
            bundle = find_bundle(spec, bundle_paths)
        except BundleError:
            if (folder / MANIFEST).is_file():
                raise
    if bundle is not None:
        manifest_digest = sha256_file(bundle.path / MANIFEST)
        model = load_bundle(bundle.path, base=base, merge=True)
        return TorchTextEncoder(
            model, f"bundle {bundle.domain} ({bundle.path})", _digest("bundle", manifest_digest), batch_size
        )
    if (folder / ADAPTER_CONFIG).is_file():
        resolved = resolve_model(base) if base else None
        model = load_adapted_model(folder, resolved, merge=True)
        base_digest = (resolved or resolve_model(_adapter_base(folder))).weights_sha256()
        return TorchTextEncoder(
            model,
            f"LoRA adapter {folder}",
            _digest("adapter", base_digest, _folder_digest(folder, size_limit=None)),
            batch_size,
        )
    refuse_other_kind(spec, "sentence-transformer", "-e/--encoder")
    resolved = resolve_model(spec)
    model = load_sentence_transformer(resolved)
    parts = [resolved.weights_sha256()] + ([_folder_digest(resolved.path)] if resolved.path else [resolved.reference])
    return TorchTextEncoder(model, f"{spec} ({resolved.source})", _digest("model", *parts), batch_size)


def refuse_other_kind(spec: str, needed: str, option: str) -> None:
    """Refuse a model that is recognisably not a `needed` one (`sentence-transformer` or
    `cross-encoder`): an embedded model of another kind, or a folder whose config says so.
    sentence-transformers would load it anyway, adding a randomly initialised head or pooling."""
    from ..models.embedded import embedded_of_kind, embedded_of_other_kind

    embedded = embedded_of_other_kind(spec, needed)
    if embedded:
        wanted = " or ".join(embedded_of_kind(needed))
        hint = f"e.g. {wanted}" if wanted else f"no embedded model is one: give a folder or bundle with a {needed}"
        raise ModelUnavailableError(f"{option}: `{spec}` is a {embedded.kind}; it needs a {needed} ({hint})")
    folder = Path(spec).expanduser()
    found = _folder_kind(folder) if folder.is_dir() else None
    if found and found != needed:
        raise ModelUnavailableError(f"{option}: `{spec}` is a {found}, as its config files say; it needs a {needed}")


def _folder_kind(folder: Path) -> str | None:
    """What a model folder's configs say it is: `cross-encoder` (a sequence classification head),
    `sentence-transformer` (modules.json, or a bare transformer, which sentence-transformers
    mean-pools), `causal-lm` (an LM head and no modules.json), or None when they do not say."""
    from ..io import read_json

    config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    architectures = (config.get("architectures") if isinstance(config, dict) else None) or []
    settings = folder / "config_sentence_transformers.json"
    if any(name.endswith("ForSequenceClassification") for name in architectures) or (
        settings.is_file() and read_json(settings).get("model_type") == "CrossEncoder"
    ):
        return "cross-encoder"
    if (folder / "modules.json").is_file():
        return "sentence-transformer"
    if any(name.endswith("ForCausalLM") for name in architectures):
        return "causal-lm"
    return "sentence-transformer" if architectures else None


def _adapter_base(folder: Path) -> str:
    from ..io import read_json

    base = read_json(folder / "adapter_config.json").get("base_model_name_or_path")
    if not base:
        raise MintError(f"{folder}/adapter_config.json names no base model; pass --base")
    return base


def _folder_digest(folder: Path, size_limit: int | None = _SMALL_FILE) -> str:
    """sha256 over the files of a model folder up to `size_limit` bytes (configs, tokenizer,
    pooling; the weights are identified by `weights_sha256`). README.md and hidden files are skipped."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if size_limit is not None and path.stat().st_size > size_limit:
            continue
        relative = path.relative_to(folder).as_posix()
        if relative.startswith(".") or relative == "README.md":
            continue
        digest.update(f"{relative}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()

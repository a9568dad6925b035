"""Load the encoders evaluation compares, each with a fingerprint that identifies its weights.

A reference is an `embedded:` model, a hub id, a SentenceTransformer / CrossEncoder folder, or
a LoRA adapter folder (a bi-encoder's or a cross-encoder's) trained on top of a base named by the
adapter's `base_model_name_or_path`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..errors import ModelUnavailableError
from ..io import read_json
from ..models import resolve_model
from ..models.resolver import ResolvedModel
from .cache import folder_fingerprint

ADAPTER_CONFIG = "adapter_config.json"


def fingerprint(model: ResolvedModel) -> str:
    """A digest identifying a resolved model's files (hub models: their weight files)."""
    if model.source == "hub":
        return hashlib.sha256(f"{model.reference}\0{model.weights_sha256()}".encode()).hexdigest()
    return folder_fingerprint(model.location, embedded=model.source == "embedded")


def load_biencoder(reference: str, device: str | None = None) -> tuple[Any, str]:
    """(SentenceTransformer, fingerprint) for a model reference or a LoRA adapter folder.

    Adapter folders come in two layouts: a SentenceTransformer folder whose encoder is a PEFT
    adapter (what sentence-transformers saves for a LoRA-wrapped model), or a bare PEFT adapter
    folder. Either way the adapter is applied to the base named in `adapter_config.json`, which
    must have the weights a student records it was trained on, and the fingerprint covers the
    adapter and its base.
    """
    from ..models.loading import load_sentence_transformer

    folder = Path(reference).expanduser()
    if (folder / ADAPTER_CONFIG).is_file():
        return _load_adapter(folder, device)
    resolved = resolve_model(reference)
    return load_sentence_transformer(resolved, device=device), fingerprint(resolved)


def _load_adapter(folder: Path, device: str | None, kind: str = "sentence-transformer") -> tuple[Any, str]:
    from ..adapters.loading import load_adapted_model

    base = read_json(folder / ADAPTER_CONFIG).get("base_model_name_or_path")
    if not base:
        raise ModelUnavailableError(f"{folder / ADAPTER_CONFIG}: `base_model_name_or_path` is not set")
    resolved = resolve_model(base)
    model = load_adapted_model(folder, resolved, kind=kind, device=device)
    digest = hashlib.sha256(f"{fingerprint(resolved)}\0{folder_fingerprint(folder)}".encode()).hexdigest()
    return model, digest


def load_cross_encoder(reference: str, device: str | None = None) -> tuple[Any, str]:
    """(CrossEncoder, fingerprint) for a CrossEncoder folder, `embedded:` model or hub id, or a
    LoRA-tuned CrossEncoder folder (a student trained with `finetune: lora`), loaded on its base
    as `load_biencoder` loads a bi-encoder's adapter: refused on a base without its recorded weights."""
    from sentence_transformers import CrossEncoder

    folder = Path(reference).expanduser()
    if (folder / ADAPTER_CONFIG).is_file():
        return _load_adapter(folder, device, kind="cross-encoder")
    resolved = resolve_model(reference)
    model = CrossEncoder(resolved.location, device=device)
    return model, fingerprint(resolved)

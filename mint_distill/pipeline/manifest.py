"""Stage manifests: what a finished stage was computed from, so the runner can tell if it is fresh."""

from __future__ import annotations

import copy
import importlib.metadata
import logging
import platform
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..io import read_json, sha256_file, sha256_json, write_json_atomic

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
IN_PROGRESS = ".in_progress.json"
# The run folder's caches that outlive a stage folder (scores, item vectors), shared by its stages.
RUN_CACHE = ".cache"

_TRACKED_PACKAGES = (
    "mint-distill", "torch", "transformers", "sentence-transformers", "peft", "accelerate",
    "bitsandbytes", "datasets", "evaluate",
)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in _TRACKED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def select_config(
    recipe_dump: dict, keys: tuple[str, ...], excluded: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The recipe values under each dotted key (a missing key maps to None), less the `excluded`
    dotted keys found inside them."""
    selected: dict[str, Any] = {}
    for key in keys:
        node: Any = recipe_dump
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        selected[key] = copy.deepcopy(node)
    for key in excluded:
        owner = next((k for k in keys if key.startswith(f"{k}.")), None)
        if owner is None:
            raise ValueError(f"excluded key `{key}` is not inside any of the keys {keys}")
        *parents, leaf = key[len(owner) + 1 :].split(".")
        node = selected[owner]
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return selected


class FileHashCache:
    """sha256 of input files, remembered by (path, size, mtime) so large sources hash once."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._entries: dict[str, dict] = read_json(path) if path.exists() else {}
        except DataError:  # a damaged cache (a disk filled mid-write) is only hashed again
            self._entries = {}

    def sha256(self, file: Path) -> str:
        stat = file.stat()
        key = str(file.resolve())
        entry = self._entries.get(key)
        if entry and entry["size"] == stat.st_size and entry["mtime_ns"] == stat.st_mtime_ns:
            return entry["sha256"]
        digest = sha256_file(file)
        self._entries[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
        write_json_atomic(self.path, self._entries)
        return digest


def fingerprint(config: dict, version: int, upstream: dict[str, str], files: dict[str, str]) -> dict:
    """What decides whether a stage's outputs are still valid."""
    return {
        "config_hash": sha256_json({"config": config, "stage_version": version}),
        "upstream": upstream,
        "input_files": files,
    }


def read_manifest(stage_dir: Path) -> dict | None:
    """The stage's manifest, or None when it has none (it has not finished)."""
    return read_record(stage_dir / MANIFEST)


def read_record(path: Path) -> dict | None:
    """A JSON object the runner wrote (a manifest, an in-progress fingerprint), or None when
    there is none. One that cannot be read or is not an object, as a full disk or a hand edit
    leaves it, counts as none, with a warning: the stage then runs again and rewrites it."""
    if not path.exists():
        return None
    try:
        record = read_json(path)
    except (DataError, OSError, UnicodeDecodeError) as error:
        problem = str(error)
    else:
        if isinstance(record, dict):
            return record
        problem = f"{path}: not a JSON object"
    if path not in _warned:
        _warned.add(path)
        log.warning("ignoring %s (%s); the stage counts as not finished and runs again", path, problem)
    return None


_warned: set[Path] = set()


def matches(record: dict | None, expected: dict) -> bool:
    return record is not None and all(record.get(key) == value for key, value in expected.items())

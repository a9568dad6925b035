"""Finding bundles: the `adapters/` folder, $MINT_DISTILL_ADAPTERS and extra paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bundle import MANIFEST, BundleError, read_manifest

DEFAULT_ROOT = Path("adapters")
ENVIRONMENT_VARIABLE = "MINT_DISTILL_ADAPTERS"


@dataclass(frozen=True)
class BundleInfo:
    path: Path
    manifest: dict[str, Any]

    @property
    def domain(self) -> str:
        return self.manifest["domain"]

    @property
    def components(self) -> list[str]:
        return list(self.manifest.get("components", {}))

    @property
    def base_model(self) -> str:
        return self.manifest["components"]["biencoder"]["base_model"]["reference"]

    @property
    def size_bytes(self) -> int:
        return sum(record["size"] for record in self.manifest.get("files", {}).values())


def search_roots(extra: list[str | os.PathLike] = ()) -> list[Path]:
    """`./adapters`, then the folders in $MINT_DISTILL_ADAPTERS (os.pathsep-separated), then `extra`."""
    configured = [Path(p) for p in os.environ.get(ENVIRONMENT_VARIABLE, "").split(os.pathsep) if p]
    roots: list[Path] = []
    for root in [DEFAULT_ROOT, *configured, *(Path(p) for p in extra)]:
        if root not in roots:
            roots.append(root)
    return roots


def discover_bundles(extra: list[str | os.PathLike] = ()) -> tuple[list[BundleInfo], list[str]]:
    """Bundles found in the search roots (a root may itself be a bundle), and unreadable ones."""
    found: list[BundleInfo] = []
    problems: list[str] = []
    for root in search_roots(extra):
        candidates = [root] if (root / MANIFEST).is_file() else sorted(p.parent for p in root.glob(f"*/{MANIFEST}"))
        for folder in candidates:
            try:
                found.append(BundleInfo(folder, read_manifest(folder)))
            except BundleError as error:
                problems.append(str(error))
    return found, problems


def find_bundle(name_or_path: str | os.PathLike, extra: list[str | os.PathLike] = ()) -> BundleInfo:
    """A bundle by folder path, or among the installed ones by the name it was installed under
    (its folder: `adapters import --name`), else by its domain.

    Two installed bundles of one domain (e.g. `poi` and `poi-v2`) are told apart by name only.
    """
    path = Path(name_or_path)
    if (path / MANIFEST).is_file():
        return BundleInfo(path, read_manifest(path))
    bundles, _ = discover_bundles(extra)
    named = [bundle for bundle in bundles if bundle.path.name == str(name_or_path)]
    if named:
        return named[0]  # the first search root that has it, as on a PATH
    matches = [bundle for bundle in bundles if bundle.domain == str(name_or_path)]
    if len(matches) > 1:
        raise BundleError(
            f"adapter bundles {', '.join(str(b.path) for b in matches)} all have the domain `{name_or_path}`; "
            "name one by its folder"
        )
    if not matches:
        known = ", ".join(sorted({b.path.name for b in bundles} | {b.domain for b in bundles})) or "none"
        roots = ", ".join(str(r) for r in search_roots(extra))
        raise BundleError(
            f"no adapter bundle `{name_or_path}`: not a bundle folder, nor the name or domain of one installed in {roots} "
            f"(installed: {known})"
        )
    return matches[0]

"""Install a bundle shipped as a .tar.gz or .zip archive, never writing outside the target folder."""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

from ..archives import safe_extract
from ..errors import IntegrityError, MintError
from ..io import staging_folder
from .bundle import MANIFEST, BundleError, check_bundle, check_domain


def import_bundle(
    archive: str | os.PathLike, target_root: str | os.PathLike, *, name: str | None = None, overwrite: bool = False
) -> Path:
    """Extract a bundle archive into `target_root/<name or its domain>` and return that folder.

    Members that are links or devices, or whose paths would land outside the target (`..`,
    absolute paths), are refused before anything is written. The extracted bundle must pass
    verification (every file matches its manifest sha256) before it is moved into place.
    The archive may hold the bundle at its top level or inside one top-level folder.
    """
    archive, target_root = Path(archive), Path(target_root)
    if not archive.is_file():
        raise BundleError(f"archive not found: {archive}")
    if name is not None:
        check_domain(name, "--name")
    target_root.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(target_root / f"import-{archive.name}")
    try:
        _refuse_zip_links(archive)
        try:
            safe_extract(archive, staging)
        except (tarfile.TarError, OSError, EOFError) as error:
            raise BundleError(f"{archive}: cannot be read as a .tar.gz or .zip archive: {error}") from None
        root = _bundle_root(staging, archive)
        try:
            manifest = check_bundle(root)
        except MintError as error:  # name the archive, not the folder it was extracted to
            raise type(error)(str(error).replace(str(root), str(archive))) from None
        destination = target_root / (name or manifest["domain"])
        if destination.exists():
            if not overwrite:
                raise BundleError(f"{destination} already exists; remove it or pass --overwrite")
            shutil.rmtree(destination)
        os.replace(root, destination)
        return destination
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _refuse_zip_links(archive: Path) -> None:
    """Zip members flagged as symbolic links would be written as plain files; refuse them outright."""
    if not zipfile.is_zipfile(archive):
        return
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.infolist():
            if stat.S_ISLNK(member.external_attr >> 16):
                raise IntegrityError(f"{archive}: member `{member.filename}` is a symbolic link; refusing")


def _bundle_root(extracted: Path, archive: Path) -> Path:
    if (extracted / MANIFEST).is_file():
        return extracted
    entries = [entry for entry in extracted.iterdir() if not entry.name.startswith(".")]
    if len(entries) == 1 and (entries[0] / MANIFEST).is_file():
        return entries[0]
    raise IntegrityError(f"{archive}: no {MANIFEST} at the top level or in a single top-level folder; not a bundle")

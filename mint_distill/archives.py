"""Archive extraction that never writes outside its target folder."""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from .errors import IntegrityError


def _checked_target(target: Path, member_name: str, archive: Path) -> Path:
    destination = (target / member_name).resolve()
    if destination != target and target not in destination.parents:
        raise IntegrityError(f"{archive}: member `{member_name}` would be written outside {target}; refusing")
    return destination


def safe_extract(
    archive: str | Path,
    target: str | Path,
    include: Callable[[str], bool] = lambda name: True,
) -> list[Path]:
    """Extract a .zip, .whl, .tar, .tar.gz or .tgz into `target`; links and escaping paths are refused."""
    archive, target = Path(archive), Path(target).resolve()
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            members = [m for m in bundle.infolist() if not m.is_dir() and include(m.filename)]
            for member in members:
                _checked_target(target, member.filename, archive)
            for member in members:
                destination = _checked_target(target, member.filename, archive)
                destination.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as source, open(destination, "wb") as sink:
                    while chunk := source.read(1 << 20):
                        sink.write(chunk)
                written.append(destination)
        return written
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as bundle:
            members = [m for m in bundle.getmembers() if include(m.name)]
            for member in members:
                if member.issym() or member.islnk() or member.isdev():
                    raise IntegrityError(f"{archive}: member `{member.name}` is a link or device; refusing")
                _checked_target(target, member.name, archive)
            for member in members:
                if member.isfile():
                    destination = _checked_target(target, member.name, archive)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    with bundle.extractfile(member) as source, open(destination, "wb") as sink:
                        while chunk := source.read(1 << 20):
                            sink.write(chunk)
                    written.append(destination)
        return written
    raise IntegrityError(f"{archive}: not a zip or tar archive")

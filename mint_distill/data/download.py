"""Fetch public datasets into the data folder, with pinned checksums; explain what is missing offline."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..archives import safe_extract
from ..console import progress_bar
from ..errors import DataError, IntegrityError
from ..io import sha256_file, write_json_atomic

log = logging.getLogger(__name__)
RECORD = "mint-download.json"
_TIMEOUT_S = 60
_PROBE_TIMEOUT_S = 10
DATA_DIR_KEY = "data.data_dir (or the MINT_DISTILL_DATA_DIR environment variable)"


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: its URL, where it goes in the dataset folder, and its sha256 if pinned."""

    url: str
    target: str
    sha256: str | None = None


@dataclass(frozen=True)
class RemoteArchive:
    """A zip or tar to fetch and unpack; only members under `root/` are kept, without that prefix."""

    url: str
    root: str
    pinned: dict[str, str] = field(default_factory=dict)  # relative path -> sha256


@dataclass(frozen=True)
class RemoteDataset:
    """A dataset the tool can fetch. It counts as present when every path of any `layouts` entry exists."""

    name: str
    origin: str
    layouts: tuple[tuple[str, ...], ...]
    files: tuple[RemoteFile, ...] = ()
    archive: RemoteArchive | None = None

    def present_in(self, folder: Path) -> bool:
        return any(all((folder / path).exists() for path in layout) for layout in self.layouts)

    def looked_for(self, folder: Path) -> str:
        return " or ".join(
            "{" + ", ".join(str(folder / p) for p in layout) + "}" for layout in self.layouts
        )


_YELP_COMMIT = "e71c1f3420ddc4c5349ebdace51b8d7baf8811b9"
_YELP_RAW = f"https://raw.githubusercontent.com/shenyy/Resturants/{_YELP_COMMIT}/data"
YELP_BOSTON_TIPS = RemoteDataset(
    name="yelp_boston_tips",
    origin=f"https://github.com/shenyy/Resturants (commit {_YELP_COMMIT}, folder data/)",
    layouts=(("yelp_academic_dataset_business.json", "yelp_academic_dataset_tip.json"),),
    files=(
        RemoteFile(
            f"{_YELP_RAW}/yelp_academic_dataset_business.json",
            "yelp_academic_dataset_business.json",
            "e59ea0f8fdc8b807fab1e4eab03d8606e39998fec8cef29558fc28f26a804fe4",
        ),
        RemoteFile(
            f"{_YELP_RAW}/yelp_academic_dataset_tip.json",
            "yelp_academic_dataset_tip.json",
            "0ac4dd844e55a1bd79a406c507012c680f58b59b88d35074afc5d4fb705b1108",
        ),
        RemoteFile(
            f"{_YELP_RAW}/yelp_academic_dataset_checkin.json",
            "yelp_academic_dataset_checkin.json",
            "363724dd90489a1193be41659fa23585926641d306f18924ecc160dcdbf01258",
        ),
    ),
)

_POINTREC_COMMIT = "67b9ea53d74172d3312a8ab83de321852009ebb8"
POINTREC = RemoteDataset(
    name="pointrec",
    origin=f"https://github.com/iai-group/sigir2021-pointrec (commit {_POINTREC_COMMIT})",
    layouts=(
        ("infoneeds.json", "relevance/qrels.trec", "poi_dataset"),  # the repository itself
        (
            "raw/infoneeds.json",
            "raw/relevance/qrels.trec",
            "poi/poi_catalog_available_compact.jsonl.gz",
        ),
    ),
    archive=RemoteArchive(
        url=f"https://github.com/iai-group/sigir2021-pointrec/archive/{_POINTREC_COMMIT}.zip",
        root=f"sigir2021-pointrec-{_POINTREC_COMMIT}",
        pinned={
            "infoneeds.json": "6f5dac39184b065e53cd0a17a14dd8b3f75543abef9152face698a5b0badeea7",
            "relevance/qrels.trec": "1842db1b062f7bcb3138797244d22966dc4d929a471332a174cae810499d2a84",
            "relevance/assessments.tsv": "e87425a0b459ea5b088910de7b140b3d63791860889fe24d7b7ea38c8184ac7f",
        },
    ),
)

KNOWN_DATASETS = {dataset.name: dataset for dataset in (YELP_BOSTON_TIPS, POINTREC)}


def ensure_dataset(
    dataset: RemoteDataset, folder: Path, *, download: bool, key: str, data_dir_key: str = DATA_DIR_KEY
) -> Path:
    """`folder` once it holds the dataset, fetching it first if it is missing and `download` is on.

    Raises DataError saying what is missing and where it looked when it cannot be had, and
    IntegrityError when a fetched file does not match its pinned checksum (nothing is kept then).
    """
    if dataset.present_in(folder):
        return folder
    problem = _cannot_download_into(folder, download, key)
    if problem is not None:
        raise DataError(_missing(dataset, folder, problem, data_dir_key))
    # Staged beside the nearest folder that exists, so that a failed download leaves no folder made for it.
    parent = next(path for path in folder.parents if path.exists())
    with tempfile.TemporaryDirectory(prefix=f".{folder.name}.download-", dir=parent) as scratch:
        staging = Path(scratch) / "dataset"
        staging.mkdir()
        try:
            _fetch(dataset, staging, Path(scratch))
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise DataError(
                _missing(dataset, folder, f", and downloading it failed ({error})", data_dir_key)
            ) from None
        if not dataset.present_in(staging):
            raise DataError(
                _missing(dataset, folder, f"; the download from {dataset.origin} did not contain it", data_dir_key)
            )
        _record(staging, dataset)
        folder.parent.mkdir(parents=True, exist_ok=True)
        _move_into(staging, folder)
    log.info("%s: downloaded into %s", dataset.name, folder)
    return folder


def fetch_problem(
    dataset: RemoteDataset, folder: Path, *, download: bool, key: str, data_dir_key: str = DATA_DIR_KEY
) -> str | None:
    """Why `ensure_dataset` could not have the dataset in `folder`, found without writing
    anything (the origin is asked for its first file's headers); None when it can."""
    if dataset.present_in(folder):
        return None
    problem = _cannot_download_into(folder, download, key) or _unreachable(dataset)
    return None if problem is None else _missing(dataset, folder, problem, data_dir_key)


def _missing(dataset: RemoteDataset, folder: Path, problem: str, data_dir_key: str) -> str:
    """What is missing, `problem` (why it cannot be had), and what to do."""
    return (
        f"{dataset.name} is not in {folder} (looked for {dataset.looked_for(folder)}){problem}. "
        f"Get it from {dataset.origin} into {folder}, or point {data_dir_key} at a folder that has it."
    )


def _cannot_download_into(folder: Path, download: bool, key: str) -> str | None:
    if not download:
        return f", and downloading is off (recipe key `{key}.download`)"
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir():
        return f", and it cannot be downloaded there: {existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f", and it cannot be downloaded there: {existing} is not writable"
    return None


def _unreachable(dataset: RemoteDataset) -> str | None:
    url = dataset.files[0].url if dataset.files else dataset.archive.url if dataset.archive else None
    if url is None:
        return None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=_PROBE_TIMEOUT_S):
            return None
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f", and it cannot be downloaded: {url} does not answer from here ({error})"


def _fetch(dataset: RemoteDataset, staging: Path, scratch: Path) -> None:
    for remote in dataset.files:
        target = staging / remote.target
        digest = _download(remote.url, target)
        if remote.sha256 is not None and digest != remote.sha256:
            raise IntegrityError(
                f"{remote.url}: sha256 {digest} differs from the pinned {remote.sha256}; nothing was kept"
            )
    if dataset.archive is not None:
        archive = dataset.archive
        bundle = scratch / Path(archive.url.split("?")[0]).name
        _download(archive.url, bundle)
        prefix = archive.root.rstrip("/") + "/"
        unpacked = scratch / "unpacked"
        safe_extract(bundle, unpacked, include=lambda name: name.startswith(prefix))
        bundle.unlink()
        root = unpacked / archive.root
        if not root.is_dir():
            raise DataError(f"{archive.url}: the archive has no folder {archive.root}/")
        for child in root.iterdir():
            shutil.move(str(child), staging / child.name)
        for relative, expected in archive.pinned.items():
            path = staging / relative
            if not path.is_file():
                raise IntegrityError(
                    f"{archive.url}: the archive lacks {relative}; nothing was kept"
                )
            actual = sha256_file(path)
            if actual != expected:
                raise IntegrityError(
                    f"{archive.url}: {relative} has sha256 {actual}, pinned {expected}; nothing was kept"
                )


def _download(url: str, target: Path) -> str:
    """Stream `url` into `target`; return its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, open(target, "wb") as sink:
        total = response.headers.get("Content-Length")
        with progress_bar(
            f"download {target.name}", int(total) if total else None, unit="B"
        ) as bar:
            while chunk := response.read(1 << 20):
                sink.write(chunk)
                digest.update(chunk)
                bar.advance(len(chunk))
    return digest.hexdigest()


def _record(staging: Path, dataset: RemoteDataset) -> None:
    files = {
        path.relative_to(staging).as_posix(): sha256_file(path)
        for path in sorted(staging.rglob("*"))
        if path.is_file()
    }
    write_json_atomic(
        staging / RECORD,
        {
            "dataset": dataset.name,
            "origin": dataset.origin,
            "downloaded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "sha256": files,
        },
    )


def _move_into(staging: Path, folder: Path) -> None:
    """Move the staged files into `folder` (created if needed), replacing files of the same name."""
    if not folder.exists():
        staging.rename(folder)
        return
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            destination = folder / path.relative_to(staging)
            destination.parent.mkdir(parents=True, exist_ok=True)
            path.replace(destination)

"""What every review source offers: its files, its item metadata and a stream of its reviews."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path

from ...errors import DataError
from ...recipe.sections.data import SourceSpec
from ..reading import ReadReport, file_size
from ..records import Item, Review

Progress = Callable[[int], None]


class ReviewSource(ABC):
    """A review dataset on disk. Subclasses read one layout; nothing is loaded until iterated.

    `iter_reviews` can be called several times (selection streams the file more than once);
    only the calls given a `report` count rows, bad rows and repairs.
    """

    format: str = ""

    def __init__(self, spec: SourceSpec, path: Path):
        self.spec = spec
        self.path = path
        self.notes: list[str] = []

    @property
    def name(self) -> str:
        return self.spec.name or self.path.name

    @property
    def has_item_metadata(self) -> bool:
        """False when items exist only through their reviews (then their text comes from reviews)."""
        return bool(self.item_files())

    @abstractmethod
    def item_files(self) -> list[Path]:
        """Files holding item metadata (may be empty)."""

    @abstractmethod
    def review_files(self) -> list[Path]:
        """Files holding reviews, read in this order."""

    def files(self) -> list[Path]:
        """Every input file; the data stage reruns when one of them changes."""
        return [*self.item_files(), *self.review_files()]

    @abstractmethod
    def iter_items(self, report: ReadReport) -> Iterator[Item]:
        """Items from the metadata files (none when `has_item_metadata` is False)."""

    @abstractmethod
    def _reviews_in(self, path: Path, report: ReadReport, position: list[int]) -> Iterator[Review]:
        """Reviews of one review file; `position[0]` follows the bytes consumed on disk."""

    def iter_reviews(
        self, report: ReadReport | None = None, progress: Progress | None = None
    ) -> Iterator[Review]:
        """Every review, in file order; `progress(bytes)` is called with bytes consumed so far."""
        report = report if report is not None else ReadReport()
        done = 0
        for path in self.review_files():
            position = [0]
            last = 0
            for review in self._reviews_in(path, report, position):
                if progress is not None and position[0] != last:
                    last = position[0]
                    progress(done + last)
                if self.spec.pseudonymize_users:
                    review = pseudonymized(review)
                yield review
            done += file_size(path)
            if progress is not None:
                progress(done)

    def review_bytes(self) -> int:
        return sum(file_size(path) for path in self.review_files())


def pseudonymized(review: Review) -> Review:
    """The review with its user key replaced by a stable hash (display names stay out of outputs)."""
    digest = hashlib.sha256(review.user_id.encode("utf-8")).hexdigest()[:16]
    return Review(
        f"u{digest}", review.item_id, review.text, review.rating, review.date, review.title
    )


def first_existing(folder: Path, candidates: tuple[str, ...], what: str, key: str) -> Path:
    """The first of `candidates` that exists in `folder`, or a DataError listing where it looked."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found (recipe keys `{key}` and `data.data_dir`)")
    for name in candidates:
        for path in (folder / name, folder / f"{name}.gz"):
            if path.is_file():
                return path
    raise DataError(
        f"{folder}: no {what} file (looked for {', '.join(candidates)}, also with .gz); check recipe key `{key}`"
    )


def optional_existing(folder: Path, candidates: tuple[str, ...]) -> Path | None:
    for name in candidates:
        for path in (folder / name, folder / f"{name}.gz"):
            if path.is_file():
                return path
    return None

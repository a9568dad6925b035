"""Review-history sources, one class per on-disk layout, all yielding the schema in `records`."""

from __future__ import annotations

from pathlib import Path

from ...recipe.sections.data import SourceSpec
from ..download import KNOWN_DATASETS, ensure_dataset
from ..paths import under
from .base import ReviewSource
from .table import Amazon2014Source, TableSource
from .yelp import YelpAcademicSource, YelpOpenSource

SOURCE_FORMATS: dict[str, type[ReviewSource]] = {
    "yelp_academic": YelpAcademicSource,
    "yelp_open": YelpOpenSource,
    "amazon_2014": Amazon2014Source,
    "table": TableSource,
}


def source_path(spec: SourceSpec, data_dir: Path, *, fetch: bool = True) -> Path:
    """The source's path; a missing known dataset is downloaded first when `fetch` and the recipe allow."""
    path = under(data_dir, spec.path)
    dataset = KNOWN_DATASETS.get(Path(spec.path).name)
    if dataset is not None and fetch and not path.exists():
        ensure_dataset(dataset, path, download=spec.download, key="data.source")
    return path


def open_source(spec: SourceSpec, data_dir: Path, *, fetch: bool = True) -> ReviewSource:
    """The source a recipe's `data.source` describes (nothing is read yet)."""
    path = source_path(spec, data_dir, fetch=fetch)
    cls = SOURCE_FORMATS[spec.format]
    if issubclass(cls, TableSource):
        items_path = under(data_dir, spec.items.path) if spec.items is not None else None
        return cls(spec, path, items_path)
    return cls(spec, path)


__all__ = ["SOURCE_FORMATS", "ReviewSource", "open_source", "source_path"]

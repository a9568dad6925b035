"""From a recipe's `data` section to the training data files and their statistics."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..io import atomic_path, write_json_atomic, write_jsonl_atomic
from ..recipe.sections.data import DataSection, ItemTextSpec
from .catalog import ItemCatalog, blocklist, is_blocked
from .paths import data_dir
from .pseudo_histories import CatalogHistories, build_catalog_histories, check_dev_requests
from .reading import ReadReport
from .records import Review
from .selection import ReviewScan, Selection, scan_reviews, select_users
from .sources import ReviewSource, open_source


@dataclass
class TrainingData:
    """Everything the data stage produces, in memory (`catalog_histories`: with `data.catalog.enabled`)."""

    source: ReviewSource
    catalog: ItemCatalog
    scan: ReviewScan
    selection: Selection
    stats: dict
    catalog_histories: CatalogHistories | None = None

    def user_records(self, item_spec: ItemTextSpec) -> Iterator[dict]:
        """The `users.jsonl` records: selected users (unless catalog-only), then catalog histories."""
        extra = self.catalog_histories
        if extra is None or extra.keep_user_histories:
            for user in self.selection.users:
                yield user.record(self.catalog, item_spec)
        if extra is not None:
            yield from extra.users

    def item_records(self, item_spec: ItemTextSpec, blocked: set[str]) -> Iterator[dict]:
        """The `items.jsonl` records: the training catalog, then items added by catalog histories."""
        yield from self.catalog.records(item_spec, blocked)
        if self.catalog_histories is not None:
            yield from self.catalog_histories.items


def load_catalog(source: ReviewSource, report: ReadReport) -> ItemCatalog:
    """The source's item metadata (empty when items are known only through their reviews)."""
    catalog = ItemCatalog()
    for item in source.iter_items(report):
        catalog.add(item)
    if source.has_item_metadata and not len(catalog):
        files = ", ".join(str(p) for p in source.item_files())
        raise DataError(f"no item could be read from {files}: {_why_nothing(report)}")
    return catalog


def prepare_training_data(
    section: DataSection,
    review_sink: Callable[[Review], None] | None = None,
    fetch: bool = True,
    cache_dir: Path | None = None,
) -> TrainingData:
    """Read the source, select users and collect everything `write_training_data` writes.

    `review_sink` receives every review of the selected users (the `reviews.jsonl` table);
    `cache_dir` keeps the item vectors of `data.catalog.similar_by` (None: not kept).
    """
    if section.catalog.dev_requests is not None:  # before any work: the ablation report ranks their items
        check_dev_requests(section, fetch)
    source = open_source(section.source, data_dir(section.data_dir), fetch=fetch)
    item_report, review_report = ReadReport(), ReadReport()
    catalog = load_catalog(source, item_report)
    scan = scan_reviews(source, catalog, section.item_text, section.selection, review_report)
    if not scan.reviews:
        files = ", ".join(str(p) for p in source.review_files())
        raise DataError(f"no review could be read from {files}: {_why_nothing(review_report)}")
    selection = select_users(source, scan, catalog, section.selection, review_sink)
    blocked = blocklist(section.selection.category_blocklist)
    stats = {
        "source": {
            "name": source.name,
            "format": source.format,
            "files": [str(p) for p in source.files()],
            "notes": list(source.notes),
            "item_metadata": item_report.as_dict() if source.has_item_metadata else None,
            "review_files": review_report.as_dict(),
            **scan.summary(),
        },
        "items": {
            "catalog": len(catalog),
            "duplicate_item_records": catalog.duplicates,
            "blocklisted": sum(1 for item in catalog.items.values() if is_blocked(item.categories, blocked)),
            "with_review_sentences": sum(1 for sentences in catalog.snippets.values() if sentences),
            "text_from": "metadata and review sentences"
            if source.has_item_metadata
            else "review sentences only (no item metadata)",
        },
        "selection": selection.stats,
    }
    stats["items"]["written"] = stats["items"]["catalog"] - stats["items"]["blocklisted"]
    extra = None
    if section.catalog.enabled:
        extra = build_catalog_histories(
            section, catalog, len(selection.users), fetch=fetch, cache_dir=cache_dir
        )
        stats["catalog"] = extra.stats
        stats["items"]["written"] += len(extra.items)
    return TrainingData(source, catalog, scan, selection, stats, extra)


def _why_nothing(report: ReadReport) -> str:
    parts = [f"{report.rows} rows read"]
    if report.bad_rows:
        parts.append(f"{report.bad_rows} malformed (first: {report.bad_row_examples[0]})")
    for name, count in report.missing_fields.most_common():
        parts.append(f"field `{name}` missing or empty in {count}")
    return "; ".join(parts)


def write_training_data(section: DataSection, out_dir: Path, cache_dir: Path | None = None) -> dict:
    """Write users.jsonl, items.jsonl, reviews.jsonl and stats.json into `out_dir`; return the stats."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "reviews.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as handle:

        def sink(review: Review) -> None:
            handle.write(json.dumps(review.as_record(), ensure_ascii=False) + "\n")

        data = prepare_training_data(section, review_sink=sink, cache_dir=cache_dir)
    write_jsonl_atomic(out_dir / "users.jsonl", data.user_records(section.item_text))
    blocked = blocklist(section.selection.category_blocklist)
    write_jsonl_atomic(out_dir / "items.jsonl", data.item_records(section.item_text, blocked))
    write_json_atomic(out_dir / "stats.json", data.stats)
    return data.stats

"""Generic CSV/JSONL review tables with a column mapping, and the Amazon 2014 layouts built on them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from ...errors import DataError
from ...recipe.sections.data import ColumnMapping, ItemTable, SourceSpec
from ..reading import ReadReport, iter_table, not_text, rating_value, split_categories, text_value
from ..records import Item, Review
from .base import ReviewSource


class TableSource(ReviewSource):
    """Reviews from one CSV or JSON lines file (`.gz` allowed), columns named by `data.source.columns`.

    An optional item table (`data.source.items`) is joined on the item key; without one, items
    are known only by their key and their text comes from their reviews.
    """

    format = "table"

    def __init__(self, spec: SourceSpec, path: Path, items_path: Path | None = None):
        super().__init__(spec, path)
        self.columns = self._columns()
        self.items_path = items_path
        if not path.is_file():
            raise DataError(f"{path}: review table not found (recipe key `data.source.path`)")
        if items_path is not None and not items_path.is_file():
            raise DataError(
                f"{items_path}: item table not found (recipe key `data.source.items.path`)"
            )
        if items_path is None:
            self.notes.append("no item metadata: item text is built from the items' own reviews")

    def _columns(self) -> ColumnMapping:
        if self.spec.columns is None:
            raise DataError("data.source.columns is required for format `table`")
        return self.spec.columns

    @property
    def item_table(self) -> ItemTable | None:
        return self.spec.items

    def item_files(self) -> list[Path]:
        return [self.items_path] if self.items_path is not None else []

    def review_files(self) -> list[Path]:
        return [self.path]

    def iter_items(self, report: ReadReport) -> Iterator[Item]:
        table = self.item_table
        if table is None or self.items_path is None:
            return
        named = [
            table.item,
            *(
                c
                for c in (table.name, table.categories, table.city, table.region, table.country)
                if c
            ),
        ]
        for number, row in iter_table(
            self.items_path, report, self.spec.on_bad_row, named, python_literals=True
        ):
            problem = not_text(row, (table.item, table.name, table.city, table.region, table.country), numbers=True)
            if problem is not None:
                report.bad_row(self.items_path, number, problem, self.spec.on_bad_row)
                continue
            item_id = text_value(row.get(table.item))
            if not item_id:
                report.missing([table.item])
                continue
            yield Item(
                item_id=item_id,
                name=_optional(row, table.name),
                categories=split_categories(row.get(table.categories)) if table.categories else (),
                city=_optional(row, table.city) or table.default_city,
                region=_optional(row, table.region),
                country=_optional(row, table.country) or table.default_country,
            )

    def _reviews_in(self, path: Path, report: ReadReport, position: list[int]) -> Iterator[Review]:
        columns = self.columns
        required = [columns.user, columns.item, columns.text]
        optional = [c for c in (columns.rating, columns.title, columns.date) if c]
        named = [*required, *optional]
        # A CSV header names its columns; JSON lines only show a misspelt optional one by its
        # absence (a required one empties every row, which selection reports).
        unseen, read_any = set(optional), False
        for number, row in iter_table(path, report, self.spec.on_bad_row, named, position):
            read_any = True
            if unseen:
                unseen -= row.keys()
            problem = not_text(row, (*required, columns.title, columns.date), numbers=True)
            if problem is not None:
                report.bad_row(path, number, problem, self.spec.on_bad_row)
                continue
            values = [text_value(row.get(column)) for column in required]
            if not all(values):
                report.missing([column for column, value in zip(required, values) if not value])
                continue
            user, item, text = values
            yield Review(
                user_id=user,
                item_id=item,
                text=text,
                rating=rating_value(row.get(columns.rating), report) if columns.rating else None,
                date=self._date(row.get(columns.date)) if columns.date else None,
                title=_optional(row, columns.title),
            )
        if read_any and unseen:
            raise DataError(
                f"{path}: column(s) {', '.join(repr(c) for c in sorted(unseen))} appear in no row "
                "(recipe key `data.source.columns`)"
            )

    def _date(self, value: object) -> str | None:
        return text_value(value) or None


def _optional(row: dict, column: str | None) -> str | None:
    return (text_value(row.get(column)) or None) if column else None


AMAZON_2014_COLUMNS = ColumnMapping(
    user="reviewerID",
    item="asin",
    text="reviewText",
    rating="overall",
    title="summary",
    date="unixReviewTime",
)
AMAZON_2014_METADATA = {"item": "asin", "name": "title", "categories": "categories"}


class Amazon2014Source(TableSource):
    """McAuley's 2014 Amazon reviews: JSON lines (`reviews_*.json.gz`) or the same fields as CSV.

    `reviewerName` is never read. Item metadata (`meta_*.json.gz`, Python-literal lines) is
    optional via `data.source.items`; without it items have no title and their text comes from
    their reviews' summaries and sentences.
    """

    format = "amazon_2014"

    def _columns(self) -> ColumnMapping:
        return self.spec.columns or AMAZON_2014_COLUMNS

    @property
    def item_table(self) -> ItemTable | None:
        table = self.spec.items
        if table is None:
            return None
        defaults = {
            key: value
            for key, value in AMAZON_2014_METADATA.items()
            if key not in table.model_fields_set
        }
        return table.model_copy(update=defaults)

    def _date(self, value: object) -> str | None:
        text = text_value(value)
        if text.isdigit():
            return datetime.fromtimestamp(int(text), tz=timezone.utc).date().isoformat()
        return text or None

"""`data`: where training review histories and the test collection come from, and user selection."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Section


class ColumnMapping(Section):
    """Column names of a generic CSV/JSONL review table. Only user, item and text are required."""

    user: str
    item: str
    text: str
    rating: str | None = None
    item_name: str | None = None
    categories: str | None = None
    city: str | None = None


class ItemTable(Section):
    """An optional item metadata table joined to a generic review table on `columns.item`."""

    path: str
    item: str = Field(description="column holding the item key (joined to the reviews' item column)")
    name: str | None = None
    categories: str | None = None
    city: str | None = None
    default_city: str | None = Field(None, description="city for every item when the table has none")


class SourceSpec(Section):
    """A review-history source, normalised to users, items and reviews."""

    format: Literal["yelp_academic", "yelp_open", "amazon_2014", "table"]
    path: str = Field(description="folder or file, relative to data.data_dir unless absolute")
    name: str | None = None
    columns: ColumnMapping | None = Field(None, description="required for format: table")
    items: ItemTable | None = None
    on_bad_row: Literal["skip", "fail"] = "skip"


class SelectionSpec(Section):
    """Mint's user selection (paper values in comments)."""

    min_liked: int = Field(5, ge=1, description="paper: 10")
    max_liked: int = Field(30, ge=1, description="paper: 30")
    category_blocklist: list[str] = []
    sentence_min_tokens: int = 5
    sentence_max_tokens: int = 20
    sentence_candidates: int = Field(5, description="choose from the first N qualifying sentences")
    max_items: int = Field(10, description="paper: 10")
    max_tokens: int = Field(200, description="paper: 200; items are halved while over budget")
    dev_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    max_users: int | None = None
    seed: int = 0


class TestCollectionSpec(Section):
    """The narrative-request test collection (Pointrec)."""

    format: Literal["pointrec"] = "pointrec"
    path: str = "pointrec"
    pool: Literal["judged", "city", "citycat"] = "judged"
    require_text: bool = True
    min_judged_with_text: float = Field(
        0.0, ge=0.0, le=1.0, description="keep requests with at least this share of judged POIs with text"
    )
    max_snippets: int = 5
    download: bool = True


class DataSection(Section):
    data_dir: str = Field(
        "${MINT_DISTILL_DATA_DIR:-../shared/data}",
        description="base folder for relative data paths; created on download",
    )
    source: SourceSpec
    selection: SelectionSpec = SelectionSpec()
    test: TestCollectionSpec = TestCollectionSpec()

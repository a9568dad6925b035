"""`data`: where training review histories and the test collection come from, and user selection."""

from __future__ import annotations

import string
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Section, Seed, check_embedded_kind

# Fields a template may name; `[...]` marks an optional part, dropped when a field in it is empty.
ITEM_TEMPLATE_FIELDS = frozenset(
    {"name", "city", "region", "country", "main_category", "sub_categories", "snippets"}
)
REVIEW_SNIPPET_FIELDS = frozenset({"title", "text"})
QUERY_TEMPLATE_FIELDS = frozenset(
    {"main_category", "sub_categories", "city", "country", "description", "title"}
)
POI_SNIPPET_FIELDS = frozenset({"title", "snippet"})

# Yelp's top-level categories, mapped to the four main categories Pointrec uses.
POINTREC_MAIN_CATEGORIES = {
    "Restaurants": "Restaurants and Food",
    "Food": "Restaurants and Food",
    "Nightlife": "Nightlife",
    "Arts & Entertainment": "Arts & Entertainment",
    "Active Life": "Active Life",
}

# Query city -> catalog cities (the Mint authors' map for Pointrec, see shared/data/pointrec/README.md).
POINTREC_CITY_SYNONYMS = {
    "New York City": ["New York"],
    "Walla walla": ["Walla Walla"],
    "Zurich": ["Zürich"],
    "Via San Vitale": ["Bologna"],
    "Lucerne": ["Lucerne", "Luzern", "Zürich"],
    "Stavanger": ["Stavanger", "Oslo"],
    "Coimbra": ["Coimbra", "Lisbon"],
    "Sintra": ["Sintra", "Lisbon"],
    "Vancouver": ["Vancouver", "North Vancouver", "West Vancouver"],
    "Tokyo": ["Tokyo", "Yokohama", "Minato", "Taitō", "Shibuya"],
}


def check_template(template: str, allowed: frozenset[str]) -> str:
    """Raise ValueError naming any placeholder outside `allowed` (pydantic reports the key path)."""
    try:
        names = {
            name
            for _, name, _, _ in string.Formatter().parse(
                template.replace("[", "").replace("]", "")
            )
            if name is not None
        }
    except ValueError as error:
        raise ValueError(f"not a valid template ({error})") from None
    unknown = sorted(names - allowed)
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join('{' + n + '}' for n in unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    return template


class ColumnMapping(Section):
    """Column names of a generic CSV/JSONL review table. Only user, item and text are required;
    an item's name, categories and place come from an item table (`data.source.items`)."""

    user: str
    item: str
    text: str
    rating: str | None = None
    title: str | None = Field(None, description="a short review headline (e.g. Amazon's summary)")
    date: str | None = None


class ItemTable(Section):
    """An optional item metadata table joined to a generic review table on `columns.item`."""

    path: str
    item: str = Field(
        description="column holding the item key (joined to the reviews' item column)"
    )
    name: str | None = None
    categories: str | None = Field(None, description="column of comma-separated categories")
    city: str | None = None
    region: str | None = None
    country: str | None = None
    default_city: str | None = Field(
        None, description="city for every item when the table has none"
    )
    default_country: str | None = Field(
        None, description="ISO-2 country for every item when the table has none"
    )


class SourceSpec(Section):
    """A review-history source, normalised to users, items and reviews.

    Formats: `yelp_academic` (folder with business + tip/review files, categories as a list),
    `yelp_open` (folder with business.json + review.json), `amazon_2014` (a reviews JSON lines
    or CSV file, optionally `items` for a metadata file), `table` (any CSV/JSONL with `columns`).
    """

    format: Literal["yelp_academic", "yelp_open", "amazon_2014", "table"]
    path: str = Field(description="folder or file, relative to data.data_dir unless absolute")
    name: str | None = None
    columns: ColumnMapping | None = Field(None, description="required for format: table")
    items: ItemTable | None = None
    on_bad_row: Literal["skip", "fail"] = "skip"
    pseudonymize_users: bool = Field(
        False,
        description="replace user keys by a hash in every output (for sources keyed by display names)",
    )
    download: bool = Field(
        True,
        description="fetch the source into data_dir when it is missing and the tool knows its origin",
    )

    @model_validator(mode="after")
    def _table_needs_columns(self) -> SourceSpec:
        if self.format == "table" and self.columns is None:
            raise ValueError("format `table` needs `columns` (user, item, text, ...)")
        return self


class SelectionSpec(Section):
    """Mint's user selection (paper values in the descriptions)."""

    min_liked: int = Field(5, ge=1, description="fewest usable liked items per user; paper: 10")
    max_liked: int = Field(30, ge=1, description="most usable liked items per user; paper: 30")
    category_blocklist: list[str] = Field(
        [], description="items in any of these categories are dropped"
    )
    sentence_min_tokens: int = Field(5, ge=1)
    sentence_max_tokens: int = Field(20, ge=1)
    sentence_candidates: int = Field(
        5, ge=1, description="choose from the first N qualifying sentences"
    )
    max_items: int = Field(10, ge=1, description="items shown per user; paper: 10")
    max_tokens: int = Field(
        200, ge=1, description="sentence tokens per user; paper: 200; items are halved while over"
    )
    dev_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    max_users: int | None = Field(
        None, ge=1, description="keep at most this many users (a seeded sample)"
    )
    seed: Seed = 0

    @model_validator(mode="after")
    def _consistent(self) -> SelectionSpec:
        if self.max_liked < self.min_liked:
            raise ValueError(f"max_liked ({self.max_liked}) is below min_liked ({self.min_liked})")
        if self.sentence_max_tokens < self.sentence_min_tokens:
            raise ValueError("sentence_max_tokens is below sentence_min_tokens")
        if self.max_tokens < self.sentence_max_tokens:
            raise ValueError(
                f"max_tokens ({self.max_tokens}) must fit one sentence of sentence_max_tokens ({self.sentence_max_tokens})"
            )
        return self


class ItemTextSpec(Section):
    """How a training item is written for the encoders: the Pointrec POI template by default."""

    template: str = Field(
        "{name}[ in {city}][, {country}][ is known for {main_category}.][ Specifically: {sub_categories}.]{snippets}",
        description="fields: "
        + ", ".join(sorted(ITEM_TEMPLATE_FIELDS))
        + "; [..] is dropped when a field in it is empty",
    )
    snippet_template: str = Field(
        "[ {title}:] {text}", description="one review sentence of the item; fields: title, text"
    )
    max_snippets: int = Field(
        3, ge=0, description="review sentences of the item appended to its text"
    )
    main_categories: dict[str, str] = Field(
        dict(POINTREC_MAIN_CATEGORIES),
        description="source category -> main category (first match wins)",
    )
    default_main_category: str | None = Field(
        None, description="main category when none maps; unset: the item's first category"
    )

    @field_validator("template")
    @classmethod
    def _item_fields(cls, value: str) -> str:
        return check_template(value, ITEM_TEMPLATE_FIELDS)

    @field_validator("snippet_template")
    @classmethod
    def _snippet_fields(cls, value: str) -> str:
        return check_template(value, REVIEW_SNIPPET_FIELDS)


class TestCollectionSpec(Section):
    """The narrative-request test collection (Pointrec)."""

    __test__ = False  # not a pytest class

    format: Literal["pointrec"] = "pointrec"
    path: str = "pointrec"
    pool: Literal["judged", "city", "citycat"] = "judged"
    require_text: bool = Field(
        True, description="drop pool candidates that have no POI record (no text)"
    )
    min_judged_with_text: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="keep requests with at least this share of judged POIs with text",
    )
    min_pool_size: int = Field(
        0, ge=0, description="keep requests whose candidate pool holds at least this many POIs"
    )
    condensed_qrels: bool = Field(
        True,
        description="drop judgements of POIs with no record here, so ideal rankings count only "
        "POIs a ranker can see in the judged pool (the condensed-pool protocol)",
    )
    max_snippets: int = Field(5, ge=0)
    query_template: str = Field(
        "Looking for {main_category}[, specifically {sub_categories}] in {city}, {country}. {description}.",
        description="request text (Mint authors' template); fields: "
        + ", ".join(sorted(QUERY_TEMPLATE_FIELDS)),
    )
    poi_template: str = Field(
        "{name} in {city}, {country} is known for {main_category}.[ Specifically: {sub_categories}.]{snippets}",
        description="POI text (Mint authors' template); fields: "
        + ", ".join(sorted(ITEM_TEMPLATE_FIELDS)),
    )
    snippet_template: str = Field(
        " title: {title}, snippet: {snippet}.", description="one web snippet of a POI"
    )
    city_synonyms: dict[str, list[str]] = Field(
        {city: list(names) for city, names in POINTREC_CITY_SYNONYMS.items()},
        description="request city -> catalog cities for the city pools",
    )
    download: bool = Field(
        True, description="fetch the collection from its public repository when it is missing"
    )

    @field_validator("query_template")
    @classmethod
    def _query_fields(cls, value: str) -> str:
        return check_template(value, QUERY_TEMPLATE_FIELDS)

    @field_validator("poi_template")
    @classmethod
    def _poi_fields(cls, value: str) -> str:
        return check_template(value, ITEM_TEMPLATE_FIELDS)

    @field_validator("snippet_template")
    @classmethod
    def _poi_snippet_fields(cls, value: str) -> str:
        return check_template(value, POI_SNIPPET_FIELDS)


CATALOG_GROUP_FIELDS = ("city", "region", "country", "main_category")


class CatalogSpec(Section):
    """Catalog adaptation: pseudo-histories sampled from the catalog the students will rank.

    A pseudo-history is `items_per_history` items that share every `group_by` attribute, each
    shown with one short sentence (a POI's web snippet, or a review sentence of a training
    item), as if one user had liked them all. The data stage appends them to `users.jsonl`
    (`"origin": "catalog"`) and their items to `items.jsonl`, rendered with the template the
    ranker uses for that catalog, so every later stage uses them unchanged.

    How many, with U selected user histories, fraction f and cap M (`max_histories`):
    C = min(round(U * f / (1 - f)), M, A), so that C / (U + C) is f, where A is how many the
    catalog's groups hold (each item in one history). f = 0: none (user histories only);
    f = 1: min(M, A) and the user histories are dropped (catalog data only; set M to choose
    the volume, e.g. U for as many histories as the users give).
    """

    enabled: bool = Field(
        False, description="add catalog pseudo-histories to the training histories"
    )
    source: Literal["test", "training"] = Field(
        "test",
        description="test: the test collection's POI catalog (POIs with a web snippet); "
        "training: the training source's own items (those with a review sentence)",
    )
    group_by: list[str] = Field(
        ["city", "main_category"],
        description="items of one history share these attributes; any of "
        + ", ".join(CATALOG_GROUP_FIELDS),
    )
    items_per_history: int = Field(5, ge=1, description="groups smaller than this are skipped")
    similar_by: str | None = Field(
        None,
        description="a sentence-transformers model (e.g. embedded:all-minilm-l6-v2): each history is "
        "a seeded anchor item and its nearest unused neighbours in its group by this model's "
        "embeddings of the items' text, so that the items share a theme, not only the group's "
        "attributes; null: the group's members in seeded random order",
    )
    fraction: float = Field(
        0.5, ge=0.0, le=1.0, description="share of catalog pseudo-histories among all histories"
    )
    max_histories: int | None = Field(None, ge=1, description="at most this many catalog histories")
    exclude_judged: bool = Field(
        True,
        description="never use items judged in the test collection (only their ids are read); "
        "applies to source: test",
    )
    dev_requests: str | list[str] | None = Field(
        None,
        description="dev requests written for the target catalog outside the pipeline, each with "
        "a graded pool of its items (JSON lines; mint_distill/data/dev_requests.py), in one file "
        "or a list of files: their items are never training items, and the ablation report "
        "scores every student on all of them, pooled",
    )
    seed: Seed = 0

    @field_validator("dev_requests")
    @classmethod
    def _distinct_files(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list):
            if not value:
                raise ValueError("an empty list: name at least one file, or null")
            if len(set(value)) != len(value):
                raise ValueError("a file is listed twice")
        return value

    @property
    def dev_request_files(self) -> list[str]:
        """`dev_requests` as a list (a single file is kept as written, so its runs stay fresh)."""
        if self.dev_requests is None:
            return []
        return [self.dev_requests] if isinstance(self.dev_requests, str) else list(self.dev_requests)

    @field_validator("group_by")
    @classmethod
    def _known_attributes(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in CATALOG_GROUP_FIELDS]
        if unknown:
            raise ValueError(
                f"unknown attribute(s) {', '.join(unknown)}; allowed: {', '.join(CATALOG_GROUP_FIELDS)}"
            )
        if len(set(value)) != len(value):
            raise ValueError("an attribute is listed twice")
        return value

    @model_validator(mode="after")
    def _similar_by_encoder(self) -> CatalogSpec:
        if self.similar_by is not None:
            check_embedded_kind(
                self.similar_by, "sentence-transformer", "data.catalog.similar_by", "similar_by"
            )
        return self


class DataSection(Section):
    data_dir: str = Field(
        "${MINT_DISTILL_DATA_DIR:-../shared/data}",
        description="base folder for relative data paths; created on download",
    )
    source: SourceSpec
    selection: SelectionSpec = SelectionSpec()
    item_text: ItemTextSpec = ItemTextSpec()
    test: TestCollectionSpec = TestCollectionSpec()
    catalog: CatalogSpec = CatalogSpec()

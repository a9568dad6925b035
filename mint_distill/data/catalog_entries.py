"""Catalog items as a pseudo-history shows them: metadata, one short sentence, and the ranker's text.

Two catalogs can feed pseudo-histories (`data.catalog.source`):
- `test`: the test collection's POIs (Pointrec). Only POIs with a web snippet qualify (the
  snippet gives the sentence); their ids are namespaced `pointrec:<poi_id>` so they cannot
  clash with training item ids, and their text is `pointrec.poi_text` (the ranker's POI text).
- `training`: the training source's own items with a review sentence, with the text
  `items.jsonl` already holds (`data.item_text`).
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow.compute as pc

from ..recipe.sections.data import ItemTextSpec, SelectionSpec, TestCollectionSpec
from .catalog import ItemCatalog, blocklist, is_blocked, main_and_sub_categories
from .poi_catalog import PoiCatalog
from .pointrec import poi_text
from .text import count_tokens, qualifying_sentences

POINTREC_PREFIX = "pointrec:"
BOILERPLATE = 3  # a sentence offered by this many items or more is not shown for any


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One catalog item that can be shown in a pseudo-history."""

    item_id: str
    name: str | None
    city: str | None
    region: str | None
    country: str | None
    main_category: str | None
    sub_categories: tuple[str, ...]
    categories: tuple[str, ...]
    sentence: str
    text: str

    def attribute(self, name: str) -> str | None:
        """A grouping attribute (`data.catalog.group_by`)."""
        return getattr(self, name)

    def shown_record(self) -> dict:
        """The item as a `users.jsonl` record shows it (the same fields as a real user's item)."""
        return {
            "item_id": self.item_id,
            "name": self.name,
            "city": self.city,
            "country": self.country,
            "categories": list(self.categories),
            "main_category": self.main_category,
            "sub_categories": list(self.sub_categories),
            "sentence": self.sentence,
            "rating": None,
        }

    def item_record(self) -> dict:
        """The `items.jsonl` record (with the catalog's main and sub categories besides)."""
        return {
            "item_id": self.item_id,
            "name": self.name,
            "categories": list(self.categories),
            "city": self.city,
            "region": self.region,
            "country": self.country,
            "main_category": self.main_category,
            "sub_categories": list(self.sub_categories),
            "text": self.text,
        }


def sentence_candidates(
    snippets: Iterable[str], selection: SelectionSpec, limit: int = 3
) -> list[str]:
    """Sentences a pseudo-history could show for an item, best first (at most `limit`).

    From each snippet in turn, its first sentence within the selection's token bounds
    (`sentence_min_tokens` to `sentence_max_tokens`); when no snippet has one, the first snippet
    of at least `sentence_min_tokens` tokens cut to `sentence_max_tokens`.
    """
    snippets = [html.unescape(" ".join(s.split())) for s in snippets if s and s.strip()]
    found: list[str] = []
    for snippet in snippets:
        first = qualifying_sentences(
            snippet, selection.sentence_min_tokens, selection.sentence_max_tokens, 1
        )
        if first and first[0] not in found:
            found.append(first[0])
            if len(found) == limit:
                return found
    if found:
        return found
    for snippet in snippets:
        if count_tokens(snippet) >= selection.sentence_min_tokens:
            return [" ".join(snippet.split()[: selection.sentence_max_tokens])]
    return []


def pick_sentences(
    candidates: dict[str, list[str]], boilerplate: int = BOILERPLATE
) -> dict[str, str]:
    """One sentence per item: its best candidate that is not boilerplate.

    A sentence offered by `boilerplate` or more items ("We would like to show you a description
    here but the site won't allow us.", a site's slogan) says nothing about any of them; an
    item whose every candidate is boilerplate is left out.
    """
    offered = Counter(sentence for options in candidates.values() for sentence in set(options))
    picked = {}
    for item_id, options in candidates.items():
        choice = next((s for s in options if offered[s] < boilerplate), None)
        if choice is not None:
            picked[item_id] = choice
    return picked


def pointrec_entries(
    catalog: PoiCatalog,
    spec: TestCollectionSpec,
    selection: SelectionSpec,
    judged: set[str],
) -> tuple[list[CatalogEntry], dict]:
    """Entries for the test collection's POIs with a usable snippet, leaving out `judged` ids and
    POIs in a blocklisted category.

    Returns the entries and counts: POIs in the catalog, with snippets, judged (in the catalog,
    all left out), blocklisted (when a blocklist is set), and with no usable sentence.
    """
    table = catalog.table
    lengths = pc.fill_null(pc.list_value_length(table.column("snippet_texts")), 0)
    with_snippets = table.filter(pc.greater(lengths, 0))
    blocked = blocklist(selection.category_blocklist)
    rows, judged_with_snippets, blocklisted = {}, 0, 0
    for row in with_snippets.to_pylist():
        if row["poi_id"] in judged:
            judged_with_snippets += 1
        elif is_blocked(_categories(row), blocked):
            blocklisted += 1
        else:
            rows[row["poi_id"]] = row
    sentences = pick_sentences(
        {
            poi_id: sentence_candidates(row["snippet_texts"], selection)
            for poi_id, row in rows.items()
        }
    )
    entries = []
    for poi_id, sentence in sentences.items():
        row = rows[poi_id]
        main, subs = row["main_category"] or None, _sub_categories(row)
        entries.append(
            CatalogEntry(
                item_id=POINTREC_PREFIX + poi_id,
                name=(row["name"] or "").strip() or None,
                city=row["city"],
                region=row["state_code"],
                country=row["country_code"],
                main_category=main,
                sub_categories=subs,
                categories=_categories(row),
                sentence=sentence,
                text=poi_text(row, spec),
            )
        )
    counts = {
        "catalog_items": len(catalog),
        "with_snippets": with_snippets.num_rows,
        "judged_ids": len(judged),
        "judged_in_catalog": sum(1 for poi_id in judged if poi_id in catalog),
        "judged_with_snippets": judged_with_snippets,
        **({"blocklisted": blocklisted} if blocked else {}),
        "without_sentence": len(rows) - len(entries),
        "eligible": len(entries),
    }
    return entries, counts


def _sub_categories(row: dict) -> tuple[str, ...]:
    return tuple(s.strip() for s in (row["sub_categories"] or "").split(",") if s.strip())


def _categories(row: dict) -> tuple[str, ...]:
    main = row["main_category"]
    return (main, *_sub_categories(row)) if main else _sub_categories(row)


def training_entries(
    catalog: ItemCatalog, item_spec: ItemTextSpec, selection: SelectionSpec
) -> tuple[list[CatalogEntry], dict]:
    """Entries for the training source's items that have a review sentence and are not blocklisted.

    The sentence is the item's first collected review sentence (already within the selection's
    token bounds); the text is the item's `items.jsonl` text.
    """
    blocked = blocklist(selection.category_blocklist)
    entries, without_sentence, blocklisted = [], 0, 0
    for item_id, item in catalog.items.items():
        if is_blocked(item.categories, blocked):
            blocklisted += 1
            continue
        snippets = catalog.snippets.get(item_id)
        if not snippets:
            without_sentence += 1
            continue
        main, subs = main_and_sub_categories(
            item.categories, item_spec.main_categories, item_spec.default_main_category
        )
        entries.append(
            CatalogEntry(
                item_id=item_id,
                name=item.name,
                city=item.city,
                region=item.region,
                country=item.country,
                main_category=main,
                sub_categories=tuple(subs),
                categories=item.categories,
                sentence=snippets[0][1],
                text=catalog.text(item_id, item_spec),
            )
        )
    counts = {
        "catalog_items": len(catalog),
        "blocklisted": blocklisted,
        "without_sentence": without_sentence,
        "eligible": len(entries),
    }
    return entries, counts

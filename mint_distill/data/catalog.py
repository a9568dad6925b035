"""The training item catalog: item metadata plus a few review sentences each, rendered as item text."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..recipe.sections.data import ItemTextSpec
from .records import Item
from .text import render


def main_and_sub_categories(
    categories: Iterable[str], main_categories: dict[str, str], default_main: str | None = None
) -> tuple[str | None, list[str]]:
    """(main category, sub categories): the first category that maps to a main one wins.

    Categories that map to a main category are left out of the sub categories. When none maps,
    the main category is `default_main`, or else the first category.
    """
    categories = list(categories)
    main = next((main_categories[c] for c in categories if c in main_categories), None)
    subs = [c for c in categories if c not in main_categories]
    if main is None:
        if default_main is not None:
            main = default_main
        elif subs:
            main, subs = subs[0], subs[1:]
    return main, subs


@dataclass
class ItemCatalog:
    """Items by id, with the review sentences collected for their text (at most `max_snippets` each)."""

    items: dict[str, Item] = field(default_factory=dict)
    snippets: dict[str, list[tuple[str | None, str]]] = field(default_factory=dict)
    duplicates: int = 0

    def add(self, item: Item) -> None:
        """Add an item; a second record with the same id is counted and ignored."""
        if item.item_id in self.items:
            self.duplicates += 1
            return
        self.items[item.item_id] = item

    def get(self, item_id: str) -> Item | None:
        return self.items.get(item_id)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.items

    def add_snippet(self, item_id: str, title: str | None, sentence: str) -> None:
        self.snippets.setdefault(item_id, []).append((title, sentence))

    def snippet_count(self, item_id: str) -> int:
        return len(self.snippets.get(item_id, ()))

    def text(self, item_id: str, spec: ItemTextSpec) -> str:
        """The item's text for the encoders, rendered with `spec` (the Pointrec POI template by default)."""
        item = self.items[item_id]
        return render_item_text(item, self.snippets.get(item_id, ())[: spec.max_snippets], spec)

    def records(self, spec: ItemTextSpec, blocked: set[str] = frozenset()) -> Iterator[dict]:
        """`items.jsonl` records (docs/pipeline.md), leaving out items in blocked categories."""
        for item_id, item in self.items.items():
            if is_blocked(item.categories, blocked):
                continue
            yield {
                "item_id": item_id,
                "name": item.name,
                "categories": list(item.categories),
                "city": item.city,
                "region": item.region,
                "country": item.country,
                "text": self.text(item_id, spec),
            }


def render_item_text(
    item: Item, snippets: Iterable[tuple[str | None, str]], spec: ItemTextSpec
) -> str:
    main, subs = main_and_sub_categories(
        item.categories, spec.main_categories, spec.default_main_category
    )
    snippet_text = "".join(
        render_snippet(spec.snippet_template, title, text) for title, text in snippets
    )
    return render(
        spec.template,
        {
            "name": item.name,
            "city": item.city,
            "region": item.region,
            "country": item.country,
            "main_category": main.lower() if main else None,
            "sub_categories": ", ".join(subs).lower() if subs else None,
            "snippets": snippet_text,
        },
    )


def render_snippet(template: str, title: str | None, text: str) -> str:
    """One snippet with its leading space kept, so snippets join into running text."""
    rendered = render(template, {"title": title, "text": text})
    return f" {rendered}" if rendered else ""


def blocklist(names: Iterable[str]) -> set[str]:
    return {name.strip().lower() for name in names if name.strip()}


def is_blocked(categories: Iterable[str], blocked: set[str]) -> bool:
    """Whether any of an item's `categories` is in the `blocklist`."""
    return bool(blocked) and any(category.lower() in blocked for category in categories)

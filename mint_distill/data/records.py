"""The one schema every review source is normalised to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Item:
    """A catalog item: a business, a product, a restaurant."""

    item_id: str
    name: str | None = None
    categories: tuple[str, ...] = ()
    city: str | None = None
    region: str | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class Review:
    """One review (or tip) of an item by a user. `rating` is None when the source has none."""

    user_id: str
    item_id: str
    text: str
    rating: float | None = None
    date: str | None = None
    title: str | None = None

    def as_record(self) -> dict:
        """The `reviews.jsonl` record (docs/pipeline.md)."""
        return {
            "user_id": self.user_id,
            "item_id": self.item_id,
            "text": self.text,
            "rating": self.rating,
            "date": self.date,
        }

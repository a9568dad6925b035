"""Yelp: the older academic layout (business + tip/review files) and the current Yelp Open Dataset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ...errors import DataError
from ...recipe.sections.data import SourceSpec
from ..reading import ReadReport, iter_jsonl, not_text, rating_value, split_categories, text_value
from ..records import Item, Review
from .base import ReviewSource, first_existing, optional_existing

# Yelp gives a state or province code, not a country; these are the non-US codes its datasets use.
_NON_US_REGIONS = {
    **dict.fromkeys(
        ("AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT"), "CA"
    ),
    **dict.fromkeys(("EDH", "MLN", "ELN", "FIF", "SCB", "WLN", "KHL", "HAM", "NTH", "XGL"), "GB"),
    **dict.fromkeys(("BW", "RP", "NW"), "DE"),
}


def country_of_region(region: str | None) -> str | None:
    """ISO-2 country of a Yelp state/province code (US unless it is a known non-US code)."""
    if not region:
        return None
    return _NON_US_REGIONS.get(region.upper(), "US")


class _YelpSource(ReviewSource):
    BUSINESS = ("yelp_academic_dataset_business.json", "business.json")
    REVIEW_FILES: tuple[tuple[str, ...], ...] = ()

    def item_files(self) -> list[Path]:
        return [first_existing(self.path, self.BUSINESS, "business", "data.source.path")]

    def review_files(self) -> list[Path]:
        found = [optional_existing(self.path, names) for names in self.REVIEW_FILES]
        files = [path for path in found if path is not None]
        if not files:
            looked = ", ".join(name for names in self.REVIEW_FILES for name in names)
            raise DataError(
                f"{self.path}: no review file (looked for {looked}, also with .gz); check recipe key `data.source.path`"
            )
        return files

    def iter_items(self, report: ReadReport) -> Iterator[Item]:
        path = self.item_files()[0]
        for number, record in iter_jsonl(path, report, self.spec.on_bad_row):
            problem = not_text(record, ("business_id", "name", "city", "state"), lists=("categories",))
            if problem is not None:
                report.bad_row(path, number, problem, self.spec.on_bad_row)
                continue
            item_id = text_value(record.get("business_id"))
            if not item_id:
                report.missing(["business_id"])
                continue
            region = text_value(record.get("state")) or None
            yield Item(
                item_id=item_id,
                name=text_value(record.get("name")) or None,
                categories=split_categories(record.get("categories")),
                city=text_value(record.get("city")) or None,
                region=region,
                country=country_of_region(region),
            )

    def _reviews_in(self, path: Path, report: ReadReport, position: list[int]) -> Iterator[Review]:
        for number, record in iter_jsonl(path, report, self.spec.on_bad_row, position):
            problem = not_text(record, ("user_id", "business_id", "text", "date"))
            if problem is not None:
                report.bad_row(path, number, problem, self.spec.on_bad_row)
                continue
            user, item, text = (
                text_value(record.get(key)) for key in ("user_id", "business_id", "text")
            )
            if not (user and item and text):
                report.missing(
                    [
                        name
                        for name, value in (
                            ("user_id", user),
                            ("business_id", item),
                            ("text", text),
                        )
                        if not value
                    ]
                )
                continue
            yield Review(
                user,
                item,
                text,
                rating_value(record.get("stars"), report),
                text_value(record.get("date")) or None,
            )


class YelpAcademicSource(_YelpSource):
    """The older academic layout: `yelp_academic_dataset_{business,tip,review}.json`, categories as lists.

    Tips are read as reviews without a rating; a review file, when present, is read too.
    """

    format = "yelp_academic"
    REVIEW_FILES = (("yelp_academic_dataset_review.json",), ("yelp_academic_dataset_tip.json",))

    def __init__(self, spec: SourceSpec, path: Path):
        super().__init__(spec, path)
        if optional_existing(path, ("yelp_academic_dataset_tip.json",)) is not None:
            self.notes.append(
                "tips are read as reviews without a rating (every tip counts as liked)"
            )


class YelpOpenSource(_YelpSource):
    """The current Yelp Open Dataset: business.json + review.json (either file naming), categories as a string."""

    format = "yelp_open"
    REVIEW_FILES = (("review.json", "yelp_academic_dataset_review.json"),)

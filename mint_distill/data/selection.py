"""Mint's user selection, streamed: memory grows with users and kept items, not with file size.

Three passes over the reviews (each a plain stream):
1. `scan_reviews`: per-user review counts and rating sums (for the user's own mean), the item
   catalog's review sentences, and the source counts;
2. `select_users`, first part: for users with at least `min_liked` reviews, the distinct items
   that are *usable*: known, not blocklisted, liked (rating at or above the user's own mean, or
   unrated) and with a review sentence of 5-20 tokens. Users with `min_liked..max_liked` usable
   items are kept;
3. second part: each kept user's usable items are sampled down to `max_items` (seeded by user),
   one sentence is picked per sampled item (a seeded choice among the first
   `sentence_candidates` qualifying sentences of the user's first usable review of it), and the
   items are halved while their sentences exceed `max_tokens`. Every review of a kept user goes
   to `review_sink`.

Memory: per-user counters for every user, the usable item set of each candidate user (at most
`max_liked` + 1), and `max_items` sentences per kept user.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..console import progress_bar
from ..errors import DataError
from ..recipe.sections.data import ItemTextSpec, SelectionSpec
from .catalog import ItemCatalog, blocklist, is_blocked, main_and_sub_categories
from .reading import ReadReport
from .records import Item, Review
from .sources.base import ReviewSource
from .text import count_tokens, qualifying_sentences


@dataclass
class ReviewScan:
    """Pass 1: what every user rated, and counts over the whole source."""

    review_count: dict[str, int] = field(default_factory=dict)
    rated_count: dict[str, int] = field(default_factory=dict)
    rating_sum: dict[str, float] = field(default_factory=dict)
    reviews: int = 0
    rated_reviews: int = 0
    unknown_item_reviews: int = 0
    items_reviewed: int = 0

    def mean_rating(self, user: str) -> float | None:
        rated = self.rated_count.get(user, 0)
        return self.rating_sum[user] / rated if rated else None

    def liked(self, user: str, rating: float | None) -> bool:
        """Liked: rated at or above the user's own mean; an unrated review (a tip) counts as liked."""
        if rating is None:
            return True
        mean = self.mean_rating(user)
        return mean is None or rating >= mean - 1e-9

    def summary(self) -> dict:
        return {
            "reviews": self.reviews,
            "rated_reviews": self.rated_reviews,
            "users": len(self.review_count),
            "items_reviewed": self.items_reviewed,
            "reviews_of_unknown_items": self.unknown_item_reviews,
        }


def scan_reviews(
    source: ReviewSource,
    catalog: ItemCatalog,
    item_spec: ItemTextSpec,
    selection: SelectionSpec,
    report: ReadReport,
) -> ReviewScan:
    """Pass 1 over the reviews. Items unknown to the catalog are added when the source has no metadata."""
    scan = ReviewScan()
    reviewed: set[str] = set()
    metadata = source.has_item_metadata
    for review in _stream(source, "scan reviews", report):
        scan.reviews += 1
        user = review.user_id
        scan.review_count[user] = scan.review_count.get(user, 0) + 1
        if review.rating is not None:
            scan.rated_reviews += 1
            scan.rated_count[user] = scan.rated_count.get(user, 0) + 1
            scan.rating_sum[user] = scan.rating_sum.get(user, 0.0) + review.rating
        item_id = review.item_id
        if item_id not in catalog:
            if metadata:
                scan.unknown_item_reviews += 1
                continue
            catalog.add(Item(item_id))
        reviewed.add(item_id)
        if catalog.snippet_count(item_id) < item_spec.max_snippets:
            found = qualifying_sentences(
                review.text, selection.sentence_min_tokens, selection.sentence_max_tokens, 1
            )
            if found:
                catalog.add_snippet(item_id, review.title, found[0])
    scan.items_reviewed = len(reviewed)
    return scan


@dataclass(frozen=True, slots=True)
class ShownItem:
    """A liked item as the teacher sees it: one short sentence of the user's review."""

    item_id: str
    sentence: str
    rating: float | None


@dataclass(slots=True)
class SelectedUser:
    user_id: str
    split: str
    items: list[ShownItem]

    def record(self, catalog: ItemCatalog, item_spec: ItemTextSpec) -> dict:
        """The `users.jsonl` record (docs/pipeline.md)."""
        shown = []
        for entry in self.items:
            item = catalog.get(entry.item_id)
            main, subs = main_and_sub_categories(
                item.categories, item_spec.main_categories, item_spec.default_main_category
            )
            shown.append(
                {
                    "item_id": entry.item_id,
                    "name": item.name,
                    "city": item.city,
                    "country": item.country,
                    "categories": list(item.categories),
                    "main_category": main,
                    "sub_categories": subs,
                    "sentence": entry.sentence,
                    "rating": entry.rating,
                }
            )
        return {"user_id": self.user_id, "split": self.split, "origin": "history", "items": shown}


@dataclass
class Selection:
    users: list[SelectedUser]
    stats: dict


def _stream(
    source: ReviewSource, description: str, report: ReadReport | None = None
) -> Iterator[Review]:
    """The source's reviews with a progress bar over the bytes read."""
    with progress_bar(description, source.review_bytes(), unit="B") as bar:
        done = 0

        def advance(position: int) -> None:
            nonlocal done
            bar.advance(position - done)
            done = position

        yield from source.iter_reviews(report, advance)


def unit_hash(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts (stable across runs and machines)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(user_id: str, seed: int, dev_fraction: float) -> str:
    """`dev` for a fixed `dev_fraction` share of users (by a hash of seed and user id), else `train`."""
    return "dev" if unit_hash("split", seed, user_id) < dev_fraction else "train"


class _Usability:
    """Which of a review's items can be shown: known, not blocklisted, liked, with a short sentence."""

    def __init__(self, scan: ReviewScan, catalog: ItemCatalog, spec: SelectionSpec):
        self.scan, self.catalog, self.spec = scan, catalog, spec
        self.blocked = blocklist(spec.category_blocklist)
        self.removed = {
            "unknown_item": 0,
            "blocklisted_category": 0,
            "not_liked": 0,
            "no_short_sentence": 0,
        }

    def item_of(self, review: Review, count: bool) -> str | None:
        """The catalog's own id string for a usable review, else None (reasons counted if `count`)."""
        item = self.catalog.get(review.item_id)
        reason = None
        if item is None:
            reason = "unknown_item"
        elif is_blocked(item.categories, self.blocked):
            reason = "blocklisted_category"
        elif not self.scan.liked(review.user_id, review.rating):
            reason = "not_liked"
        elif not qualifying_sentences(
            review.text, self.spec.sentence_min_tokens, self.spec.sentence_max_tokens, 1
        ):
            reason = "no_short_sentence"
        if reason is not None:
            if count:
                self.removed[reason] += 1
            return None
        return item.item_id


def select_users(
    source: ReviewSource,
    scan: ReviewScan,
    catalog: ItemCatalog,
    spec: SelectionSpec,
    review_sink: Callable[[Review], None] | None = None,
) -> Selection:
    """Passes 2 and 3 (see the module docstring). Raises DataError naming the filter that left no user."""
    usability = _Usability(scan, catalog, spec)
    candidates = {user for user, count in scan.review_count.items() if count >= spec.min_liked}
    usable, too_many, most_usable = _count_usable(source, candidates, usability, spec)
    in_range = [user for user, items in usable.items() if len(items) >= spec.min_liked]
    funnel = {
        "users": len(scan.review_count),
        "fewer_reviews_than_min_liked": len(scan.review_count) - len(candidates),
        "too_few_usable_liked_items": len(candidates) - len(in_range) - len(too_many),
        "too_many_usable_liked_items": len(too_many),
    }
    _fail_if_empty(funnel, candidates, in_range, too_many, most_usable, spec, usability)
    kept = sorted(in_range, key=lambda user: unit_hash("sample", spec.seed, user))
    funnel["over_max_users"] = (
        max(0, len(kept) - spec.max_users) if spec.max_users is not None else 0
    )
    kept = kept[: spec.max_users]
    chosen, limits = _sample_items(kept, usable, spec)
    del usable
    picks = _pick_sentences(source, chosen, usability, spec, review_sink)
    users = _within_token_budget(kept, chosen, picks, spec, limits)
    funnel["kept"] = len(users)
    funnel["train"] = sum(1 for user in users if user.split == "train")
    funnel["dev"] = len(users) - funnel["train"]
    stats = {
        "users": funnel,
        "reviews_removed_among_candidates": usability.removed,
        "items": limits,
    }
    return Selection(users, stats)


def _count_usable(
    source: ReviewSource, candidates: set[str], usability: _Usability, spec: SelectionSpec
) -> tuple[dict[str, list[str]], set[str], int]:
    # Lists, not sets: at most max_liked + 1 ids each, and a fifth of a set's memory.
    usable: dict[str, list[str]] = {}
    too_many: set[str] = set()
    most = 0
    for review in _stream(source, "select users"):
        user = review.user_id
        if user not in candidates:
            continue
        item_id = usability.item_of(review, count=True)
        if item_id is None or user in too_many:
            continue
        items = usable.setdefault(user, [])
        if item_id in items:
            continue
        items.append(item_id)
        most = max(most, len(items))
        if len(items) > spec.max_liked:
            too_many.add(user)
            del usable[user]
    return usable, too_many, most


def _fail_if_empty(
    funnel: dict,
    candidates: set[str],
    in_range: list[str],
    too_many: set[str],
    most_usable: int,
    spec: SelectionSpec,
    usability: _Usability,
) -> None:
    """Raise a DataError naming the filter that left no user (nothing if some are left)."""
    if in_range:
        return
    if not funnel["users"]:
        raise DataError("selection: the source has no reviews")
    if not candidates:
        raise DataError(
            f"selection: no user has at least data.selection.min_liked={spec.min_liked} reviews "
            f"({funnel['users']} users); lower min_liked"
        )
    if len(too_many) == len(candidates):
        raise DataError(
            f"selection: every candidate user has more than data.selection.max_liked={spec.max_liked} usable liked items; raise max_liked"
        )
    removed = ", ".join(f"{name}: {count}" for name, count in usability.removed.items())
    raise DataError(
        f"selection: no user has between data.selection.min_liked={spec.min_liked} and max_liked={spec.max_liked} "
        f"usable liked items (the most any user has is {most_usable}). Reviews of the {len(candidates)} candidate users "
        f"removed by each filter: {removed}. Lower min_liked, or relax category_blocklist / sentence_min_tokens / "
        "sentence_max_tokens."
    )


def _sample_items(
    kept: list[str], usable: dict[str, list[str]], spec: SelectionSpec
) -> tuple[dict[str, list[str]], dict]:
    """At most `max_items` of each kept user's usable items: a sample seeded by user, in sampled order."""
    chosen = {}
    limits = {"usable": 0, "over_max_items": 0, "over_max_tokens": 0, "shown": 0}
    for user in kept:
        items = sorted(usable[user])
        limits["usable"] += len(items)
        limits["over_max_items"] += max(0, len(items) - spec.max_items)
        chosen[user] = random.Random(f"{spec.seed}:{user}").sample(
            items, min(len(items), spec.max_items)
        )
    return chosen, limits


def _pick_sentences(
    source: ReviewSource,
    chosen: dict[str, list[str]],
    usability: _Usability,
    spec: SelectionSpec,
    review_sink: Callable[[Review], None] | None,
) -> dict[str, dict[str, ShownItem]]:
    """One sentence per chosen item, from the user's first usable review of it; every review of a
    kept user goes to `review_sink`."""
    picks: dict[str, dict[str, ShownItem]] = {user: {} for user in chosen}
    for review in _stream(source, "pick sentences"):
        user = review.user_id
        if user not in chosen:
            continue
        if review_sink is not None:
            review_sink(review)
        if review.item_id not in chosen[user] or review.item_id in picks[user]:
            continue
        item_id = usability.item_of(review, count=False)
        if item_id is None:
            continue
        candidates = qualifying_sentences(
            review.text,
            spec.sentence_min_tokens,
            spec.sentence_max_tokens,
            spec.sentence_candidates,
        )
        choice = random.Random(f"{spec.seed}:{user}:{item_id}").choice(candidates)
        picks[user][item_id] = ShownItem(item_id, choice, review.rating)
    return picks


def _within_token_budget(
    kept: list[str],
    chosen: dict[str, list[str]],
    picks: dict[str, dict[str, ShownItem]],
    spec: SelectionSpec,
    limits: dict,
) -> list[SelectedUser]:
    """The chosen items, halved while their sentences exceed `max_tokens` (the paper's rule)."""
    users = []
    for user in kept:
        items = [picks[user][item_id] for item_id in chosen[user]]
        while len(items) > 1 and sum(count_tokens(i.sentence) for i in items) > spec.max_tokens:
            half = len(items) // 2
            limits["over_max_tokens"] += len(items) - half
            items = items[:half]
        limits["shown"] += len(items)
        users.append(SelectedUser(user, split_of(user, spec.seed, spec.dev_fraction), items))
    users.sort(key=lambda u: u.user_id)
    return users

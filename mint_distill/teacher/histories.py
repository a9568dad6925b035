"""What the teacher is shown: a user's liked items with one review sentence each, and seed pairs.

Two files feed it: `data/users.jsonl` (see docs/pipeline.md; real users and, with catalog
adaptation, catalog pseudo-histories) and the hand-written seed file
(`recipes/seeds/*.jsonl`), whose records hold a real history plus the request written for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..io import numbered_jsonl

SPLITS = ("train", "dev")
ORIGINS = ("history", "catalog")


@dataclass(frozen=True)
class ShownItem:
    """One liked item as the teacher sees it, with the attributes a request prefix is made of.

    Review-only sources (Amazon 2014 5-core) carry no item names: such an item is shown by its
    id, as the hand-written Amazon seeds show theirs.
    """

    name: str | None
    city: str | None
    sentence: str
    item_id: str | None = None
    country: str | None = None
    main_category: str | None = None
    sub_categories: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """What the prompt lists the item as: its name, else its id."""
        return self.name or self.item_id


@dataclass(frozen=True)
class History:
    """A user (or a catalog pseudo-history) and the items shown to the teacher, in shown order.

    `origin` is `history` for a real user's liked items and `catalog` for a pseudo-history
    sampled from the catalog (docs/pipeline.md).
    """

    user_id: str
    items: tuple[ShownItem, ...]
    split: str = "train"
    origin: str = "history"


@dataclass(frozen=True)
class Seed:
    """A hand-written example: a real history and the narrative request written for it."""

    seed_id: str
    split: str
    source: str
    history: History
    request: str


def load_users(path: str | Path) -> list[History]:
    """Read `users.jsonl`; a record without the fields the teacher needs names its file and line."""
    return [_history(record, where) for record, where in _records(Path(path))]


def load_seeds(path: str | Path) -> list[Seed]:
    """Read a seed file (`seed_id, split, source, user_id, items, request`), checking every record."""
    path = Path(path)
    seeds, seen = [], set()
    for record, where in _records(path):
        for key in ("seed_id", "split", "source", "request"):
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise DataError(f"{where}: seed field `{key}` is missing or empty")
        if record["split"] not in SPLITS:
            raise DataError(
                f"{where}: seed `split` must be one of {', '.join(SPLITS)}, got {record['split']!r}"
            )
        if record["seed_id"] in seen:
            raise DataError(f"{where}: seed_id {record['seed_id']!r} appears twice")
        seen.add(record["seed_id"])
        seeds.append(
            Seed(
                record["seed_id"],
                record["split"],
                record["source"],
                _history(record, where),
                record["request"].strip(),
            )
        )
    if not seeds:
        raise DataError(f"{path}: the seed file has no records")
    return seeds


def _records(path: Path):
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    for number, record in numbered_jsonl(path):
        yield record, f"{path}:{number}"


def _history(record: dict, where: str) -> History:
    user_id = record.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise DataError(f"{where}: field `user_id` is missing or empty")
    raw_items = record.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise DataError(f"{where}: field `items` must be a non-empty list")
    items = []
    for index, item in enumerate(raw_items):
        if not isinstance(item, dict):
            raise DataError(f"{where}: items[{index}] must be an object")
        if not isinstance(item.get("sentence"), str) or not item["sentence"].strip():
            raise DataError(f"{where}: items[{index}].sentence is missing or empty")
        name = _optional_text(item, "name")
        item_id = item.get("item_id")
        if name is None and item_id in (None, ""):
            raise DataError(f"{where}: items[{index}] needs a `name` or an `item_id`")
        subs = item.get("sub_categories") or []
        if not isinstance(subs, list) or not all(isinstance(s, str) for s in subs):
            raise DataError(f"{where}: items[{index}].sub_categories must be a list of strings")
        items.append(
            ShownItem(
                name=name,
                city=_optional_text(item, "city"),
                sentence=" ".join(item["sentence"].split()),
                item_id=str(item_id) if item_id is not None else None,
                country=_optional_text(item, "country"),
                main_category=_optional_text(item, "main_category"),
                sub_categories=tuple(s.strip() for s in subs if s.strip()),
            )
        )
    split = record.get("split", "train")
    if split not in SPLITS:
        raise DataError(f"{where}: field `split` must be one of {', '.join(SPLITS)}, got {split!r}")
    origin = record.get("origin", "history")
    if origin not in ORIGINS:
        raise DataError(
            f"{where}: field `origin` must be one of {', '.join(ORIGINS)}, got {origin!r}"
        )
    return History(user_id=user_id, items=tuple(items), split=split, origin=origin)


def _optional_text(record: dict, key: str) -> str | None:
    value = record.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None

"""What the students learn from: the filter's kept pairs joined with request and item text."""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..io import numbered_jsonl

log = logging.getLogger(__name__)

PAIRS_FILE = "pairs.jsonl"
REQUESTS_FILE = "requests.jsonl"
ITEMS_FILE = "items.jsonl"
NEGATIVES_FILE = "negatives.jsonl"
DEV_RANKINGS_FILE = "dev_rankings.jsonl"
MODEL_DIR = "model"  # the folder in each student stage's output that holds its model


@dataclass(frozen=True)
class Pair:
    """A synthetic request and one item the filter kept as its positive."""

    request_id: str
    item_id: str


@dataclass
class StudentData:
    """Kept pairs by split, with the text of every request and catalog item they use.

    `shown` maps each request to every item of its user that any request showed the teacher:
    those are never used as negatives for that request (they may well be relevant).
    """

    requests: dict[str, str]
    items: dict[str, str]
    train: list[Pair]
    dev: list[Pair]
    shown: dict[str, frozenset[str]]
    skipped: Counter = field(default_factory=Counter)

    def positives(self, split: str) -> dict[str, list[str]]:
        """Request id -> its kept items, for `train` or `dev`, in file order."""
        grouped: dict[str, list[str]] = defaultdict(list)
        for pair in self.train if split == "train" else self.dev:
            grouped[pair.request_id].append(pair.item_id)
        return dict(grouped)

    def counts(self) -> dict[str, int]:
        """Summary counts for manifests and model cards (skipped records included)."""
        counts = {
            "train_pairs": len(self.train),
            "train_requests": len({p.request_id for p in self.train}),
            "dev_pairs": len(self.dev),
            "dev_requests": len({p.request_id for p in self.dev}),
            "catalog_items": len(self.items),
        }
        counts.update({f"skipped_{reason}": n for reason, n in sorted(self.skipped.items())})
        return counts


def field_of(record: dict, key: str, path: Path, number: int, kind: type = str):
    value = record.get(key)
    if not isinstance(value, kind):
        raise DataError(f"{path}:{number}: field `{key}` must be a {kind.__name__}, got {value!r}")
    return value


def load_texts(path: str | os.PathLike, id_key: str, text_key: str) -> dict[str, str]:
    """id -> text from a JSON lines file (`items.jsonl`: item_id/text, `requests.jsonl`: request_id/request)."""
    path = Path(path)
    texts: dict[str, str] = {}
    for number, record in numbered_jsonl(path):
        texts[field_of(record, id_key, path, number)] = field_of(record, text_key, path, number)
    return texts


def load_item_cities(path: str | os.PathLike) -> dict[str, tuple[str, str, str]]:
    """item id -> (country, region, city) from `items.jsonl`, for items whose record names a city."""
    path = Path(path)
    places: dict[str, tuple[str, str, str]] = {}
    for number, record in numbered_jsonl(path):
        city = record.get("city")
        if isinstance(city, str) and city.strip():
            item_id = field_of(record, "item_id", path, number)
            country, region = (str(record.get(key) or "") for key in ("country", "region"))
            places[item_id] = (country, region, city)
    return places


def load_student_data(
    pairs: str | os.PathLike, requests: str | os.PathLike, items: str | os.PathLike
) -> StudentData:
    """Read `filter/pairs.jsonl`, `generate/requests.jsonl` and `data/items.jsonl` (docs/pipeline.md).

    Kept pairs of `train` requests train the students and those of `dev` requests select the
    model. A kept pair whose request or item text is missing or empty is skipped and counted
    under `skipped_*` rather than dropped silently.
    """
    pairs_path = Path(pairs)
    request_texts = load_texts(requests, "request_id", "request")
    item_texts = load_texts(items, "item_id", "text")
    splits: dict[str, list[Pair]] = {"train": [], "dev": []}
    shown_by_user: dict[str, set[str]] = defaultdict(set)
    user_of: dict[str, str] = {}
    skipped: Counter = Counter()
    seen: set[tuple[str, str]] = set()
    for number, record in numbered_jsonl(pairs_path):
        request_id = field_of(record, "request_id", pairs_path, number)
        item_id = field_of(record, "item_id", pairs_path, number)
        user_id = field_of(record, "user_id", pairs_path, number)
        split = field_of(record, "split", pairs_path, number)
        kept = field_of(record, "kept", pairs_path, number, bool)
        if split not in splits:
            raise DataError(
                f"{pairs_path}:{number}: `split` must be `train` or `dev`, got {split!r}"
            )
        shown_by_user[user_id].add(item_id)
        user_of[request_id] = user_id
        if not kept:
            continue
        if (request_id, item_id) in seen:
            skipped["duplicate_pairs"] += 1
            continue
        seen.add((request_id, item_id))
        if not request_texts.get(request_id, "").strip():
            skipped["pairs_without_request_text"] += 1
            continue
        if not item_texts.get(item_id, "").strip():
            skipped["pairs_without_item_text"] += 1
            continue
        splits[split].append(Pair(request_id, item_id))
    if skipped:
        log.warning(
            "skipped kept pairs: %s", ", ".join(f"{n} {reason}" for reason, n in skipped.items())
        )
    if not splits["train"]:
        raise DataError(
            f"{pairs_path}: no kept pairs of `train` requests with request and item text"
        )
    shown = {request_id: frozenset(shown_by_user[user]) for request_id, user in user_of.items()}
    return StudentData(request_texts, item_texts, splits["train"], splits["dev"], shown, skipped)


@dataclass(frozen=True)
class NegativeGroup:
    """A kept pair with the negatives mined for it: the cross-encoder's listwise example."""

    request_id: str
    item_id: str
    negatives: tuple[str, ...]


def load_negatives(path: str | os.PathLike, data: StudentData) -> dict[str, list[NegativeGroup]]:
    """`mine-negatives/negatives.jsonl` split into `train` and `dev` groups (by the pair's split)."""
    path = Path(path)
    split_of = {(p.request_id, p.item_id): "train" for p in data.train}
    split_of.update({(p.request_id, p.item_id): "dev" for p in data.dev})
    groups: dict[str, list[NegativeGroup]] = {"train": [], "dev": []}
    for number, record in numbered_jsonl(path):
        request_id = field_of(record, "request_id", path, number)
        item_id = field_of(record, "item_id", path, number)
        negatives = field_of(record, "negatives", path, number, list)
        split = split_of.get((request_id, item_id))
        if split is None:
            data.skipped["negative_groups_not_in_pairs"] += 1
            continue
        unknown = [n for n in negatives if n not in data.items]
        if unknown:
            raise DataError(
                f"{path}:{number}: negatives not in the catalog: {', '.join(map(str, unknown[:5]))}"
            )
        if not negatives:
            data.skipped["pairs_without_negatives"] += 1
            continue
        groups[split].append(NegativeGroup(request_id, item_id, tuple(negatives)))
    return groups


def load_dev_rankings(path: str | os.PathLike, data: StudentData) -> dict[str, list[tuple[str, float]]]:
    """`mine-negatives/dev_rankings.jsonl`: dev request id -> the bi-encoder's (item id, score) ranking."""
    path = Path(path)
    dev_requests = {pair.request_id for pair in data.dev}
    rankings: dict[str, list[tuple[str, float]]] = {}
    for number, record in numbered_jsonl(path):
        request_id = field_of(record, "request_id", path, number)
        ranking = field_of(record, "ranking", path, number, list)
        scores = field_of(record, "scores", path, number, list)
        if request_id not in dev_requests:
            data.skipped["rankings_not_of_dev_requests"] += 1
            continue
        if len(scores) != len(ranking) or not all(isinstance(x, (int, float)) for x in scores):
            raise DataError(f"{path}:{number}: `scores` must hold one number per ranked item")
        unknown = [item for item in ranking if item not in data.items]
        if unknown:
            raise DataError(
                f"{path}:{number}: ranked items not in the catalog: {', '.join(map(str, unknown[:5]))}"
            )
        rankings[request_id] = list(zip(ranking, map(float, scores)))
    return rankings

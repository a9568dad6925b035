"""Catalog adaptation: pseudo-histories of items sharing city and category, beside real users' histories.

Mint's teacher sees what a user liked and writes the request that user might post. Here it is
also shown `items_per_history` items of the target catalog that share the `group_by`
attributes (e.g. five restaurants in Lisbon), so its requests, and the students trained on
them, are grounded in the catalog that will be searched. See `CatalogSpec` for the keys and
the count formula; `docs/pipeline.md` for the records.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..recipe.sections.data import DataSection
from .catalog import ItemCatalog
from .catalog_entries import CatalogEntry, pointrec_entries, training_entries
from .selection import split_of

GroupKey = tuple[str | None, ...]
USER_PREFIX = "catalog:"


@dataclass
class CatalogHistories:
    """The data stage's catalog part: `users.jsonl` and `items.jsonl` records to add, and counts."""

    users: list[dict]
    items: list[dict]
    stats: dict
    keep_user_histories: bool


def catalog_history_count(
    user_histories: int, fraction: float, max_histories: int | None, available: int
) -> int:
    """How many catalog histories to write (the formula of `CatalogSpec`)."""
    if fraction >= 1.0:
        wanted = available
    else:
        wanted = round(user_histories * fraction / (1.0 - fraction))
    if max_histories is not None:
        wanted = min(wanted, max_histories)
    return min(wanted, available)


def group_entries(
    entries: Sequence[CatalogEntry], group_by: Sequence[str]
) -> dict[GroupKey, list[CatalogEntry]]:
    """Entries by the values of their `group_by` attributes (a missing value is a value too)."""
    groups: dict[GroupKey, list[CatalogEntry]] = {}
    for entry in entries:
        groups.setdefault(tuple(entry.attribute(name) for name in group_by), []).append(entry)
    return groups


History = tuple[GroupKey, tuple[CatalogEntry, ...]]
Encode = Callable[[list[str]], np.ndarray]


def disjoint_histories(
    groups: dict[GroupKey, list[CatalogEntry]], items_per_history: int, seed: int
) -> list[History]:
    """Every group's items, shuffled and cut into histories of `items_per_history` (the rest of a
    group is left over), then all histories shuffled: a seeded order that does not depend on the
    order the catalog was read in. Each item is in at most one history."""
    histories = []
    for key, members in _seeded_groups(groups, items_per_history, seed):
        for start in range(0, len(members) - items_per_history + 1, items_per_history):
            histories.append((key, tuple(members[start : start + items_per_history])))
    random.Random(f"{seed}:histories").shuffle(histories)
    return histories


def similar_histories(
    groups: dict[GroupKey, list[CatalogEntry]], items_per_history: int, seed: int, encode: Encode
) -> list[History]:
    """As `disjoint_histories` (the same number per group, the same seeded orders), but each
    history is the group's next unused item and its `items_per_history - 1` nearest unused
    neighbours by the cosine of their `encode`d texts: items that share a theme."""
    seeded = _seeded_groups(groups, items_per_history, seed)
    if not seeded:
        return []  # nothing to encode; the caller says which key to change
    every = encode([entry.text for _, members in seeded for entry in members])
    every = every / np.maximum(np.linalg.norm(every, axis=1, keepdims=True), 1e-12)
    histories, offset = [], 0
    for key, members in seeded:
        vectors, offset = every[offset : offset + len(members)], offset + len(members)
        unused = list(range(len(members)))
        while len(unused) >= items_per_history:
            anchor, others = unused[0], np.array(unused[1:], dtype=np.intp)
            nearest = others[np.argsort(-(vectors[others] @ vectors[anchor]), kind="stable")]
            chosen = [anchor, *nearest[: items_per_history - 1].tolist()]
            histories.append((key, tuple(members[i] for i in chosen)))
            unused = [i for i in unused if i not in chosen]
    random.Random(f"{seed}:histories").shuffle(histories)
    return histories


def _seeded_groups(
    groups: dict[GroupKey, list[CatalogEntry]], items_per_history: int, seed: int
) -> list[tuple[GroupKey, list[CatalogEntry]]]:
    """The groups that can fill a history, in key order, each one's items in a seeded order."""
    ordered = []
    for key in sorted(groups, key=_sortable):
        if len(groups[key]) < items_per_history:
            continue
        members = sorted(groups[key], key=lambda entry: entry.item_id)
        random.Random(f"{seed}:group:{_sortable(key)}").shuffle(members)
        ordered.append((key, members))
    return ordered


def _sortable(key: GroupKey) -> tuple[str, ...]:
    return tuple("" if value is None else value for value in key)


def build_catalog_histories(
    section: DataSection,
    training_catalog: ItemCatalog,
    user_histories: int,
    fetch: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> CatalogHistories:
    """Sample the pseudo-histories `section.catalog` asks for, given `user_histories` selected users.

    With `similar_by`, item vectors are cached under `cache_dir` (None: not kept)."""
    spec = section.catalog
    dev_items = _dev_items(spec.dev_request_files)
    if spec.source == "test":
        entries, counts = _test_entries(section, fetch)
        new_items = True
    else:
        entries, counts = training_entries(training_catalog, section.item_text, section.selection)
        new_items = False
    groups = group_entries(entries, spec.group_by)
    if spec.similar_by is None:
        sampled = disjoint_histories(groups, spec.items_per_history, spec.seed)
    else:
        from ..evaluation.rankers.dense import DenseRanker

        encoder = DenseRanker(spec.similar_by, cache_dir=cache_dir)
        sampled = similar_histories(groups, spec.items_per_history, spec.seed, encoder.encode_items)
    # Dropped after sampling, so that the histories left are the ones drawn without a dev file.
    candidates = [h for h in sampled if not any(entry.item_id in dev_items for entry in h[1])]
    if not candidates and spec.fraction > 0:
        raise DataError(
            f"data.catalog: no group of {spec.source} catalog items sharing "
            f"{', '.join(spec.group_by) or 'nothing'} holds items_per_history="
            f"{spec.items_per_history} items ({len(entries)} eligible items in {len(groups)} "
            "groups); lower data.catalog.items_per_history or group by fewer attributes"
        )
    count = catalog_history_count(
        user_histories, spec.fraction, spec.max_histories, len(candidates)
    )
    users, items = [], {}
    for number, (key, members) in enumerate(candidates[:count], start=1):
        user_id = f"{USER_PREFIX}{number:05d}"
        users.append(
            {
                "user_id": user_id,
                "split": split_of(user_id, section.selection.seed, section.selection.dev_fraction),
                "origin": "catalog",
                "group": dict(zip(spec.group_by, key)),
                "items": [entry.shown_record() for entry in members],
            }
        )
        if new_items:
            items.update((entry.item_id, entry.item_record()) for entry in members)
    keep_users = spec.fraction < 1.0
    stats = {
        "source": spec.source,
        "group_by": list(spec.group_by),
        # only when set: the stats of runs made before the key existed stay byte for byte
        **({"similar_by": spec.similar_by} if spec.similar_by else {}),
        "items_per_history": spec.items_per_history,
        "fraction": spec.fraction,
        **counts,
        "groups": len(groups),
        "groups_too_small": sum(1 for m in groups.values() if len(m) < spec.items_per_history),
        "dev_request_items": len(dev_items),
        "histories_with_dev_items": len(sampled) - len(candidates),
        "histories_available": len(candidates),
        "histories": len(users),
        "train": sum(1 for user in users if user["split"] == "train"),
        "dev": sum(1 for user in users if user["split"] == "dev"),
        "items_shown": sum(len(user["items"]) for user in users),
        "items_added": len(items),
        "user_histories_dropped": 0 if keep_users else user_histories,
    }
    return CatalogHistories(users, list(items.values()), stats, keep_users)


def _dev_items(dev_request_files: list[str]) -> set[str]:
    from .dev_requests import dev_item_ids, read_dev_request_files

    return dev_item_ids(read_dev_request_files(dev_request_files))


def check_dev_requests(section: DataSection, fetch: bool = True) -> None:
    """Refuse dev requests (`data.catalog.dev_requests`) that are malformed or grade an item the
    test catalog lacks. A missing test collection is fetched first with `fetch`; without, only
    the files are read."""
    from .dev_requests import check_graded_items, read_dev_request_files
    from .download import POINTREC, ensure_dataset
    from .poi_catalog import load_poi_catalog

    read_dev_request_files(section.catalog.dev_request_files)
    folder = collection_folder(section)
    if fetch:
        ensure_dataset(POINTREC, folder, download=section.test.download, key="data.test")
    if POINTREC.present_in(folder):
        check_graded_items(section.catalog.dev_request_files, load_poi_catalog(folder))


def _test_entries(section: DataSection, fetch: bool) -> tuple[list[CatalogEntry], dict]:
    from .download import POINTREC, ensure_dataset
    from .poi_catalog import load_poi_catalog
    from .pointrec import qrels_file, read_judged_ids

    folder = collection_folder(section)
    if fetch:
        ensure_dataset(POINTREC, folder, download=section.test.download, key="data.test")
    judged = read_judged_ids(qrels_file(folder)) if section.catalog.exclude_judged else set()
    return pointrec_entries(load_poi_catalog(folder), section.test, section.selection, judged)


def collection_folder(section: DataSection) -> Path:
    """The test collection's folder (`data.data_dir` / `data.test.path`)."""
    from .paths import data_dir, under

    return under(data_dir(section.data_dir), section.test.path)


def catalog_input_files(section: DataSection) -> list[Path]:
    """The files catalog histories are read from: the dev requests (their items are
    left out), the POI catalog and the qrels (ids only)."""
    spec = section.catalog
    if not spec.enabled or spec.source != "test":
        return []
    from .poi_catalog import catalog_location
    from .pointrec import qrels_file

    folder = collection_folder(section)
    files: list[Path] = []
    files.extend(Path(path) for path in spec.dev_request_files if Path(path).is_file())
    try:
        location = catalog_location(folder)
        files.extend(sorted(location.rglob("*.json")) if location.is_dir() else [location])
        if spec.exclude_judged:
            files.append(qrels_file(folder))
    except DataError:
        pass  # not there yet: fetched when the stage runs, or reported by the stage's check
    return files

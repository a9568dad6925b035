"""Catalogs to recommend from: a JSON lines file of {item_id, text}, or the POIs of a Pointrec city."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..io import numbered_jsonl, sha256_json


@dataclass
class Catalog:
    """Items in a fixed order; `sha256` identifies ids and texts (not where they came from)."""

    name: str
    ids: list[str]
    texts: list[str]
    names: list[str | None]
    index_home: Path = field(repr=False)
    skipped: int = 0

    @property
    def sha256(self) -> str:
        return sha256_json([self.ids, self.texts])

    def __len__(self) -> int:
        return len(self.ids)


def read_jsonl_catalog(path: str | os.PathLike) -> Catalog:
    """Items from JSON lines with `item_id` and `text` (and optionally `name`), e.g. data/items.jsonl.

    A line that is not JSON, or lacks an item id (a non-empty string or an integer) or text, is an
    error naming the file and line.
    A repeated item id is an error too (which text would be meant is unclear).
    Its index lives beside it, in the hidden folder `.<file name>.index/`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"catalog file not found: {path}")
    ids: list[str] = []
    texts: list[str] = []
    names: list[str | None] = []
    seen: dict[str, int] = {}
    for number, record in numbered_jsonl(path):
        item_id, text = record.get("item_id"), record.get("text")
        if item_id is None or not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}:{number}: needs `item_id` and a non-empty `text`")
        if isinstance(item_id, bool) or not isinstance(item_id, (str, int)) or not str(item_id).strip():
            raise DataError(f"{path}:{number}: `item_id` must be a non-empty string or an integer, not {json.dumps(item_id)}")
        item_id = str(item_id)
        if item_id in seen:
            raise DataError(f"{path}:{number}: item_id `{item_id}` already on line {seen[item_id]}")
        seen[item_id] = number
        ids.append(item_id)
        texts.append(text)
        names.append(record.get("name"))
    if not ids:
        raise DataError(f"{path}: no items")
    return Catalog(name=str(path), ids=ids, texts=texts, names=names, index_home=path.parent / f".{path.name}.index")


def pointrec_city_catalog(city: str, data_dir: str | os.PathLike, spec=None) -> Catalog:
    """Every Pointrec POI with a record in `city` (and the catalog cities it stands for, e.g.
    Tokyo -> Tokyo, Yokohama, Minato...), with the POI text the evaluation uses.

    `spec` is a `data.test` section (default: its defaults). The index lives under
    $MINT_DISTILL_HOME/indexes/, never inside the data folder.
    """
    from ..data import load_test_collection
    from ..models.cache import home
    from ..recipe.sections.data import TestCollectionSpec

    if not city.strip():
        raise DataError("the Pointrec city name is empty (--pointrec-city)")
    # `data_dir` is recommend's --data-dir: errors name that option
    collection = load_test_collection(spec or TestCollectionSpec(), Path(data_dir), "--data-dir (or MINT_DISTILL_DATA_DIR)")
    wanted = set(collection.catalog_cities(city))
    catalog = collection.catalog
    ids, texts, names = [], [], []
    ids_seen: set[str] = set()
    skipped = 0
    for poi_id, poi_city, name in zip(
        catalog.column("poi_id"), catalog.column("city"), catalog.column("name"), strict=True
    ):
        if poi_city not in wanted or poi_id in ids_seen:
            continue
        ids_seen.add(poi_id)
        text = collection.item_text(poi_id)
        if text is None:
            skipped += 1
            continue
        ids.append(poi_id)
        texts.append(text)
        names.append(name)
    if not ids:
        raise DataError(
            f"Pointrec has no POI records for city `{city}` (catalog cities searched: {', '.join(sorted(wanted))})"
        )
    slug = re.sub(r"[^a-z0-9]+", "-", city.lower()).strip("-")
    return Catalog(
        name=f"Pointrec {city}",
        ids=ids,
        texts=texts,
        names=names,
        index_home=home() / "indexes" / f"pointrec-{slug}",
        skipped=skipped,
    )

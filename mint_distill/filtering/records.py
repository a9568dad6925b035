"""Read the filter's inputs (`generate/requests.jsonl`, `data/items.jsonl`), naming file and line on bad data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..io import numbered_jsonl


@dataclass(frozen=True)
class SyntheticRequest:
    """One teacher-written request and the items the teacher was shown, in shown order."""

    request_id: str
    user_id: str
    split: str
    text: str
    item_ids: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class CatalogItem:
    item_id: str
    name: str
    text: str


def _field(record: dict, key: str, kind: type, path: Path, number: int):
    value = record.get(key)
    if not isinstance(value, kind):
        raise DataError(f"{path}:{number}: field `{key}` must be a {kind.__name__}, got {value!r:.80}")
    return value


def read_requests(path: Path) -> list[SyntheticRequest]:
    """The requests of `requests.jsonl`, in file order; request ids must be unique."""
    requests, seen = [], {}
    for number, record in numbered_jsonl(path):
        request_id = _field(record, "request_id", str, path, number)
        if request_id in seen:
            raise DataError(f"{path}:{number}: request_id `{request_id}` repeats line {seen[request_id]}")
        seen[request_id] = number
        item_ids = _field(record, "item_ids", list, path, number)
        if not all(isinstance(item_id, str) for item_id in item_ids):
            raise DataError(f"{path}:{number}: `item_ids` must be a list of strings")
        if len(set(item_ids)) != len(item_ids):
            raise DataError(f"{path}:{number}: `item_ids` lists an item twice")
        requests.append(SyntheticRequest(
            request_id=request_id,
            user_id=_field(record, "user_id", str, path, number),
            split=_field(record, "split", str, path, number),
            text=_field(record, "request", str, path, number),
            item_ids=tuple(item_ids),
            line=number,
        ))
    return requests


def read_items(path: Path) -> dict[str, CatalogItem]:
    """The catalog of `items.jsonl` by item id."""
    items: dict[str, CatalogItem] = {}
    for number, record in numbered_jsonl(path):
        item_id = _field(record, "item_id", str, path, number)
        items[item_id] = CatalogItem(item_id, str(record.get("name") or ""), _field(record, "text", str, path, number))
    return items


def check_items_known(requests: list[SyntheticRequest], items: dict[str, CatalogItem], requests_path: Path, items_path: Path) -> None:
    """Raise a DataError at the first request that names an item the catalog does not have."""
    for request in requests:
        for item_id in request.item_ids:
            if item_id not in items:
                raise DataError(f"{requests_path}:{request.line}: item `{item_id}` is not in {items_path}")

"""Requests from command-line arguments, a file, or standard input."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import DataError
from ..io import text_lines

ID_KEYS = ("request_id", "qid", "id")
TEXT_KEYS = ("request", "text", "query")


def numbered(texts: Iterable[str], prefix: str = "r") -> list[tuple[str, str]]:
    pairs = [(f"{prefix}{number}", text) for number, text in enumerate(texts, start=1)]
    for request_id, text in pairs:
        if not text.strip():
            raise DataError(f"request {request_id} is empty")
    return pairs


def parse_request_lines(
    lines: Iterable[str], source: str, before: list[tuple[str, str]] = ()
) -> list[tuple[str, str]]:
    """Plain text (one request per line) or JSON lines with `request`/`text` and optional `request_id`/`qid`.

    Requests without an id are numbered on from `before` (the requests already given, e.g. as
    arguments); an id that is already taken is an error, as two rankings under one TREC qid merge.
    """
    requests: list[tuple[str, str]] = []
    taken = {request_id for request_id, _ in before}
    try:
        for number, line in enumerate(lines, start=1):
            line = line.strip()
            if not line:
                continue
            request_id, text = _request(line, source, number, f"r{len(before) + len(requests) + 1}")
            if request_id in taken:
                raise DataError(f"{source}, line {number}: request id {request_id!r} is already taken")
            taken.add(request_id)
            requests.append((request_id, text))
    except UnicodeDecodeError as error:  # a text stream decodes ahead of the line it yields
        raise DataError(f"{source}: not UTF-8 text ({error.reason})") from None
    return requests


def _request(line: str, source: str, number: int, default_id: str) -> tuple[str, str]:
    if not line.startswith("{"):
        return default_id, line
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{source}, line {number}: not valid JSON ({error.msg})") from None
    text = next((record[key] for key in TEXT_KEYS if isinstance(record.get(key), str)), None)
    if not (text and text.strip()):
        raise DataError(f"{source}, line {number}: no request text (one of: {', '.join(TEXT_KEYS)})")
    return next((str(record[key]) for key in ID_KEYS if record.get(key) is not None), default_id), text


def read_request_file(path: str | os.PathLike, before: list[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """The requests of a file (see `parse_request_lines`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"request file not found: {path}")
    return parse_request_lines((line for _, line in text_lines(path)), str(path), before)

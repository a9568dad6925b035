"""Requests from command-line arguments, a file, or standard input."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import DataError

ID_KEYS = ("request_id", "qid", "id")
TEXT_KEYS = ("request", "text", "query")


def numbered(texts: Iterable[str], prefix: str = "r") -> list[tuple[str, str]]:
    return [(f"{prefix}{number}", text) for number, text in enumerate(texts, start=1)]


def parse_request_lines(lines: Iterable[str], source: str) -> list[tuple[str, str]]:
    """Plain text (one request per line) or JSON lines with `request`/`text` and optional `request_id`/`qid`."""
    requests: list[tuple[str, str]] = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        if not line.startswith("{"):
            requests.append((f"r{len(requests) + 1}", line))
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{source}, line {number}: not valid JSON ({error.msg})") from None
        text = next((record[key] for key in TEXT_KEYS if isinstance(record.get(key), str)), None)
        if not text:
            raise DataError(f"{source}, line {number}: no request text (one of: {', '.join(TEXT_KEYS)})")
        request_id = next((str(record[key]) for key in ID_KEYS if record.get(key) is not None), f"r{len(requests) + 1}")
        requests.append((request_id, text))
    return requests


def read_request_file(path: str | os.PathLike) -> list[tuple[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"request file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        return parse_request_lines(handle, str(path))

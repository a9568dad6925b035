"""Streaming readers for JSON lines and CSV files that count, and never hide, what they skip.

Files are read as bytes in chunks and split into physical lines here (\\n, \\r\\n or a lone \\r,
so old Mac-style CSVs work), so memory stays flat however large the file is. Each line is
decoded as UTF-8; undecodable bytes are replaced with U+FFFD and counted. `.gz` files are
decompressed on the fly.
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
import math
import os
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from ..errors import DataError

BadRowPolicy = Literal["skip", "fail"]
MAX_EXAMPLES = 5
_CHUNK = 1 << 18


@dataclass
class ReadReport:
    """What reading one source saw: rows, skipped rows (with the first few locations), repairs."""

    rows: int = 0
    bad_rows: int = 0
    bad_row_examples: list[str] = field(default_factory=list)
    missing_fields: Counter = field(default_factory=Counter)
    rows_missing_fields: int = 0
    undecodable_lines: int = 0
    replaced_characters: int = 0
    unparseable_ratings: int = 0

    def bad_row(self, path: Path, line: int, problem: str, policy: BadRowPolicy) -> None:
        """Record a malformed row; raise DataError at once under policy `fail`."""
        where = f"{path}:{line}: {problem}"
        if policy == "fail":
            raise DataError(
                f"malformed row at {where} (set data.source.on_bad_row: skip to count and skip such rows)"
            )
        self.bad_rows += 1
        if len(self.bad_row_examples) < MAX_EXAMPLES:
            self.bad_row_examples.append(where)

    def missing(self, names: list[str]) -> None:
        """Record a row skipped because required fields are empty (each field counted)."""
        self.rows_missing_fields += 1
        self.missing_fields.update(names)

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "bad_rows": self.bad_rows,
            "bad_row_examples": list(self.bad_row_examples),
            "rows_missing_fields": self.rows_missing_fields,
            "missing_fields": dict(sorted(self.missing_fields.items())),
            "undecodable_lines": self.undecodable_lines,
            "replaced_characters": self.replaced_characters,
            "unparseable_ratings": self.unparseable_ratings,
        }


@contextmanager
def open_binary(path: Path) -> Iterator[tuple[BinaryIO, Callable[[], int]]]:
    """Open a file for binary reading, decompressing `.gz`; yields (stream, bytes read on disk so far)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with open(path, "rb") as raw:
        try:
            yield (gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw), raw.tell
        except (OSError, EOFError, zlib.error) as error:  # a corrupt or truncated .gz
            raise DataError(f"{path}: cannot read the file ({error})") from None


def binary_lines(stream: BinaryIO) -> Iterator[bytes]:
    """Physical lines of a byte stream, terminators kept; \\n, \\r\\n and a lone \\r all end a line."""
    pending = b""
    while chunk := stream.read(_CHUNK):
        lines = (pending + chunk).splitlines(keepends=True)
        # The last piece may be cut mid-line, or be a \r whose \n starts the next chunk.
        pending = lines.pop()
        if pending.endswith(b"\n"):
            lines.append(pending)
            pending = b""
        yield from lines
    if pending:
        yield pending


def decoded_lines(
    path: Path, report: ReadReport, position: list[int] | None = None
) -> Iterator[tuple[int, str]]:
    """(line number from 1, text) of a file; bad UTF-8 is replaced and counted in `report`.

    If `position` is given, its single element is kept at the bytes consumed on disk.
    """
    with open_binary(path) as (stream, where):
        for number, line in enumerate(binary_lines(stream), start=1):
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                text = line.decode("utf-8", "replace")
                report.undecodable_lines += 1
                report.replaced_characters += text.count("\ufffd") - line.count("\ufffd".encode())
            if position is not None:
                position[0] = where()
            yield number, text


def iter_jsonl(
    path: Path,
    report: ReadReport,
    policy: BadRowPolicy,
    position: list[int] | None = None,
    python_literals: bool = False,
) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each JSON object line; malformed lines are counted and reported.

    `python_literals` also accepts Python dict literals (Amazon's 2014 metadata files use them),
    parsed with `ast.literal_eval`, which evaluates literals only.
    """
    for number, text in decoded_lines(path, report, position):
        if not text.strip():
            continue
        report.rows += 1
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            record = _python_literal(text) if python_literals else None
            if record is None:
                report.bad_row(
                    path, number, f"not valid JSON ({error.msg} at column {error.colno})", policy
                )
                continue
        if not isinstance(record, dict):
            report.bad_row(
                path, number, f"expected a JSON object, got {type(record).__name__}", policy
            )
            continue
        yield number, record


def _python_literal(text: str) -> object:
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def iter_csv(
    path: Path,
    report: ReadReport,
    policy: BadRowPolicy,
    required_columns: list[str],
    position: list[int] | None = None,
) -> Iterator[tuple[int, dict]]:
    """(first line number, row dict) for each CSV row; rows with the wrong number of fields are bad rows.

    Raises DataError naming the file and column when a required column is not in the header.
    """
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    lines = decoded_lines(path, report, position)
    tracker = _LineTracker(lines)
    reader = csv.reader(tracker, delimiter="\t" if _is_tsv(path) else ",")
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: empty file (expected a CSV header)") from None
    except csv.Error as error:
        raise DataError(f"{path}:1: cannot read the CSV header ({error})") from None
    header = [name.strip() for name in header]
    absent = [name for name in required_columns if name not in header]
    if absent:
        raise DataError(
            f"{path}: column(s) {', '.join(repr(a) for a in absent)} not in the CSV header; "
            f"the header has: {', '.join(header)}"
        )
    while True:
        start = tracker.line + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            report.rows += 1
            report.bad_row(path, start, f"unreadable CSV row ({error})", policy)
            continue
        if not fields or fields == [""]:
            continue
        report.rows += 1
        if len(fields) != len(header):
            report.bad_row(
                path, start, f"{len(fields)} fields where the header has {len(header)}", policy
            )
            continue
        yield start, dict(zip(header, fields))


class _LineTracker:
    """Feeds decoded lines to csv.reader and remembers the last physical line number it handed out."""

    def __init__(self, lines: Iterator[tuple[int, str]]):
        self._lines = lines
        self.line = 0

    def __iter__(self) -> _LineTracker:
        return self

    def __next__(self) -> str:
        self.line, text = next(self._lines)
        return text


def _is_tsv(path: Path) -> bool:
    return [s.lower() for s in path.suffixes if s.lower() != ".gz"][-1:] == [".tsv"]


def table_format(path: Path) -> Literal["csv", "jsonl"]:
    """`csv` (.csv, or tab-separated .tsv) or `jsonl` from the file name (a trailing .gz is ignored)."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    last = suffixes[-1] if suffixes else ""
    if last in (".csv", ".tsv"):
        return "csv"
    if last in (".json", ".jsonl", ".ndjson"):
        return "jsonl"
    raise DataError(
        f"{path}: cannot tell the format from the name; use .csv, .json or .jsonl (optionally .gz)"
    )


def iter_table(
    path: Path,
    report: ReadReport,
    policy: BadRowPolicy,
    required_columns: list[str],
    position: list[int] | None = None,
    python_literals: bool = False,
) -> Iterator[tuple[int, dict]]:
    """Rows of a CSV or JSON lines file, by extension (required columns are checked for CSV headers)."""
    if table_format(path) == "csv":
        yield from iter_csv(path, report, policy, required_columns, position)
    else:
        yield from iter_jsonl(path, report, policy, position, python_literals)


def file_size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def text_value(value: object) -> str:
    """A field value as stripped text ('' for null)."""
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value).strip()


def not_text(
    record: dict, names: Iterable[str | None], lists: Iterable[str] = (), numbers: bool = False
) -> str | None:
    """Why `record` is a bad row when a field of `names` holds something other than text or
    null (a list or an object would be rendered into item text as Python's repr), or a field
    of `lists` holds neither that nor a list of strings; None when every one is fine. With
    `numbers`, a number is text too (a table's ids or dates often are)."""

    def is_text(value: object) -> bool:
        number = numbers and isinstance(value, (int, float)) and not isinstance(value, bool)
        return value is None or isinstance(value, str) or number

    for name in filter(None, names):
        if not is_text(record.get(name)):
            return f"`{name}` is {json_kind(record[name])}, not text"
    for name in lists:
        value = record.get(name)
        if not is_text(value) and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return f"`{name}` is {json_kind(value)}, not text or a list of strings"
    return None


def json_kind(value: object) -> str:
    """What a parsed JSON value is, for messages ("a JSON array", "a number", ...)."""
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number" if isinstance(value, (int, float)) else "a string"


def rating_value(value: object, report: ReadReport) -> float | None:
    """A numeric rating, or None (counted in `report` when present but not a number)."""
    if value is None or value == "":
        return None
    try:
        rating = float(value)
    except (TypeError, ValueError):
        report.unparseable_ratings += 1
        return None
    if math.isnan(rating):
        report.unparseable_ratings += 1
        return None
    return rating


def split_categories(value: object) -> tuple[str, ...]:
    """Categories from a list or a comma-separated string, stripped, empty ones dropped."""
    if value is None:
        return ()
    parts: list = value if isinstance(value, list) else str(value).split(",")
    names = []
    for part in parts:
        if isinstance(part, list):  # Amazon 2014 metadata nests category paths
            names.extend(text_value(p) for p in part)
        else:
            names.append(text_value(part))
    return tuple(dict.fromkeys(name for name in names if name))

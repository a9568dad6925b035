"""The Pointrec POI catalog as one Arrow table, parsed once and cached (Arrow IPC, no pickle).

The cache lives in $MINT_DISTILL_HOME/data-cache/pointrec/, keyed by the catalog's path, sizes
and modification times, so a changed catalog is parsed again.

Reads either the original repository's per-city files (`poi_dataset/<COUNTRY>/<City>.json`,
each a JSON object poi_id -> record) or the compact JSON lines file in shared data
(`poi/poi_catalog_available_compact.jsonl.gz`). A POI id that appears in two city files is
kept once (the first), and counted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from ..console import progress_bar
from ..errors import DataError
from ..io import atomic_path
from ..models.cache import home
from .reading import ReadReport, iter_jsonl, json_kind, text_value

log = logging.getLogger(__name__)
CACHE_VERSION = 1
COMPACT_CATALOG = "poi/poi_catalog_available_compact.jsonl.gz"
CITY_FILES = "poi_dataset"
_STRING_COLUMNS = (
    "poi_id",
    "name",
    "city",
    "country_code",
    "state_code",
    "main_category",
    "sub_categories",
)
_SCHEMA = pa.schema(
    [(name, pa.string()) for name in _STRING_COLUMNS]
    + [("snippet_titles", pa.list_(pa.string())), ("snippet_texts", pa.list_(pa.string()))]
)


@dataclass
class PoiCatalog:
    """POI records by id. `table` is the Arrow table; `row(poi_id)` gives one record as a dict."""

    table: pa.Table
    source: Path
    records: int
    duplicates: int
    report: ReadReport = field(default_factory=ReadReport)
    _index: dict[str, int] | None = None
    _columns: dict[str, list] | None = None

    def __len__(self) -> int:
        return self.table.num_rows

    def __contains__(self, poi_id: str) -> bool:
        return poi_id in self.index

    @property
    def index(self) -> dict[str, int]:
        if self._index is None:
            self._index = {poi_id: row for row, poi_id in enumerate(self.column("poi_id"))}
        return self._index

    def column(self, name: str) -> list:
        """One column as a Python list (converted once, then cached)."""
        if self._columns is None:
            self._columns = {}
        if name not in self._columns:
            self._columns[name] = self.table.column(name).to_pylist()
        return self._columns[name]

    def row(self, poi_id: str) -> dict | None:
        position = self.index.get(poi_id)
        if position is None:
            return None
        return {name: self.column(name)[position] for name in self.table.column_names}


def catalog_location(folder: Path) -> Path:
    """The per-city folder when present (the complete collection), else the compact file."""
    for candidate in (folder / CITY_FILES, folder / COMPACT_CATALOG):
        if candidate.exists():
            return candidate
    raise DataError(
        f"{folder}: no POI catalog (looked for {folder / CITY_FILES}/ and {folder / COMPACT_CATALOG})"
    )


def load_poi_catalog(folder: Path, on_bad_row: str = "skip") -> PoiCatalog:
    """The POI catalog of a Pointrec folder, from the Arrow cache when it is current."""
    source = catalog_location(folder)
    key = _cache_key(source)
    cache = _cache_file(key)
    if cache is not None and cache.is_file():
        try:
            return _read_cache(cache, source)
        except (OSError, pa.ArrowInvalid, KeyError, ValueError) as error:
            log.warning("ignoring unreadable POI catalog cache %s (%s)", cache, error)
    report = ReadReport()
    table, records = _parse_with_arrow(source, report) or _parse_streaming(
        source, report, on_bad_row
    )
    duplicates = records - table.num_rows
    table = table.replace_schema_metadata(
        {
            "records": str(records),
            "duplicates": str(duplicates),
            "report": json.dumps(report.as_dict()),
        }
    )
    if cache is not None:
        _write_cache(cache, table)
    return PoiCatalog(table, source, records, duplicates, report)


def _parse_with_arrow(source: Path, report: ReadReport) -> tuple[pa.Table, int] | None:
    """pyarrow's multithreaded JSON reader (several times faster than line by line).

    Returns None when the file has any line pyarrow rejects; the line-by-line reader then
    counts and locates every bad row.
    """
    if not source.is_file():
        return None
    snippet = pa.struct([("title", pa.string()), ("snippet", pa.string())])
    schema = pa.schema(
        [(name, pa.string()) for name in _STRING_COLUMNS] + [("snippets", pa.list_(snippet))]
    )
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    try:
        raw = pa_json.read_json(str(source), parse_options=options)
    except (pa.ArrowInvalid, OSError) as error:
        log.info("reading %s line by line (%s)", source, error)
        return None
    report.rows = raw.num_rows
    ids = pc.utf8_trim_whitespace(raw.column("poi_id")).to_pylist()
    keep, seen, records = [], set(), 0
    for poi_id in ids:
        if not poi_id:
            report.missing(["poi_id"])
        else:
            records += 1
        keep.append(bool(poi_id) and poi_id not in seen)
        seen.add(poi_id)
    raw = raw.set_column(0, "poi_id", pa.array(ids, pa.string())).filter(pa.array(keep))
    snippets = raw.column("snippets").combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(snippets), 0).to_numpy(zero_copy_only=False)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int32())
    flat = pc.list_flatten(snippets)
    columns = {name: raw.column(name) for name in _STRING_COLUMNS}
    for name, field_name in (("snippet_titles", "title"), ("snippet_texts", "snippet")):
        values = pc.fill_null(pc.utf8_trim_whitespace(pc.struct_field(flat, field_name)), "")
        columns[name] = pa.ListArray.from_arrays(offsets, values)
    return pa.table(columns, schema=_SCHEMA), records


def _parse_streaming(source: Path, report: ReadReport, on_bad_row: str) -> tuple[pa.Table, int]:
    columns: dict[str, list] = {name: [] for name in _SCHEMA.names}
    seen: set[str] = set()
    records = 0
    for record in _records(source, report, on_bad_row):
        poi_id = text_value(record.get("poi_id"))
        if not poi_id:
            report.missing(["poi_id"])
            continue
        records += 1
        if poi_id in seen:
            continue
        seen.add(poi_id)
        record["poi_id"] = poi_id
        for name in _STRING_COLUMNS:
            value = record.get(name)
            columns[name].append(None if value is None else str(value))
        snippets = [s for s in record.get("snippets") or [] if isinstance(s, dict)]
        columns["snippet_titles"].append([text_value(s.get("title")) for s in snippets])
        columns["snippet_texts"].append([text_value(s.get("snippet")) for s in snippets])
    return pa.table(columns, schema=_SCHEMA), records


def _records(source: Path, report: ReadReport, on_bad_row: str):
    if source.is_file():
        with progress_bar("read POI catalog", None, unit="POIs") as bar:
            for _, record in iter_jsonl(source, report, on_bad_row):
                bar.advance()
                yield record
        return
    files = sorted(source.rglob("*.json"))
    with progress_bar("read POI city files", len(files), unit="files") as bar:
        for path in files:
            bar.advance()
            report.rows += 1
            try:
                content = json.loads(path.read_text(encoding="utf-8", errors="replace"))
            except json.JSONDecodeError as error:
                report.bad_row(path, error.lineno, f"not valid JSON ({error.msg})", on_bad_row)
                continue
            if not isinstance(content, dict):
                report.bad_row(path, 1, "expected a JSON object of poi_id -> record", on_bad_row)
                continue
            relative = path.relative_to(source).as_posix()
            for poi_id, record in content.items():
                if isinstance(record, dict):
                    yield {**record, "poi_id": poi_id, "source_file": relative}
                else:
                    report.bad_row(path, 1, f"POI {poi_id} is {json_kind(record)}, not a JSON object", on_bad_row)


def _cache_key(source: Path) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}\0{source.resolve()}".encode())
    files = [source] if source.is_file() else sorted(source.rglob("*.json"))
    for path in files:
        stat = path.stat()
        digest.update(f"\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def _cache_file(key: str) -> Path | None:
    """In the user cache ($MINT_DISTILL_HOME/data-cache), never beside the data (which may be shared)."""
    parent = home() / "data-cache" / "pointrec"
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        log.warning("no POI catalog cache: cannot create %s (%s)", parent, error)
        return None
    return parent / f"poi-catalog-{key}.arrow"


def _write_cache(path: Path, table: pa.Table) -> None:
    try:
        with (
            atomic_path(path) as tmp,
            pa.OSFile(str(tmp), "wb") as sink,
            pa.ipc.new_file(sink, table.schema) as writer,
        ):
            writer.write_table(table)
    except OSError as error:
        log.warning("could not write the POI catalog cache %s (%s)", path, error)


def _read_cache(path: Path, source: Path) -> PoiCatalog:
    # Zero-copy: the table's buffers keep the memory map alive for as long as they are used.
    table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    report = ReadReport()
    saved = json.loads(metadata["report"])
    for name in (
        "rows",
        "bad_rows",
        "rows_missing_fields",
        "undecodable_lines",
        "replaced_characters",
    ):
        setattr(report, name, saved[name])
    report.bad_row_examples = list(saved["bad_row_examples"])
    report.missing_fields.update(saved["missing_fields"])
    return PoiCatalog(table, source, int(metadata["records"]), int(metadata["duplicates"]), report)

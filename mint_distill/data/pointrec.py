"""Pointrec (Afzali et al., SIGIR 2021): narrative POI requests, graded qrels, POI texts and pools.

Request and POI texts follow the Mint authors' templates (configurable in `data.test`); a
pool is the candidate set a ranker scores for a request. Unjudged candidates are non-relevant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import DataError
from ..recipe.sections.data import TestCollectionSpec
from .download import DATA_DIR_KEY, POINTREC, ensure_dataset
from .paths import under
from .poi_catalog import PoiCatalog, load_poi_catalog
from .reading import ReadReport, decoded_lines, json_kind
from .text import render

# Where each file is in the original repository layout, then in the shared-data layout.
_REQUEST_FILES = ("infoneeds.json", "raw/infoneeds.json")
_QRELS_FILES = ("relevance/qrels.trec", "raw/relevance/qrels.trec")


@dataclass(frozen=True)
class Request:
    """One narrative request; `text` is rendered with the query template."""

    qid: str
    text: str
    city: str
    country: str
    main_category: str
    sub_categories: tuple[str, ...]
    description: str


class TestCollection:
    """Requests, graded qrels (0-3) and the POI catalog, with candidate pools and coverage."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        name: str,
        requests: dict[str, Request],
        qrels: dict[str, dict[str, int]],
        catalog: PoiCatalog,
        spec: TestCollectionSpec,
    ):
        self.name = name
        self.requests = requests
        self.qrels = qrels
        self.catalog = catalog
        self.spec = spec
        self._texts: dict[str, str] = {}
        self._all_texts: dict[str, str] | None = None
        self._city_index: dict[str, list[str]] | None = None
        self._coverage: list[dict] | None = None

    # --- POI texts -------------------------------------------------------------------------
    def item_text(self, item_id: str) -> str | None:
        """The rendered POI text, or None when the catalog has no record of it."""
        if item_id not in self._texts:
            record = self.catalog.row(item_id)
            if record is None:
                return None
            self._texts[item_id] = poi_text(record, self.spec)
        return self._texts[item_id]

    def items(self) -> dict[str, str]:
        """Every catalog POI with its text: id -> text (rendered once, on first call)."""
        if self._all_texts is None:
            columns = {name: self.catalog.column(name) for name in self.catalog.table.column_names}
            self._all_texts = {
                poi_id: poi_text({name: values[row] for name, values in columns.items()}, self.spec)
                for row, poi_id in enumerate(columns["poi_id"])
            }
        return self._all_texts

    # --- pools -----------------------------------------------------------------------------
    def pool(self, qid: str) -> list[str]:
        """Candidate POI ids for a request under the configured pool (`data.test.pool`)."""
        return self.pool_of(qid, self.spec.pool)

    def pool_of(self, qid: str, kind: str) -> list[str]:
        """Candidates for `judged`, `city` or `citycat`; with `require_text`, only POIs with a record."""
        request = self._request(qid)
        if kind == "judged":
            candidates = list(self.qrels.get(qid, {}))
        elif kind in ("city", "citycat"):
            candidates = self._city_pool(request.city)
            if kind == "citycat":
                categories = self.catalog.column("main_category")
                index = self.catalog.index
                candidates = [
                    p for p in candidates if categories[index[p]] == request.main_category
                ]
        else:
            raise ValueError(f"unknown pool `{kind}`; use judged, city or citycat")
        if self.spec.require_text:
            candidates = [p for p in candidates if p in self.catalog]
        return candidates

    def catalog_cities(self, city: str) -> list[str]:
        """The catalog city names a request city stands for (`data.test.city_synonyms`)."""
        return list(self.spec.city_synonyms.get(city, [city]))

    def _city_pool(self, city: str) -> list[str]:
        if self._city_index is None:
            self._city_index = {}
            for poi_id, poi_city in zip(self.catalog.column("poi_id"), self.catalog.column("city")):
                self._city_index.setdefault(poi_city, []).append(poi_id)
        pool: list[str] = []
        for name in self.catalog_cities(city):
            pool.extend(self._city_index.get(name, ()))
        return list(dict.fromkeys(pool))

    # --- requests and coverage ---------------------------------------------------------------
    def qids(self) -> list[str]:
        """Requests kept: at least `min_judged_with_text` of their judged POIs have a record, their
        pool holds at least `min_pool_size` POIs, and metrics have a judgement to use (with condensed
        qrels, a judged POI with a record): one without would score 0 here and be left out by
        trec_eval on the written qrels."""
        return [row["qid"] for row in self.coverage() if row["kept"]]

    def coverage(self) -> list[dict]:
        """Per request: judged POIs, how many have text, relevant ones, and candidate pool sizes."""
        if self._coverage is None:
            self._coverage = self._compute_coverage()
        return [dict(row) for row in self._coverage]

    def _compute_coverage(self) -> list[dict]:
        rows = []
        for qid in sorted(self.requests):
            request = self.requests[qid]
            judged = self.qrels.get(qid, {})
            with_text = {p: g for p, g in judged.items() if p in self.catalog}
            pool = self.pool(qid)
            share = len(with_text) / len(judged) if judged else 0.0
            evaluated = with_text if self.spec.condensed_qrels else judged
            rows.append(
                {
                    "qid": qid,
                    "city": request.city,
                    "country": request.country,
                    "main_category": request.main_category,
                    "judged": len(judged),
                    "judged_with_text": len(with_text),
                    "share_with_text": round(share, 4),
                    "relevant": sum(1 for g in judged.values() if g > 0),
                    "relevant_with_text": sum(1 for g in with_text.values() if g > 0),
                    "grade3": sum(1 for g in judged.values() if g == 3),
                    "grade3_with_text": sum(1 for g in with_text.values() if g == 3),
                    "pool": self.spec.pool,
                    "pool_size": len(pool),
                    "relevant_in_pool": sum(1 for p in pool if judged.get(p, 0) > 0),
                    "city_pool_size": len(self.pool_of(qid, "city")),
                    "citycat_pool_size": len(self.pool_of(qid, "citycat")),
                    "kept": bool(evaluated)
                and share >= self.spec.min_judged_with_text
                and len(pool) >= self.spec.min_pool_size,
                }
            )
        return rows

    def evaluation_qrels(self, qid: str) -> dict[str, int]:
        """The judgements metrics use: with `condensed_qrels`, only POIs that have a record."""
        judged = self.qrels.get(qid, {})
        if not self.spec.condensed_qrels:
            return dict(judged)
        return {poi: grade for poi, grade in judged.items() if poi in self.catalog}

    def judged_item_ids(self) -> set[str]:
        """Every POI judged for any request (to keep them out of training data)."""
        return {poi for judged in self.qrels.values() for poi in judged}

    def _request(self, qid: str) -> Request:
        try:
            return self.requests[qid]
        except KeyError:
            raise KeyError(f"unknown request id {qid!r} in {self.name}") from None


def load_test_collection(
    spec: TestCollectionSpec, data_dir: Path, data_dir_key: str = DATA_DIR_KEY
) -> TestCollection:
    """Pointrec from `data_dir / spec.path`, downloaded there first if missing and allowed;
    errors name `data_dir` by `data_dir_key`."""
    folder = under(Path(data_dir), spec.path)
    ensure_dataset(POINTREC, folder, download=spec.download, key="data.test", data_dir_key=data_dir_key)
    requests = read_requests(_first(folder, _REQUEST_FILES), spec)
    qrels = read_qrels(_first(folder, _QRELS_FILES))
    unknown = sorted(set(qrels) - set(requests))
    if unknown:
        raise DataError(
            f"{_first(folder, _QRELS_FILES)}: judgements for unknown request ids {', '.join(unknown[:5])}"
        )
    return TestCollection("pointrec", requests, qrels, load_poi_catalog(folder), spec)


def read_requests(path: Path, spec: TestCollectionSpec) -> dict[str, Request]:
    """`infoneeds.json` (qid -> need) as Requests with their text rendered by `spec.query_template`."""
    try:
        needs = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if not isinstance(needs, dict):
        raise DataError(f"{path}: expected a JSON object of request id -> request, got {json_kind(needs)}")
    requests = {}
    for qid, need in needs.items():
        if not isinstance(need, dict):
            raise DataError(f"{path}: request {qid} is {json_kind(need)}, expected a JSON object of its fields")
        missing = [
            key for key in ("City", "Country", "Main Category", "Description") if not need.get(key)
        ]
        if missing:
            raise DataError(f"{path}: request {qid} lacks the field(s) {', '.join(missing)}")
        fields = ("City", "Country", "Main Category", "Description", "Title")
        wrong = [f"{key} (a string)" for key in fields if not isinstance(need.get(key) or "", str)]
        sub_categories = need.get("Sub Categories") or []
        if not isinstance(sub_categories, list) or not all(isinstance(name, str) for name in sub_categories):
            wrong.append("Sub Categories (a list of strings)")
        if wrong:
            raise DataError(f"{path}: request {qid}: wrong type of {', '.join(wrong)}")
        request = Request(
            qid=qid,
            text="",
            city=need["City"],
            country=need["Country"],
            main_category=need["Main Category"],
            sub_categories=tuple(sub_categories),
            description=" ".join(need["Description"].split()),
        )
        requests[qid] = rendered(request, spec, title=need.get("Title"))
    return requests


def rendered(request: Request, spec: TestCollectionSpec, title: str | None = None) -> Request:
    """`request` with its `text` rendered by `spec.query_template` (the Mint authors' template)."""
    fields = {
        "main_category": request.main_category.lower(),
        "sub_categories": ", ".join(request.sub_categories).lower(),
        "city": request.city,
        "country": request.country,
        "description": request.description,
        "title": title,
    }
    return replace(request, text=render(spec.query_template, fields))


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """TREC qrels `qid 0 doc grade` as qid -> {doc: grade}; a malformed line is an error naming it."""
    qrels: dict[str, dict[str, int]] = {}
    for number, line in decoded_lines(path, ReadReport()):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4 or not parts[3].lstrip("-").isdigit():
            raise DataError(f"{path}:{number}: expected `qid 0 poi_id grade`, got {line.strip()!r}")
        qrels.setdefault(parts[0], {})[parts[2]] = int(parts[3])
    return qrels


def qrels_file(folder: Path) -> Path:
    """The qrels file of a Pointrec folder (original or shared-data layout)."""
    return _first(folder, _QRELS_FILES)


def read_judged_ids(path: Path) -> set[str]:
    """Every item id judged in a TREC qrels file, and nothing else: no grades, no request ids.

    Training reads judgements only through this, to keep judged items out of its data.
    """
    judged = set()
    for number, line in decoded_lines(path, ReadReport()):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4:
            raise DataError(f"{path}:{number}: expected `qid 0 poi_id grade`, got {line.strip()!r}")
        judged.add(parts[2])
    return judged


def poi_text(record: dict, spec: TestCollectionSpec) -> str:
    """A POI's text: the Mint authors' template with its first `max_snippets` web snippets."""
    titles = record.get("snippet_titles") or []
    texts = record.get("snippet_texts") or []
    snippets = "".join(
        " " + render(spec.snippet_template, {"title": title, "snippet": text})
        for title, text in list(zip(titles, texts))[: spec.max_snippets]
    )
    subs = [s.strip() for s in (record.get("sub_categories") or "").split(",") if s.strip()]
    return render(
        spec.poi_template,
        {
            "name": record.get("name"),
            "city": record.get("city"),
            "region": record.get("state_code"),
            "country": record.get("country_code"),
            "main_category": (record.get("main_category") or "").lower(),
            "sub_categories": ", ".join(subs).lower(),
            "snippets": snippets,
        },
    )


def _first(folder: Path, candidates: tuple[str, ...]) -> Path:
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: none of {', '.join(candidates)} exists")

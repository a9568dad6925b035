"""Dev requests for the target catalog, written outside the pipeline: a judge that is not the teacher.

The synthetic dev split is written by the teacher the students learn from, so it favours students
trained on that teacher's requests, and it cannot choose between teachers or data sources. A few
requests written for the catalog that will be searched (by people, or by a stronger model than the
teacher), each with a pool of its items
graded 0-3 like the test collection's, judge every student alike without reading the test
collection (`data.catalog.dev_requests`). They grade the test collection's POIs, which are training
items only through test-source pseudo-histories, and those never show them.

One JSON object per line:

    {"request_id": "hw-g01", "city": "Hamburg", "country": "DE", "main_category": "Active Life",
     "sub_categories": ["lakes"], "description": "We are two families ...",
     "judgements": {"pointrec:338132": 3, "pointrec:464209": 0, ...}}

A request's text is rendered with the test collection's query template, as a test request's is;
its pool is the items it grades, rendered with the test collection's item template.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from ..errors import DataError
from ..io import numbered_jsonl
from ..recipe.sections.data import TestCollectionSpec
from .catalog_entries import POINTREC_PREFIX
from .poi_catalog import PoiCatalog
from .pointrec import Request, poi_text, rendered

if TYPE_CHECKING:
    from ..evaluation.collection import EvalCollection

MAX_GRADE = 3


class DevRequest(BaseModel):
    """One dev request and the grades of its pool."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str = Field(min_length=1)
    city: str = Field(min_length=1)
    country: str = Field(min_length=1)
    main_category: str = Field(min_length=1)
    sub_categories: tuple[str, ...] = ()
    description: str = Field(min_length=1)
    judgements: dict[str, StrictInt]

    @field_validator("judgements")
    @classmethod
    def _graded_pool(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {item: grade for item, grade in value.items() if not 0 <= grade <= MAX_GRADE}
        if bad:
            raise ValueError(f"grades must be 0-{MAX_GRADE}, got {bad}")
        # Checked here, not only when a pool is ranked: the data stage keeps these ids out of
        # training, and an id spelled otherwise would match no training item and keep nothing out.
        misspelled = [item for item in value if not re.fullmatch(rf"{POINTREC_PREFIX}\S+", item)]
        if misspelled:
            raise ValueError(f"items are `{POINTREC_PREFIX}<poi_id>` (no spaces), got {misspelled[:3]}")
        if not any(value.values()):
            raise ValueError("no item is graded above 0")
        return value

    def request(self, spec: TestCollectionSpec) -> Request:
        """The request as the test collection's would be: its text from `spec.query_template`."""
        description = " ".join(self.description.split())
        plain = Request(
            self.request_id,
            "",
            self.city,
            self.country,
            self.main_category,
            self.sub_categories,
            description,
        )
        return rendered(plain, spec)


def read_dev_requests(path: str | Path) -> list[DevRequest]:
    """Every request of a dev-request file, checked; errors name the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data.catalog.dev_requests: {path}: file not found")
    requests, seen = [], set()
    for number, record in numbered_jsonl(path):
        try:
            request = DevRequest.model_validate(record)
        except ValidationError as error:
            problem = error.errors()[0]
            field = ".".join(str(part) for part in problem["loc"]) or "record"
            raise DataError(f"{path}:{number}: `{field}`: {problem['msg']}") from None
        if request.request_id in seen:
            raise DataError(f"{path}:{number}: request_id {request.request_id!r} appears twice")
        seen.add(request.request_id)
        requests.append(request)
    if not requests:
        raise DataError(f"{path}: the file holds no request")
    return requests


def read_dev_request_files(paths: list[str] | list[Path]) -> list[DevRequest]:
    """The requests of several dev-request files, in order; a request id may appear in one only."""
    return [request for _, requests in _read_files(paths) for request in requests]


def _read_files(paths: list[str] | list[Path]) -> list[tuple[Path, list[DevRequest]]]:
    sources, first_file = [], {}
    for path in map(Path, paths):
        requests = read_dev_requests(path)
        for request in requests:
            if request.request_id in first_file:
                raise DataError(
                    f"{path}: request_id {request.request_id!r} is also in {first_file[request.request_id]}"
                )
            first_file[request.request_id] = path
        sources.append((path, requests))
    return sources


def check_graded_items(paths: list[str] | list[Path], catalog: PoiCatalog) -> None:
    """Raise DataError naming the file, line and id of the first item, in files that
    `read_dev_request_files` accepts, that the test catalog lacks: it would keep nothing out of
    training, and the ablation judge could not rank it after every arm had trained."""
    for path in map(Path, paths):
        for number, record in numbered_jsonl(path):
            unknown = [item for item in record["judgements"] if item.removeprefix(POINTREC_PREFIX) not in catalog]
            if unknown:
                raise DataError(
                    f"{path}:{number}: request {record['request_id']} grades {unknown[0]!r}, which is not "
                    f"in the test collection's POI catalog ({catalog.source})"
                )


def dev_item_ids(requests: list[DevRequest]) -> set[str]:
    """Every item some dev request grades: none may be a training item."""
    return {item for request in requests for item in request.judgements}


def dev_collection(
    paths: list[str] | list[Path], spec: TestCollectionSpec, catalog: PoiCatalog
) -> EvalCollection:
    """The requests of every file in `paths` as one `EvalCollection`: each ranks its own graded
    pool, as the test requests do.

    Items are the test collection's POIs (`pointrec:<poi_id>`), rendered with `spec`'s templates.
    """
    from ..evaluation.collection import EvalCollection

    sources = _read_files(paths)
    texts = {}
    for source, file_requests in sources:
        texts.update(_pool_texts(file_requests, spec, catalog, source))
    requests = [request for _, file_requests in sources for request in file_requests]
    return EvalCollection(
        name="dev-requests:" + "+".join(source.name for source, _ in sources),
        pool="graded",
        requests={r.request_id: r.request(spec).text for r in requests},
        items=texts,
        pools={r.request_id: sorted(r.judgements) for r in requests},
        qrels={r.request_id: dict(r.judgements) for r in requests},
    )


def _pool_texts(
    requests: list[DevRequest], spec: TestCollectionSpec, catalog: PoiCatalog, source: Path
) -> dict[str, str]:
    texts = {}
    for request in requests:
        for item in request.judgements:
            record = (
                catalog.row(item.removeprefix(POINTREC_PREFIX))
                if item.startswith(POINTREC_PREFIX)
                else None
            )
            if record is None:
                raise DataError(
                    f"{source}: request {request.request_id} grades {item!r}, which is not a "
                    f"`{POINTREC_PREFIX}<poi_id>` of the test collection's POI catalog"
                )
            texts[item] = poi_text(record, spec)
    return texts

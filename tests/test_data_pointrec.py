"""Pointrec on a hand-written fixture: request and POI texts, pools, coverage, layouts, cache, download."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from mint_distill.data.download import RemoteArchive, RemoteDataset, RemoteFile, ensure_dataset
from mint_distill.data.pointrec import load_test_collection
from mint_distill.errors import DataError, IntegrityError
from mint_distill.recipe.sections.data import TestCollectionSpec

FIXTURES = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINT_DISTILL_HOME", str(tmp_path / "home"))


def collection(data_dir: Path = FIXTURES, **spec):
    return load_test_collection(TestCollectionSpec(download=False, **spec), data_dir)


def test_requests_are_rendered_with_the_mint_query_template():
    tc = collection()
    assert sorted(tc.requests) == ["0001-000-RF", "0002-000-NL", "0003-000-AE"]
    first = tc.requests["0001-000-RF"]
    assert first.text == (
        "Looking for restaurants and food, specifically pizza, delis in New York City, US. "
        "Visiting NYC next month with my brother. We love thin crust pizza and big pastrami sandwiches."
    )
    assert (first.city, first.country, first.main_category, first.sub_categories) == (
        "New York City",
        "US",
        "Restaurants and Food",
        ("Pizza", "Delis"),
    )
    assert (
        tc.requests["0002-000-NL"].text
        == "Looking for nightlife in Tokyo, JP. Where can I find tiny bars with good whisky?."
    )


def test_poi_text_has_the_template_and_the_first_five_snippets():
    tc = collection()
    assert tc.item_text("100") == (
        "Joe's Pizza in New York, US is known for restaurants and food. Specifically: pizza. "
        + " ".join(f"title: T{i}, snippet: S{i}." for i in range(1, 6))
    )
    assert tc.item_text("101") == (
        "Katz's Delicatessen in New York, US is known for restaurants and food. Specifically: delis, sandwiches."
    )
    assert tc.item_text("999") is None
    assert set(tc.items()) == {"100", "101", "102", "103", "200", "201", "202", "203"}
    assert tc.items()["102"] == tc.item_text("102")


def test_qrels_and_judged_ids():
    tc = collection()
    assert tc.qrels["0001-000-RF"] == {"100": 3, "101": 2, "999": 1, "102": 0}
    assert tc.judged_item_ids() == {"100", "101", "999", "102", "200", "203", "500", "501"}


def test_judged_pool_with_and_without_required_text():
    assert collection().pool("0001-000-RF") == ["100", "101", "102"]
    assert collection(require_text=False).pool("0001-000-RF") == ["100", "101", "999", "102"]
    assert collection().pool("0003-000-AE") == []


def test_city_pools_use_the_synonym_map_and_citycat_the_main_category():
    city = collection(pool="city")
    assert city.pool("0001-000-RF") == [
        "100",
        "101",
        "102",
    ]  # New York City -> New York; not Brooklyn
    assert sorted(city.pool("0002-000-NL")) == [
        "200",
        "201",
        "202",
    ]  # Tokyo, Shibuya, Minato; not Osaka
    citycat = collection(pool="citycat")
    assert citycat.pool("0001-000-RF") == ["100", "101"]
    assert sorted(citycat.pool("0002-000-NL")) == ["200", "201"]
    custom = collection(pool="city", city_synonyms={"Tokyo": ["Osaka"]})
    assert custom.pool("0002-000-NL") == ["203"]


def test_coverage_counts_and_the_min_judged_with_text_filter():
    tc = collection(min_judged_with_text=0.5)
    rows = {row["qid"]: row for row in tc.coverage()}
    first = rows["0001-000-RF"]
    assert (
        first["judged"],
        first["judged_with_text"],
        first["relevant"],
        first["relevant_with_text"],
    ) == (4, 3, 3, 2)
    assert (
        first["grade3"],
        first["grade3_with_text"],
        first["pool_size"],
        first["relevant_in_pool"],
    ) == (1, 1, 3, 2)
    assert (first["city_pool_size"], first["citycat_pool_size"]) == (3, 2)
    assert rows["0002-000-NL"]["share_with_text"] == 1.0
    assert rows["0003-000-AE"]["judged_with_text"] == 0 and not rows["0003-000-AE"]["kept"]
    assert tc.qids() == ["0001-000-RF", "0002-000-NL"]
    assert collection(min_judged_with_text=0.8).qids() == ["0002-000-NL"]


def test_a_request_left_without_judgements_by_condensing_is_not_evaluated():
    # 0003-000-AE's judged POIs all lack a record: condensed qrels leave it nothing to score on.
    assert collection(pool="city").evaluation_qrels("0003-000-AE") == {}
    assert collection(pool="city").qids() == ["0001-000-RF", "0002-000-NL"]
    kept = collection(pool="city", condensed_qrels=False)
    assert kept.evaluation_qrels("0003-000-AE") and kept.qids() == ["0001-000-RF", "0002-000-NL", "0003-000-AE"]


def compact_copy(target: Path, broken: bool = True) -> Path:
    """The fixture in the shared-data layout: raw/ files and one compact JSON lines catalog."""
    (target / "raw" / "relevance").mkdir(parents=True)
    (target / "poi").mkdir()
    shutil.copy(FIXTURES / "pointrec" / "infoneeds.json", target / "raw" / "infoneeds.json")
    shutil.copy(
        FIXTURES / "pointrec" / "relevance" / "qrels.trec",
        target / "raw" / "relevance" / "qrels.trec",
    )
    lines = []
    for path in sorted((FIXTURES / "pointrec" / "poi_dataset").rglob("*.json")):
        for poi_id, record in json.loads(path.read_text(encoding="utf-8")).items():
            lines.append(json.dumps({"poi_id": poi_id, "source_file": path.name, **record}))
    if broken:
        lines.insert(2, "{broken")
    (target / "poi" / "poi_catalog_available_compact.jsonl.gz").write_bytes(
        gzip.compress("\n".join(lines).encode())
    )
    return target


def test_compact_layout_gives_the_same_collection_and_counts_duplicates(tmp_path):
    compact_copy(tmp_path / "pointrec")
    original, compact = collection(), collection(tmp_path)
    assert compact.items() == original.items()
    assert compact.coverage() == original.coverage()
    assert (compact.catalog.records, compact.catalog.duplicates, len(compact.catalog)) == (9, 1, 8)
    assert compact.catalog.report.bad_rows == 1


def test_arrow_reader_matches_the_line_reader_and_defers_to_it_on_bad_lines(tmp_path):
    from mint_distill.data.poi_catalog import COMPACT_CATALOG, _parse_streaming, _parse_with_arrow
    from mint_distill.data.reading import ReadReport

    clean = compact_copy(tmp_path / "clean", broken=False) / COMPACT_CATALOG
    fast, slow = ReadReport(), ReadReport()
    (table, records), (expected, expected_records) = (
        _parse_with_arrow(clean, fast),
        _parse_streaming(clean, slow, "skip"),
    )
    assert (
        table.equals(expected)
        and records == expected_records == 9
        and fast.as_dict() == slow.as_dict()
    )
    assert (
        _parse_with_arrow(compact_copy(tmp_path / "broken") / COMPACT_CATALOG, ReadReport()) is None
    )


def test_catalog_cache_is_reused_and_invalidated_by_a_changed_file(tmp_path, monkeypatch):
    from mint_distill.data import poi_catalog

    parsed = []
    for name in ("_parse_with_arrow", "_parse_streaming"):
        real = getattr(poi_catalog, name)
        monkeypatch.setattr(
            poi_catalog, name, lambda *args, real=real: parsed.append(args[0]) or real(*args)
        )
    folder = compact_copy(tmp_path / "pointrec")
    collection(tmp_path)
    cached = list((tmp_path / "home" / "data-cache" / "pointrec").glob("*.arrow"))
    assert len(cached) == 1 and parsed
    parsed.clear()
    assert collection(tmp_path).catalog.report.bad_rows == 1  # the report survives the cache
    assert parsed == []
    catalog = folder / "poi" / "poi_catalog_available_compact.jsonl.gz"
    extra = json.dumps(
        {
            "poi_id": "300",
            "name": "New Place",
            "city": "Tokyo",
            "main_category": "Nightlife",
            "sub_categories": "Bars, ",
            "country_code": "JP",
            "snippets": [],
        }
    )
    catalog.write_bytes(
        gzip.compress(gzip.decompress(catalog.read_bytes()) + b"\n" + extra.encode())
    )
    assert "300" in collection(tmp_path, pool="city").pool("0002-000-NL")
    assert parsed


@pytest.mark.parametrize(
    ("needs", "message"),
    [
        ([], "infoneeds.json: expected a JSON object of request id -> request, got a JSON array"),
        ({"q1": "Lisbon"}, "infoneeds.json: request q1 is a string, expected a JSON object of its fields"),
        (
            {"q1": {"City": ["Lisbon"], "Country": "PT", "Main Category": "Nightlife", "Description": "Bars?"}},
            "infoneeds.json: request q1: wrong type of City (a string)",
        ),
        (
            {"q1": {"City": "Lisbon", "Country": "PT", "Main Category": "Nightlife", "Description": "Bars?",
                    "Sub Categories": "Bars"}},
            "infoneeds.json: request q1: wrong type of Sub Categories (a list of strings)",
        ),
    ],
)
def test_requests_of_the_wrong_shape_name_the_file_and_what_was_expected(tmp_path, needs, message):
    shutil.copytree(FIXTURES / "pointrec", tmp_path / "pointrec")
    (tmp_path / "pointrec" / "infoneeds.json").write_text(json.dumps(needs))
    with pytest.raises(DataError, match=re.escape(message)):
        collection(tmp_path)


def test_a_poi_that_is_not_an_object_is_a_counted_bad_row(tmp_path):
    shutil.copytree(FIXTURES / "pointrec", tmp_path / "pointrec")
    city = tmp_path / "pointrec" / "poi_dataset" / "JP" / "Yokohama.json"
    city.write_text(json.dumps({**json.loads(city.read_text()), "299": ["not", "a", "record"]}))
    report = collection(tmp_path).catalog.report
    assert report.bad_rows == 1 and report.bad_row_examples == [f"{city}:1: POI 299 is a JSON array, not a JSON object"]


def test_missing_collection_offline_says_what_and_where(tmp_path):
    with pytest.raises(DataError) as caught:
        collection(tmp_path)
    message = str(caught.value)
    assert f"pointrec is not in {tmp_path / 'pointrec'}" in message
    assert (
        "infoneeds.json" in message
        and "downloading is off (recipe key `data.test.download`)" in message
    )
    assert "github.com/iai-group/sigir2021-pointrec" in message


def make_archive(tmp_path: Path) -> tuple[Path, str]:
    archive = tmp_path / "repo.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("repo-abc/infoneeds.json", '{"q": 1}')
        bundle.writestr("repo-abc/relevance/qrels.trec", "q 0 d 1\n")
        bundle.writestr("repo-abc/poi_dataset/US/Town.json", "{}")
        bundle.writestr("elsewhere/ignored.txt", "not part of the dataset")
    return archive, hashlib.sha256(b'{"q": 1}').hexdigest()


def remote(archive: Path, pinned: dict) -> RemoteDataset:
    return RemoteDataset(
        name="toy",
        origin="a test archive",
        layouts=(("infoneeds.json", "relevance/qrels.trec", "poi_dataset"),),
        archive=RemoteArchive(url=archive.as_uri(), root="repo-abc", pinned=pinned),
    )


def test_download_unpacks_the_archive_root_and_records_checksums(tmp_path):
    archive, digest = make_archive(tmp_path)
    folder = ensure_dataset(
        remote(archive, {"infoneeds.json": digest}),
        tmp_path / "data" / "toy",
        download=True,
        key="data.test",
    )
    assert (folder / "poi_dataset" / "US" / "Town.json").is_file() and not (
        folder / "ignored.txt"
    ).exists()
    record = json.loads((folder / "mint-download.json").read_text())
    assert record["sha256"]["infoneeds.json"] == digest
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["toy"]  # no scratch left behind


def test_download_with_a_wrong_checksum_keeps_nothing(tmp_path):
    archive, _ = make_archive(tmp_path)
    with pytest.raises(IntegrityError, match="infoneeds.json has sha256"):
        ensure_dataset(
            remote(archive, {"infoneeds.json": "0" * 64}),
            tmp_path / "data" / "toy",
            download=True,
            key="k",
        )
    assert not (tmp_path / "data").exists()


def test_unreachable_origin_is_a_data_error_saying_what_is_missing(tmp_path):
    dataset = remote(tmp_path / "absent.zip", {})
    with pytest.raises(
        DataError, match=r"toy is not in .*looked for .*infoneeds.json.*downloading it failed"
    ):
        ensure_dataset(dataset, tmp_path / "data" / "toy", download=True, key="data.test")
    assert not (tmp_path / "data").exists()  # no folder made for a download that failed


def test_fetch_problem_asks_the_origin_and_writes_nothing(tmp_path):
    from mint_distill.data.download import fetch_problem

    archive, _ = make_archive(tmp_path)
    folder = tmp_path / "data" / "toy"
    assert fetch_problem(remote(archive, {}), folder, download=True, key="data.test") is None
    problem = fetch_problem(remote(tmp_path / "absent.zip", {}), folder, download=True, key="data.test")
    assert "toy is not in" in problem and "absent.zip does not answer from here" in problem
    assert "downloading is off (recipe key `data.test.download`)" in fetch_problem(
        remote(archive, {}), folder, download=False, key="data.test"
    )
    assert not (tmp_path / "data").exists()


def test_single_files_are_checked_against_their_pins(tmp_path):
    source = tmp_path / "tips.json"
    source.write_text('{"user_id": "u"}\n')
    good = RemoteFile(source.as_uri(), "tips.json", hashlib.sha256(source.read_bytes()).hexdigest())
    dataset = RemoteDataset(name="tips", origin="a file", layouts=(("tips.json",),), files=(good,))
    assert (
        ensure_dataset(dataset, tmp_path / "ok", download=True, key="k") / "tips.json"
    ).is_file()
    bad = RemoteDataset(
        name="tips",
        origin="a file",
        layouts=(("tips.json",),),
        files=(RemoteFile(source.as_uri(), "tips.json", "f" * 64),),
    )
    with pytest.raises(IntegrityError, match="differs from the pinned"):
        ensure_dataset(bad, tmp_path / "bad", download=True, key="k")
    assert not (tmp_path / "bad").exists()

"""The four local datasets in ../shared/data load with the counts their READMEs give."""

from __future__ import annotations

import csv
from collections import Counter

import pytest
from click.testing import CliRunner

from mint_distill.data.build import prepare_training_data
from mint_distill.data.download import POINTREC, YELP_BOSTON_TIPS
from mint_distill.data.pointrec import load_test_collection
from mint_distill.io import sha256_file
from mint_distill.recipe.sections.data import DataSection, TestCollectionSpec

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("private_mint_home")]


@pytest.fixture(scope="module")
def pointrec(shared_data):
    return load_test_collection(TestCollectionSpec(download=False), shared_data)


def prepare(shared_data, source: dict, **selection):
    return prepare_training_data(
        DataSection(
            data_dir=str(shared_data), source={**source, "download": False}, selection=selection
        )
    )


def test_yelp_boston_tips(shared_data):
    data = prepare(
        shared_data, {"format": "yelp_academic", "path": "yelp_boston_tips"}, min_liked=5
    )
    source = data.stats["source"]
    assert (len(data.catalog), source["reviews"], source["users"]) == (2005, 5372, 1502)
    assert source["reviews_of_unknown_items"] == 0 and source["review_files"]["bad_rows"] == 0
    counts = data.scan.review_count
    assert (
        sum(c >= 10 for c in counts.values()) == 125 and sum(c >= 5 for c in counts.values()) == 287
    )
    assert max(counts.values()) == 55
    assert data.stats["selection"]["users"]["fewer_reviews_than_min_liked"] == 1502 - 287
    assert (
        sum(1 for item in data.catalog.items.values() if "Restaurants" in item.categories) == 1654
    )


def test_amazon_musical_instruments_csv(shared_data):
    data = prepare(
        shared_data,
        {
            "format": "amazon_2014",
            "path": "amazon_mi_2014_5core/Musical_instruments_reviews.csv.gz",
        },
    )
    source = data.stats["source"]
    assert source["review_files"]["rows"] == 10261
    assert source["review_files"]["missing_fields"] == {"reviewText": 7}
    assert (source["reviews"], source["users"], len(data.catalog)) == (10261 - 7, 1429, 900)
    assert data.stats["items"]["text_from"] == "review sentences only (no item metadata)"
    assert all(item.name is None for item in data.catalog.items.values())


def test_zomato_hyderabad_through_the_generic_table(shared_data):
    source = {
        "format": "table",
        "path": "zomato_hyderabad/Restaurant_reviews.csv.gz",
        "pseudonymize_users": True,
        "columns": {
            "user": "Reviewer",
            "item": "Restaurant",
            "text": "Review",
            "rating": "Rating",
            "date": "Time",
        },
        "items": {
            "path": "zomato_hyderabad/Restaurant_names_and_Metadata.csv",
            "item": "Name",
            "name": "Name",
            "categories": "Cuisines",
            "default_city": "Hyderabad",
            "default_country": "IN",
        },
    }
    data = prepare(shared_data, source)
    stats = data.stats["source"]
    assert (stats["reviews"], stats["users"], stats["items_reviewed"]) == (9955, 7442, 100)
    assert stats["review_files"]["missing_fields"] == {"Review": 45, "Reviewer": 38}
    assert (
        stats["review_files"]["undecodable_lines"] > 0
        and stats["review_files"]["unparseable_ratings"] == 1
    )
    assert stats["reviews_of_unknown_items"] == 0 and stats["item_metadata"]["rows"] == 105
    counts = Counter(data.scan.review_count.values())
    assert (
        sum(n for c, n in counts.items() if c >= 5) == 150
        and sum(n for c, n in counts.items() if c >= 10) == 10
    )
    assert max(counts) == 13


def test_pointrec_counts(pointrec):
    assert len(pointrec.requests) == 112
    assert sum(len(judged) for judged in pointrec.qrels.values()) == 5143
    assert len(pointrec.judged_item_ids()) == 4448
    assert (pointrec.catalog.records, len(pointrec.catalog)) == (314828, 309175)
    assert sum(1 for poi in pointrec.judged_item_ids() if poi in pointrec.catalog) == 1280
    rows = pointrec.coverage()
    assert sum(r["judged_with_text"] for r in rows) == 1465
    assert sum(r["relevant_with_text"] for r in rows) == 1149
    assert sum(r["judged_with_text"] == 0 for r in rows) == 27
    assert sum(r["judged_with_text"] == r["judged"] for r in rows) == 1
    well_covered = (
        "0007-000-RF 0011-000-RF 0012-000-AL 0016-000-RF 0022-000-AL 0023-000-RF 0024-000-AL 0028-002-RF "
        "0032-002-AE 0032-006-RF 0032-007-RF 0032-008-RF 0032-015-RF 0036-000-RF 0042-000-RF 0054-000-AL 0071-000-NL 0080-000-AL"
    )
    assert [r["qid"] for r in rows if r["share_with_text"] >= 0.8] == well_covered.split()
    counts = Counter(r["main_category"] for r in rows)
    assert counts == {
        "Arts & Entertainment": 30,
        "Restaurants and Food": 30,
        "Active Life": 27,
        "Nightlife": 25,
    }


def test_pointrec_pools_match_the_shared_coverage_table(pointrec, shared_data):
    with open(shared_data / "pointrec" / "poi" / "query_coverage.tsv", encoding="utf-8") as handle:
        reference = {row["qid"]: row for row in csv.DictReader(handle, delimiter="\t")}
    compared = {
        "judged": "n_judged",
        "judged_with_text": "n_judged_with_poi_record",
        "relevant": "n_rel_gt0",
        "relevant_with_text": "n_rel_gt0_with_record",
        "grade3_with_text": "n_grade3_with_record",
        "city_pool_size": "city_pool_size_available",
        "citycat_pool_size": "citycat_pool_size_available",
    }
    for row in pointrec.coverage():
        expected = reference[row["qid"]]
        assert {key: row[key] for key in compared} == {
            key: int(expected[col]) for key, col in compared.items()
        }, row["qid"]
        city = set(pointrec.pool_of(row["qid"], "city"))
        relevant = {p for p, g in pointrec.qrels[row["qid"]].items() if g > 0}
        assert len(city & relevant) == int(expected["n_rel_gt0_in_city_pool"]), row["qid"]


def test_pinned_checksums_match_the_shared_copies(shared_data):
    for remote in YELP_BOSTON_TIPS.files:
        assert sha256_file(shared_data / "yelp_boston_tips" / remote.target) == remote.sha256
    for relative, digest in POINTREC.archive.pinned.items():
        assert sha256_file(shared_data / "pointrec" / "raw" / relative) == digest
    assert POINTREC.present_in(shared_data / "pointrec") and YELP_BOSTON_TIPS.present_in(
        shared_data / "yelp_boston_tips"
    )


def test_data_stats_on_the_default_recipe(shared_data, monkeypatch):
    from conftest import REPO_ROOT

    from mint_distill.cli import cli

    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("MINT_DISTILL_DATA_DIR", str(shared_data))
    result = CliRunner().invoke(cli, ["--quiet", "data", "stats", "recipes/pointrec.yaml"])
    assert result.exit_code == 0, result.output
    assert "source yelp_boston_tips (yelp_academic)" in result.output
    assert "fewer reviews than min_liked" in result.output and "0080-000-AL" in result.output

"""The `data` stage in the pipeline and the `mint-distill data` commands, on the fixtures."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from mint_distill.cli import cli
from mint_distill.io import read_jsonl
from mint_distill.pipeline import all_stages, run_pipeline
from mint_distill.recipe import load_recipe

FIXTURES = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINT_DISTILL_HOME", str(tmp_path / "home"))


def write_recipe(tmp_path: Path, data_dir: Path = FIXTURES, extra: str = "") -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(
        textwrap.dedent(f"""
        name: fixture
        run_dir: {tmp_path / "runs"}
        data:
          data_dir: {data_dir}
          source: {{format: yelp_academic, path: yelp_academic}}
          selection: {{min_liked: 3, category_blocklist: [Hotels]}}
          test: {{path: pointrec, download: false}}
    """)
        + extra
    )
    return path


def data_stage():
    return [stage for stage in all_stages() if stage.name == "data"]


def test_stage_writes_the_documented_records_and_skips_when_fresh(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path))
    result = run_pipeline(recipe, stages=data_stage(), quiet=True)
    assert result.ran == ["data"]
    folder = tmp_path / "runs" / "fixture" / "data"
    (user,) = list(read_jsonl(folder / "users.jsonl"))
    assert user["user_id"] == "alice" and user["split"] in ("train", "dev")
    assert user["origin"] == "history"
    assert sorted(item["item_id"] for item in user["items"]) == ["b1", "b2", "b4"]
    b1 = next(item for item in user["items"] if item["item_id"] == "b1")
    assert b1 == {
        "item_id": "b1",
        "name": "Neptune Oyster",
        "city": "Boston",
        "country": "US",
        "categories": ["Seafood", "Restaurants"],
        "main_category": "Restaurants and Food",
        "sub_categories": ["Seafood"],
        "sentence": "The lobster roll here is worth every minute of the wait.",
        "rating": None,
    }
    items = {item["item_id"]: item for item in read_jsonl(folder / "items.jsonl")}
    assert sorted(items) == ["b1", "b2", "b4", "b5"]  # b3 is a hotel
    assert set(items["b2"]) == {
        "item_id",
        "name",
        "categories",
        "city",
        "region",
        "country",
        "text",
    }
    assert items["b2"]["text"].startswith(
        "Wally's Cafe in Boston, US is known for nightlife. Specifically: jazz & blues, bars."
    )
    reviews = list(read_jsonl(folder / "reviews.jsonl"))
    assert [r["item_id"] for r in reviews] == [
        "b1",
        "b2",
        "b3",
        "b4",
        "b5",
    ]  # every review of the kept user
    assert set(reviews[0]) == {"user_id", "item_id", "text", "rating", "date"}
    stats = json.loads((folder / "stats.json").read_text())
    assert (
        stats["source"]["review_files"]["bad_rows"] == 1
        and stats["selection"]["users"]["kept"] == 1
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["summary"]["users"] == 1 and any(
        "tip.json" in path for path in manifest["input_files"]
    )
    assert run_pipeline(recipe, stages=data_stage(), quiet=True).skipped == ["data"]


def test_a_changed_source_file_reruns_the_stage(tmp_path):
    import shutil

    shutil.copytree(FIXTURES / "yelp_academic", tmp_path / "data" / "yelp_academic")
    recipe = load_recipe(write_recipe(tmp_path, tmp_path / "data"))
    run_pipeline(recipe, stages=data_stage(), quiet=True)
    tips = tmp_path / "data" / "yelp_academic" / "yelp_academic_dataset_tip.json"
    tips.write_text(
        tips.read_text()
        + json.dumps(
            {
                "user_id": "alice",
                "business_id": "b5",
                "text": "Their almond croissants are flaky and warm every morning.",
            }
        )
        + "\n"
    )
    assert run_pipeline(recipe, stages=data_stage(), quiet=True).ran == ["data"]


def test_check_reports_a_missing_source_it_cannot_fetch(tmp_path):
    (stage,) = data_stage()
    recipe = load_recipe(write_recipe(tmp_path, tmp_path))
    problems = stage.check(recipe)
    assert len(problems) == 1 and "data.source" in problems[0] and "folder not found" in problems[0]
    assert stage.check(load_recipe(write_recipe(tmp_path))) == []


def test_check_reports_a_missing_dev_request_file_although_the_source_is_still_to_fetch(tmp_path, monkeypatch):
    import io
    import urllib.request

    monkeypatch.setattr(urllib.request, "urlopen", lambda request, timeout: io.BytesIO())  # its origin answers
    (stage,) = data_stage()
    recipe = tmp_path / "fresh.yaml"
    to_fetch = "{format: yelp_academic, path: yelp_boston_tips, download: true}"
    recipe.write_text(
        write_recipe(tmp_path, tmp_path).read_text().replace("{format: yelp_academic, path: yelp_academic}", to_fetch)
        + f"  catalog: {{enabled: true, dev_requests: {tmp_path / 'missing.jsonl'}}}\n"
    )
    problems = stage.check(load_recipe(recipe))
    assert len(problems) == 1 and "missing.jsonl: file not found" in problems[0]


def test_data_stats_prints_source_selection_and_coverage_tables(tmp_path):
    out = tmp_path / "stats.json"
    result = CliRunner().invoke(
        cli, ["--quiet", "data", "stats", str(write_recipe(tmp_path)), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    for expected in (
        "source yelp_academic (yelp_academic)",
        "fewer reviews than min_liked",
        "item in a blocklisted",
        "shown to the teacher",
        "test collection coverage",
        "0001-000-RF",
        "malformed:",
    ):
        assert expected in result.output
    saved = json.loads(out.read_text())
    assert (
        saved["training"]["selection"]["users"]["kept"] == 1 and len(saved["test"]["coverage"]) == 3
    )


def test_data_stats_applies_overrides_and_exits_2_on_data_errors(tmp_path):
    recipe = str(write_recipe(tmp_path))
    result = CliRunner().invoke(
        cli, ["--quiet", "data", "stats", recipe, "data.selection.min_liked=6", "--no-test"]
    )
    assert result.exit_code == 2
    assert "no user has at least data.selection.min_liked=6 reviews" in result.output


def test_data_fetch_is_a_no_op_when_everything_is_present(tmp_path):
    result = CliRunner().invoke(cli, ["--quiet", "data", "fetch", str(write_recipe(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "data.source:" in result.output and "data.test:" in result.output

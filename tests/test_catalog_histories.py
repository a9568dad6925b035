"""Catalog adaptation in the data stage: pseudo-histories from a tiny Pointrec-layout catalog."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures.catalog.catalog_data import (
    BOILERPLATE,
    BUSINESSES,
    GROUPS,
    poi_records,
    write_catalog_recipe,
    write_pointrec_folder,
    write_yelp_folder,
)

from mint_distill.cli import cli
from mint_distill.data.build import prepare_training_data
from mint_distill.data.catalog_entries import POINTREC_PREFIX, pick_sentences, sentence_candidates
from mint_distill.data.pointrec import poi_text
from mint_distill.data.pseudo_histories import catalog_history_count
from mint_distill.io import read_jsonl
from mint_distill.pipeline import all_stages, run_pipeline
from mint_distill.recipe import load_recipe
from mint_distill.recipe.sections.data import SelectionSpec, TestCollectionSpec

USERS = 6


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINT_DISTILL_HOME", str(tmp_path / "home"))


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A Yelp-academic training source of USERS users and the Pointrec-like catalog."""
    folder = tmp_path / "data"
    write_pointrec_folder(folder / "pointrec")
    write_yelp_folder(folder / "yelp", USERS)
    return folder


def run_data_stage(recipe_path: Path, *overrides: str) -> Path:
    recipe = load_recipe(recipe_path, overrides)
    run_pipeline(recipe, stages=[s for s in all_stages() if s.name == "data"], quiet=True)
    return Path(recipe.run_dir) / recipe.name / "data"


def judged_in_qrels(folder: Path) -> set[str]:
    return {
        line.split()[2] for line in (folder / "raw/relevance/qrels.trec").read_text().splitlines()
    }


def catalog_users(folder: Path) -> list[dict]:
    return [user for user in read_jsonl(folder / "users.jsonl") if user["origin"] == "catalog"]


def test_histories_share_their_group_and_never_show_a_judged_poi(tmp_path, data_dir):
    out = run_data_stage(write_catalog_recipe(tmp_path, data_dir), "data.catalog.fraction=0.9")
    users = catalog_users(out)
    judged = judged_in_qrels(data_dir / "pointrec")
    # 4 groups of 12 POIs with snippets, 2 judged each: 10 eligible, so 2 histories of 5 per group
    assert len(users) == 4 * 2
    shown = [item["item_id"] for user in users for item in user["items"]]
    assert len(shown) == len(set(shown)) == 8 * 5
    assert all(item_id.startswith(POINTREC_PREFIX) for item_id in shown)
    assert not {item_id.removeprefix(POINTREC_PREFIX) for item_id in shown} & judged
    for user in users:
        assert len(user["items"]) == 5 and user["split"] in ("train", "dev")
        for item in user["items"]:
            assert {"city": item["city"], "main_category": item["main_category"]} == user["group"]
            assert item["sentence"] != BOILERPLATE and 5 <= len(item["sentence"].split()) <= 20
    assert {(u["group"]["city"], u["group"]["main_category"]) for u in users} == {
        (city, main) for city, _, main in GROUPS
    }
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    assert summary["catalog_histories"] == 8 and summary["judged_excluded"] == 8
    assert summary["users"] == USERS  # the real users are kept beside the catalog histories


def test_catalog_items_carry_the_rankers_poi_text(tmp_path, data_dir):
    out = run_data_stage(write_catalog_recipe(tmp_path, data_dir), "data.catalog.fraction=0.9")
    items = {item["item_id"]: item for item in read_jsonl(out / "items.jsonl")}
    spec = TestCollectionSpec()
    raw = {}
    with gzip.open(
        data_dir / "pointrec/poi/poi_catalog_available_compact.jsonl.gz", "rt"
    ) as handle:
        for line in handle:
            record = json.loads(line)
            snippets = record.pop("snippets")
            record["snippet_titles"] = [s["title"] for s in snippets]
            record["snippet_texts"] = [s["snippet"] for s in snippets]
            raw[record["poi_id"]] = record
    shown = {item["item_id"] for user in catalog_users(out) for item in user["items"]}
    assert shown <= set(items)
    for item_id in shown:
        assert items[item_id]["text"] == poi_text(raw[item_id.removeprefix(POINTREC_PREFIX)], spec)
    assert {"b1", "b2", "b3", "b4", "b5"} <= set(items)  # the training catalog is still there


@pytest.mark.parametrize(
    ("users", "fraction", "cap", "available", "expected"),
    [
        (10, 0.0, None, 100, 0),
        (10, 0.5, None, 100, 10),
        (10, 0.25, None, 100, 3),  # 3 / (10 + 3) is the nearest share to 0.25
        (10, 0.75, None, 100, 30),
        (10, 1.0, None, 100, 100),  # catalog only: all the groups hold, unless capped
        (10, 1.0, 10, 100, 10),
        (10, 0.5, 4, 100, 4),
        (10, 0.75, None, 7, 7),
    ],
)
def test_catalog_history_count(users, fraction, cap, available, expected):
    assert catalog_history_count(users, fraction, cap, available) == expected


def test_fraction_zero_half_and_one_in_the_stage(tmp_path, data_dir):
    recipe = write_catalog_recipe(tmp_path, data_dir)
    origins = {}
    for fraction in (0, 0.5, 1):
        out = run_data_stage(
            recipe, f"data.catalog.fraction={fraction}", f"data.catalog.max_histories={USERS}"
        )
        records = list(read_jsonl(out / "users.jsonl"))
        origins[fraction] = [r["origin"] for r in records]
    assert origins[0] == ["history"] * USERS
    assert sorted(origins[0.5]) == ["catalog"] * USERS + ["history"] * USERS
    assert origins[1] == ["catalog"] * USERS  # catalog data only, as many as max_histories
    stats = json.loads((out / "stats.json").read_text())
    assert stats["catalog"]["user_histories_dropped"] == USERS


def test_histories_are_deterministic_given_the_seed(tmp_path, data_dir):
    recipe = write_catalog_recipe(tmp_path, data_dir, "{enabled: true, fraction: 0.5}")

    def histories(seed: int) -> list[list[str]]:
        section = load_recipe(recipe, [f"data.catalog.seed={seed}"]).data
        extra = prepare_training_data(section).catalog_histories
        return [[item["item_id"] for item in user["items"]] for user in extra.users]

    first = histories(0)
    assert first == histories(0)
    assert first != histories(1)


def test_disabled_catalog_writes_no_catalog_history(tmp_path, data_dir):
    out = run_data_stage(write_catalog_recipe(tmp_path, data_dir, "{enabled: false}"))
    assert {u["origin"] for u in read_jsonl(out / "users.jsonl")} == {"history"}
    assert "catalog_histories" not in json.loads((out / "manifest.json").read_text())["summary"]


def test_judged_pois_are_used_only_when_exclusion_is_off(tmp_path, data_dir):
    out = run_data_stage(
        write_catalog_recipe(tmp_path, data_dir),
        "data.catalog.exclude_judged=false",
        "data.catalog.fraction=0.9",
    )
    shown = {
        i["item_id"].removeprefix(POINTREC_PREFIX) for u in catalog_users(out) for i in u["items"]
    }
    assert shown & judged_in_qrels(data_dir / "pointrec")
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    # the evaluation report then says so, instead of "the 0 judged POIs were excluded"
    assert summary["judged_items_allowed"] is True and "judged_excluded" not in summary


def test_the_category_blocklist_keeps_test_catalog_pois_out_too(tmp_path, data_dir):
    recipe = write_catalog_recipe(tmp_path, data_dir)
    out = run_data_stage(recipe, "data.catalog.fraction=0.9", "data.selection.category_blocklist=[izakaya]")
    shown = [item for user in catalog_users(out) for item in user["items"]]
    assert shown and not [item for item in shown if "Izakaya" in item["categories"]]
    # 7 of the Kyoto restaurants group's 10 eligible POIs list Izakaya (two sub-categories of three each)
    assert json.loads((out / "stats.json").read_text())["catalog"]["blocklisted"] == 7
    everything = run_data_stage(recipe, "data.catalog.fraction=0.9", "name=unblocked")
    assert [item for user in catalog_users(everything) for item in user["items"] if "Izakaya" in item["categories"]]


def test_sentences_skip_boilerplate_and_keep_to_the_token_bounds():
    selection = SelectionSpec(sentence_min_tokens=3, sentence_max_tokens=6)
    assert sentence_candidates(["Hi. Great cold beer on tap.", "Tiny."], selection) == [
        "Great cold beer on tap."
    ]
    long = "one two three four five six seven eight"
    assert sentence_candidates([long], selection) == ["one two three four five six"]
    assert sentence_candidates(["Ok.", ""], selection) == []
    picked = pick_sentences(
        {
            "a": ["Shared line here.", "Own line of a."],
            "b": ["Shared line here."],
            "c": ["Shared line here."],
        },
        boilerplate=3,
    )
    assert picked == {"a": "Own line of a."}


def test_training_source_groups_the_training_catalog(tmp_path, data_dir):
    out = run_data_stage(
        write_catalog_recipe(tmp_path, data_dir, "{enabled: true, source: training, items_per_history: 2}")
    )
    items = {item["item_id"]: item for item in read_jsonl(out / "items.jsonl")}
    users = catalog_users(out)
    assert users and set(items) == {b[0] for b in BUSINESSES}  # nothing added, nothing namespaced
    for user in users:
        assert len({(i["city"], i["main_category"]) for i in user["items"]}) == 1
        assert all(i["item_id"] in items for i in user["items"])
    stats = json.loads((out / "stats.json").read_text())["catalog"]
    assert stats["source"] == "training" and stats["items_added"] == 0 and "judged_ids" not in stats


def test_data_stats_shows_the_catalog_histories(tmp_path, data_dir):
    out = tmp_path / "stats.json"
    result = CliRunner().invoke(
        cli,
        [
            "--quiet",
            "data",
            "stats",
            str(write_catalog_recipe(tmp_path, data_dir)),
            "--no-test",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "catalog histories (source: test" in result.output
    assert "of them in this catalog (never used)" in result.output
    catalog = json.loads(out.read_text())["training"]["catalog"]
    records = poi_records()
    assert catalog["catalog_items"] == len(records)
    assert catalog["with_snippets"] == sum(1 for r in records if r["snippets"])
    assert catalog["judged_in_catalog"] == 8 and catalog["judged_ids"] == 10
    assert catalog["groups_too_small"] == 1 and catalog["histories"] == USERS


def test_bad_group_attribute_names_the_key(tmp_path, data_dir):
    result = CliRunner().invoke(
        cli,
        [
            "--quiet",
            "data",
            "stats",
            str(write_catalog_recipe(tmp_path, data_dir)),
            "data.catalog.group_by=[street]",
        ],
    )
    assert result.exit_code == 2
    assert "data.catalog.group_by" in result.output and "main_category" in result.output


def test_no_group_large_enough_is_an_error_naming_the_key(tmp_path, data_dir):
    result = CliRunner().invoke(
        cli,
        [
            "--quiet",
            "data",
            "stats",
            str(write_catalog_recipe(tmp_path, data_dir)),
            "data.catalog.items_per_history=50",
            "--no-test",
        ],
    )
    assert result.exit_code == 2
    assert "data.catalog" in result.output and "items_per_history=50" in result.output

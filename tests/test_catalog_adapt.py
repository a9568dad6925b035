"""`adapt` with a new catalog: catalog histories from the training source's own items."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mint_distill.adapters.adapt import build_adapt_recipe
from mint_distill.cli import cli
from mint_distill.io import read_jsonl
from mint_distill.pipeline import all_stages, run_pipeline

REPO = Path(__file__).resolve().parents[1]
ITEMS = {
    "s1": ("Bright Nickel Strings", "Strings, Guitars"),
    "s2": ("Flatwound Bass Set", "Strings, Bass"),
    "s3": ("Nylon Classical Set", "Strings, Guitars"),
    "p1": ("Warm Overdrive Pedal", "Pedals, Effects"),
    "p2": ("Tape Echo Pedal", "Pedals, Effects"),
    "p3": ("Tiny Tuner Pedal", "Pedals, Tuners"),
}
CATALOG = [
    "data.catalog.enabled=true",
    "data.catalog.source=training",
    "data.catalog.group_by=[main_category]",
    "data.catalog.items_per_history=3",
]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINT_DISTILL_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(REPO)  # adapt's default base recipe is recipes/pointrec.yaml


def spec_file(tmp_path: Path) -> Path:
    """A table source: 6 users who each rate 4 of 6 instrument items, and an item table."""
    with open(tmp_path / "reviews.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "item", "review", "stars"])
        ids = list(ITEMS)
        for user in range(6):
            for item_id in ids[user % 3 : user % 3 + 4]:
                name = ITEMS[item_id][0]
                writer.writerow(
                    [f"u{user}", item_id, f"Player {user} says the {name} sounds great live.", 5]
                )
    with open(tmp_path / "items.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "title", "categories"])
        writer.writerows(
            [item_id, name, categories] for item_id, (name, categories) in ITEMS.items()
        )
    spec = {
        "format": "table",
        "path": "reviews.csv",
        "columns": {"user": "user", "item": "item", "text": "review", "rating": "stars"},
        "items": {"path": "items.csv", "item": "item", "name": "title", "categories": "categories"},
    }
    path = tmp_path / "gear.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_adapt_builds_catalog_histories_from_the_new_catalog(tmp_path):
    recipe = build_adapt_recipe(
        "gear",
        spec_file(tmp_path),
        overrides=[f"run_dir={tmp_path / 'runs'}", "data.selection.min_liked=3", *CATALOG],
    )
    assert recipe.data.catalog.enabled and recipe.data.catalog.source == "training"
    run_pipeline(recipe, stages=[s for s in all_stages() if s.name == "data"], quiet=True)
    out = tmp_path / "runs" / "adapt-gear" / "data"
    users = list(read_jsonl(out / "users.jsonl"))
    catalog = [u for u in users if u["origin"] == "catalog"]
    assert len(catalog) == 2  # one history of 3 per main category; each item in one history
    for user in catalog:
        mains = {item["main_category"] for item in user["items"]}
        assert mains == {user["group"]["main_category"]} and len(user["items"]) == 3
    shown = sorted(item["item_id"] for user in catalog for item in user["items"])
    assert shown == sorted(ITEMS)
    assert sorted(item["item_id"] for item in read_jsonl(out / "items.jsonl")) == sorted(ITEMS)
    assert sum(u["origin"] == "history" for u in users) == 6


def test_adapt_dry_run_takes_catalog_overrides(tmp_path):
    result = CliRunner().invoke(
        cli,
        ["adapt", "--domain", "gear", "--data", str(spec_file(tmp_path)), "--dry-run", *CATALOG],
    )
    assert result.exit_code == 0, result.output
    catalog = yaml.safe_load(result.output)["data"]["catalog"]
    assert catalog["enabled"] is True and catalog["source"] == "training"
    assert catalog["group_by"] == ["main_category"]

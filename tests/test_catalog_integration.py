"""Catalog adaptation on the real shared data: recipes/pointrec.yaml's data stage with the catalog on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mint_distill.data.catalog_entries import POINTREC_PREFIX
from mint_distill.data.dev_requests import dev_collection, dev_item_ids, read_dev_requests
from mint_distill.data.poi_catalog import load_poi_catalog
from mint_distill.data.pointrec import qrels_file, read_judged_ids
from mint_distill.io import read_jsonl
from mint_distill.pipeline import all_stages, run_pipeline
from mint_distill.recipe import load_recipe
from mint_distill.recipe.sections.data import TestCollectionSpec

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("private_mint_home")]
REPO = Path(__file__).resolve().parents[1]


def test_pointrec_recipe_with_catalog_histories(shared_data, tmp_path):
    recipe = load_recipe(
        REPO / "recipes" / "pointrec.yaml",
        [
            f"run_dir={tmp_path}",
            f"data.data_dir={shared_data}",
            "data.source.download=false",
            "data.test.download=false",
            "data.catalog.enabled=true",
            "data.catalog.source=test",
            "data.catalog.fraction=0.5",
            "data.catalog.exclude_judged=true",
        ],
    )
    run_pipeline(recipe, stages=[s for s in all_stages() if s.name == "data"], quiet=True)
    out = tmp_path / recipe.name / "data"
    qrels = shared_data / "pointrec" / "raw" / "relevance" / "qrels.trec"
    judged = {line.split()[2] for line in qrels.read_text().splitlines() if line.strip()}
    users = list(read_jsonl(out / "users.jsonl"))
    real = [u for u in users if u["origin"] == "history"]
    catalog = [u for u in users if u["origin"] == "catalog"]
    assert len(catalog) == len(real) > 100  # fraction 0.5: as many catalog as user histories
    shown = [item["item_id"] for user in catalog for item in user["items"]]
    assert len(shown) == len(set(shown)) == 5 * len(catalog)
    assert not {item_id.removeprefix(POINTREC_PREFIX) for item_id in shown} & judged
    items = {item["item_id"]: item for item in read_jsonl(out / "items.jsonl")}
    for item_id in shown:
        item = items[item_id]
        where = (
            f" in {item['city']}, {item['country']} is known for {item['main_category'].lower()}."
        )
        assert item["text"].startswith(item["name"]) and where in item["text"]
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    # shared/data/pointrec/README.md: 1,280 of the 4,448 judged POIs have a record here
    assert summary["judged_excluded"] == 1280
    stats = json.loads((out / "stats.json").read_text())["catalog"]
    assert stats["judged_ids"] == 4448 and stats["histories_available"] > 1000
    assert stats["groups"] > 100 and stats["items_added"] == len(shown)


def test_shipped_dev_requests_grade_unjudged_catalog_pois_and_the_sets_share_none(shared_data):
    files = sorted((REPO / "recipes" / "dev").glob("*.jsonl"))
    assert [f.name for f in files] == ["poi_catalog.jsonl", "poi_catalog_b.jsonl"]
    catalog = load_poi_catalog(shared_data / "pointrec")
    judged = {POINTREC_PREFIX + poi for poi in read_judged_ids(qrels_file(shared_data / "pointrec"))}
    pools = []
    for path in files:
        requests = read_dev_requests(path)
        collection = dev_collection([path], TestCollectionSpec(), catalog)  # every POI is in the catalog
        assert all(len(pool) == 15 for pool in collection.pools.values())
        pools.append(dev_item_ids(requests))
    assert not (pools[0] | pools[1]) & judged
    assert not pools[0] & pools[1]

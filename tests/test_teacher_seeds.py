"""The shipped seed examples: enough of them, well formed, and requests that pass the teacher's gates."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mint_distill.teacher.gates import GateSettings, check_request
from mint_distill.teacher.histories import load_seeds
from mint_distill.teacher.prompts import PromptTemplate

SEED_FILE = Path(__file__).resolve().parents[1] / "recipes" / "seeds" / "poi.jsonl"


@pytest.fixture(scope="module")
def seeds():
    return load_seeds(SEED_FILE)


def test_enough_seeds_with_a_train_dev_split(seeds):
    assert len(seeds) >= 60
    splits = Counter(s.split for s in seeds)
    assert 0.15 <= splits["dev"] / len(seeds) <= 0.25
    assert len({s.seed_id for s in seeds}) == len(seeds)
    assert Counter(s.source for s in seeds).most_common(1)[0][0] == "yelp_boston_tips"


def test_histories_look_like_the_data_layer_shows_them(seeds):
    for seed in seeds:
        assert 1 <= len(seed.history.items) <= 10, seed.seed_id
        for item in seed.history.items:
            assert 5 <= len(item.sentence.split()) <= 20, (seed.seed_id, item.sentence)


def test_requests_are_first_person_and_50_to_150_words(seeds):
    for seed in seeds:
        words = seed.request.split()
        assert 50 <= len(words) <= 150, (seed.seed_id, len(words))
        assert {"i", "i'm", "we", "my", "our", "we're", "i'd"} & {
            w.strip(",.!?").lower() for w in words
        }, seed.seed_id


def test_requests_pass_the_gates_and_do_not_name_the_items(seeds):
    template = PromptTemplate()
    for seed in seeds:
        reasons = check_request(
            seed.request,
            prompt_text=template.render(seed.history.items),
            items=seed.history.items,
            scaffold=template.scaffold_phrases(),
            settings=GateSettings(),
        )
        assert reasons == [], (seed.seed_id, reasons)


def test_requests_are_all_different(seeds):
    assert len({s.request for s in seeds}) == len(seeds)


def test_catalog_seeds_are_pointrec_pois_with_a_train_dev_split(seeds):
    catalog = [s for s in seeds if s.source == "pointrec_catalog"]
    assert len(catalog) == 8 and Counter(s.split for s in catalog) == {"train": 6, "dev": 2}
    for seed in catalog:
        assert all(item.item_id.startswith("pointrec:") for item in seed.history.items)
        assert len({item.city for item in seed.history.items}) == 1


def test_catalog_seeds_show_no_poi_judged_in_the_test_collection(seeds, shared_data):
    from mint_distill.data.pointrec import qrels_file, read_judged_ids

    judged = read_judged_ids(qrels_file(shared_data / "pointrec"))
    shown = {
        item.item_id.removeprefix("pointrec:")
        for seed in seeds
        if seed.source == "pointrec_catalog"
        for item in seed.history.items
    }
    assert len(shown) == 40 and not shown & judged


def test_no_reviewer_names_in_zomato_seeds(seeds):
    """Zomato has only display names; seeds carry a hashed id instead."""
    for line in SEED_FILE.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["source"] == "zomato_hyderabad":
            assert (
                record["user_id"].startswith("zomato-")
                and len(record["user_id"]) == len("zomato-") + 12
            )

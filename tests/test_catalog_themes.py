"""Theme-coherent catalog pseudo-histories (`data.catalog.similar_by`): nearest neighbours in a group."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures.catalog.catalog_data import (
    write_catalog_recipe,
    write_pointrec_folder,
    write_yelp_folder,
)

from mint_distill.data.build import prepare_training_data
from mint_distill.data.catalog_entries import CatalogEntry
from mint_distill.data.pseudo_histories import disjoint_histories, group_entries, similar_histories
from mint_distill.recipe import load_recipe

THEMES = ("jazz", "sushi", "museum")


def entry(number: int, city: str, theme: str) -> CatalogEntry:
    return CatalogEntry(
        item_id=f"poi{number:03d}",
        name=f"place {number}",
        city=city,
        region=None,
        country="XX",
        main_category="Things",
        sub_categories=(theme,),
        categories=("Things", theme),
        sentence=f"a {theme} place",
        text=f"place {number} in {city}: a {theme} place",
    )


def theme_vectors(texts: list[str]) -> np.ndarray:
    """One axis per theme, scaled so that cosines, not lengths, must decide."""
    return np.array(
        [[(1.0 + n % 3) * (theme in text) for theme in THEMES] for n, text in enumerate(texts)]
    )


def test_each_history_is_its_anchor_and_the_nearest_unused_items_of_its_group():
    # Two cities; in each, 5 POIs of every theme, in an order that interleaves the themes.
    entries = [
        entry(number, city, THEMES[number % 3])
        for number, city in enumerate(["Lisbon"] * 15 + ["Kyoto"] * 15)
    ]
    groups = group_entries(entries, ["city"])
    similar = similar_histories(groups, 5, seed=7, encode=theme_vectors)
    random_draw = disjoint_histories(groups, 5, seed=7)

    assert len(similar) == len(random_draw) == 6
    shown = [e.item_id for _, history in similar for e in history]
    assert len(shown) == len(set(shown)) == 30
    for key, history in similar:
        assert {e.city for e in history} == {key[0]}
        assert len({e.sub_categories for e in history}) == 1, [e.text for e in history]
    assert sum(len({e.sub_categories for e in h}) == 1 for _, h in random_draw) < 6
    # Both start each group from the same seeded first member.
    for city in ("Lisbon", "Kyoto"):
        random_firsts = {h[0].item_id for key, h in random_draw if key == (city,)}
        anchors = {h[0].item_id for key, h in similar if key == (city,)}
        assert random_firsts & anchors


def test_histories_of_one_item_are_each_item_once_as_the_random_draw_gives_them():
    groups = group_entries([entry(n, "Lisbon", THEMES[n % 3]) for n in range(4)], ["city"])
    similar = similar_histories(groups, 1, seed=3, encode=theme_vectors)
    assert [h for _, h in similar] == [h for _, h in disjoint_histories(groups, 1, seed=3)]
    assert sorted(e.item_id for _, (e,) in similar) == [f"poi{n:03d}" for n in range(4)]


def test_groups_too_small_for_a_history_encode_nothing():
    def refuse(texts: list[str]) -> np.ndarray:
        raise AssertionError(f"encoded {len(texts)} texts")

    groups = group_entries([entry(n, "Lisbon", "jazz") for n in range(4)], ["city"])
    assert similar_histories(groups, 5, seed=0, encode=refuse) == []


@pytest.fixture
def data_dir(tmp_path) -> Path:
    folder = tmp_path / "data"
    write_pointrec_folder(folder / "pointrec")
    write_yelp_folder(folder / "yelp", 6)
    return folder


def test_similar_by_groups_pois_of_one_sub_category_with_the_embedded_encoder(tmp_path, data_dir):
    recipe = write_catalog_recipe(
        tmp_path, data_dir, "{enabled: true, fraction: 0.9, similar_by: embedded:all-minilm-l6-v2}"
    )
    section = load_recipe(recipe).data
    cache = tmp_path / "cache"
    histories = prepare_training_data(section, cache_dir=cache).catalog_histories
    random_histories = prepare_training_data(
        load_recipe(recipe, ["data.catalog.similar_by=null"]).data
    )

    def shared_sub_category(users: list[dict]) -> float:
        """Mean share of a history's items whose first sub-category is its anchor's."""
        shares = [
            sum(
                i["sub_categories"][0] == u["items"][0]["sub_categories"][0] for i in u["items"][1:]
            )
            / (len(u["items"]) - 1)
            for u in users
        ]
        return sum(shares) / len(shares)

    users = histories.users
    assert len(users) == len(random_histories.catalog_histories.users) == 8
    assert histories.stats["similar_by"] == "embedded:all-minilm-l6-v2"
    assert "similar_by" not in random_histories.catalog_histories.stats
    # Each group of 10 eligible POIs cycles 3 sub-categories: an anchor has 2-3 like it.
    assert (
        shared_sub_category(users)
        > shared_sub_category(random_histories.catalog_histories.users) + 0.2
    )
    assert any(cache.rglob("*")), "the item vectors are kept in the cache folder"

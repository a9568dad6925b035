"""Mint's user selection: liked threshold, N..M, blocklist, sentence choice, budgets, split, errors, memory."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from mint_distill.data.bench import write_synthetic_source
from mint_distill.data.build import prepare_training_data
from mint_distill.data.selection import split_of
from mint_distill.errors import DataError
from mint_distill.recipe.sections.data import DataSection

VOCABULARY = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa"
)
WORDS = VOCABULARY.split()


def sentence(n: int, tag: str) -> str:
    """A sentence of exactly n tokens, unique by `tag`."""
    return " ".join([tag, *WORDS[: n - 1]]) + "."


def section(
    tmp_path: Path, reviews: list[dict], items: list[dict] | None = None, **selection
) -> DataSection:
    with open(tmp_path / "reviews.jsonl", "w", encoding="utf-8") as handle:
        for review in reviews:
            handle.write(json.dumps(review) + "\n")
    source = {
        "format": "table",
        "path": "reviews.jsonl",
        "columns": {"user": "user", "item": "item", "text": "text", "rating": "rating"},
    }
    if items is not None:
        with open(tmp_path / "items.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(item) + "\n" for item in items)
        source["items"] = {
            "path": "items.jsonl",
            "item": "item",
            "name": "name",
            "categories": "categories",
        }
    return DataSection(data_dir=str(tmp_path), source=source, selection=selection)


def review(user: str, item: str, rating: float | None = None, text: str | None = None) -> dict:
    return {
        "user": user,
        "item": item,
        "rating": rating,
        "text": text or sentence(8, f"{user}-{item}"),
    }


def shown(data) -> dict[str, list[str]]:
    return {user.user_id: sorted(i.item_id for i in user.items) for user in data.selection.users}


def test_liked_means_at_or_above_the_users_own_mean_and_unrated_counts_as_liked(tmp_path):
    reviews = [
        review("u1", "i1", 5),
        review("u1", "i2", 4),
        review("u1", "i3", 3),
        review("u1", "i4", 1),  # mean 3.25
        review("u2", "i1", 4),
        review("u2", "i2", 4),  # mean 4: both at the mean
        review("u3", "i3"),
        review("u3", "i4"),  # tips: no ratings
    ]
    data = prepare_training_data(section(tmp_path, reviews, min_liked=2))
    assert shown(data) == {"u1": ["i1", "i2"], "u2": ["i1", "i2"], "u3": ["i3", "i4"]}
    assert data.stats["selection"]["reviews_removed_among_candidates"]["not_liked"] == 2


def test_users_need_between_min_and_max_usable_liked_items(tmp_path):
    reviews = []
    for user, count in (("two", 2), ("three", 3), ("four", 4), ("five", 5)):
        reviews += [review(user, f"i{k}") for k in range(count)]
    # four reviews, but one has no 5-20 token sentence: only three usable items
    reviews += [review("short", f"i{k}") for k in range(3)] + [
        review("short", "i9", text="Too short.")
    ]
    reviews += [
        review("short2", "i0"),
        review("short2", "i1"),
        review("short2", "i2", text="Nope."),
        review("short2", "i3", text="No."),
    ]
    data = prepare_training_data(section(tmp_path, reviews, min_liked=3, max_liked=4))
    assert sorted(shown(data)) == ["four", "short", "three"]
    funnel = data.stats["selection"]["users"]
    assert funnel["fewer_reviews_than_min_liked"] == 1  # "two"
    assert funnel["too_few_usable_liked_items"] == 1  # "short2"
    assert funnel["too_many_usable_liked_items"] == 1  # "five"
    assert funnel["kept"] == 3 and funnel["train"] + funnel["dev"] == 3
    assert data.stats["selection"]["reviews_removed_among_candidates"]["no_short_sentence"] == 3


def test_repeat_reviews_of_one_item_count_once_and_the_first_usable_review_gives_the_sentence(
    tmp_path,
):
    reviews = [
        review("u", "i1", text="Bad."),
        review("u", "i1", text=sentence(7, "second")),
        review("u", "i1", text=sentence(9, "third")),
        review("u", "i2"),
    ]
    data = prepare_training_data(section(tmp_path, reviews, min_liked=2, max_liked=2))
    (user,) = data.selection.users
    assert {i.item_id: i.sentence for i in user.items} == {
        "i1": sentence(7, "second"),
        "i2": sentence(8, "u-i2"),
    }


def test_blocklisted_categories_remove_items_case_insensitively(tmp_path):
    items = [{"item": "h1", "name": "Inn", "categories": "Hotels, Travel"}] + [
        {"item": f"i{k}", "name": f"Place {k}", "categories": "Restaurants"} for k in range(3)
    ]
    reviews = [review("u", "h1")] + [review("u", f"i{k}") for k in range(3)]
    data = prepare_training_data(
        section(tmp_path, reviews, items, min_liked=3, category_blocklist=["hotels"])
    )
    assert shown(data) == {"u": ["i0", "i1", "i2"]}
    assert data.stats["selection"]["reviews_removed_among_candidates"]["blocklisted_category"] == 1
    assert data.stats["items"]["blocklisted"] == 1 and data.stats["items"]["written"] == 3
    records = list(data.catalog.records(DataSection.model_fields["item_text"].default, {"hotels"}))
    assert [r["item_id"] for r in records] == ["i0", "i1", "i2"]


def test_the_sentence_is_one_of_the_first_five_qualifying_ones(tmp_path):
    qualifying = [sentence(5 + k, f"q{k}") for k in range(7)]  # q0..q6, 5..11 tokens
    text = " ".join(["Tiny one.", " ".join(["long"] * 25) + ".", *qualifying])
    reviews = [review("u", f"i{k}", text=text) for k in range(40)]
    first_five = set(qualifying[:5])
    chosen_by_seed = []
    for seed in (0, 1):
        data = prepare_training_data(
            section(
                tmp_path,
                reviews,
                min_liked=40,
                max_liked=40,
                max_items=30,
                max_tokens=600,
                seed=seed,
            )
        )
        (user,) = data.selection.users
        chosen = {item.item_id: item.sentence for item in user.items}
        assert len(chosen) == 30 and set(chosen.values()) <= first_five
        chosen_by_seed.append(chosen)
    by_0, by_1 = chosen_by_seed
    assert len(set(by_0.values())) > 1  # a choice, not always the first
    # the seed picks the 30 of 40 items and, on the (at least 20) items both seeds picked, the sentences
    assert set(by_0) != set(by_1)
    both = sorted(set(by_0) & set(by_1))
    assert len(both) >= 20
    assert [by_0[item] for item in both] != [by_1[item] for item in both]
    again = prepare_training_data(
        section(tmp_path, reviews, min_liked=40, max_liked=40, max_items=30, max_tokens=600, seed=1)
    )
    assert sorted(again.selection.users[0].items, key=lambda i: i.item_id) == sorted(
        data.selection.users[0].items, key=lambda i: i.item_id
    )


def test_items_are_capped_then_halved_while_over_the_token_budget(tmp_path):
    reviews = [review("u", f"i{k}", text=sentence(20, f"s{k}")) for k in range(12)]
    capped = prepare_training_data(
        section(tmp_path, reviews, min_liked=12, max_items=10, max_tokens=200)
    )
    assert len(capped.selection.users[0].items) == 10
    assert capped.stats["selection"]["items"] == {
        "usable": 12,
        "over_max_items": 2,
        "over_max_tokens": 0,
        "shown": 10,
    }
    # 10 items x 20 tokens = 200 > 50 -> 5 items (100) -> 2 items (40)
    halved = prepare_training_data(
        section(tmp_path, reviews, min_liked=12, max_items=10, max_tokens=50)
    )
    assert len(halved.selection.users[0].items) == 2
    assert halved.stats["selection"]["items"]["over_max_tokens"] == 8
    assert {i.item_id for i in halved.selection.users[0].items} <= {
        i.item_id for i in capped.selection.users[0].items
    }


def test_max_users_keeps_a_seeded_sample(tmp_path):
    reviews = [review(f"u{n:02d}", f"i{k}") for n in range(40) for k in range(3)]

    def sample(seed: int) -> list[str]:
        data = prepare_training_data(
            section(tmp_path, reviews, min_liked=3, max_users=10, seed=seed)
        )
        assert data.stats["selection"]["users"]["over_max_users"] == 30
        return [u.user_id for u in data.selection.users]

    first = sample(0)
    assert len(first) == 10 and first == sample(0)
    # 10 of 40 users: another seed gives another sample, and it is not the first 10 in file order
    assert set(first) != set(sample(1))
    assert first != [f"u{n:02d}" for n in range(10)]


def test_split_is_a_stable_hash_of_seed_and_user():
    users = [f"user-{n}" for n in range(20000)]
    splits = [split_of(user, 0, 0.1) for user in users]
    assert abs(splits.count("dev") / len(users) - 0.1) < 0.01
    assert splits == [split_of(user, 0, 0.1) for user in users]
    assert splits != [split_of(user, 1, 0.1) for user in users]
    assert all(split_of(user, 0, 0.0) == "train" for user in users[:100])


def test_split_does_not_depend_on_file_order(tmp_path):
    reviews = [review(f"u{n}", f"i{k}") for n in range(40) for k in range(3)]
    forward = prepare_training_data(section(tmp_path, reviews, min_liked=3, dev_fraction=0.3))
    backward = prepare_training_data(
        section(tmp_path, reviews[::-1], min_liked=3, dev_fraction=0.3)
    )
    assert {u.user_id: u.split for u in forward.selection.users} == {
        u.user_id: u.split for u in backward.selection.users
    }
    assert {u.split for u in forward.selection.users} == {"train", "dev"}


def test_nobody_with_enough_reviews_names_min_liked(tmp_path):
    reviews = [review("u", f"i{k}") for k in range(3)]
    with pytest.raises(DataError, match=r"no user has at least data.selection.min_liked=4 reviews"):
        prepare_training_data(section(tmp_path, reviews, min_liked=4))


def test_everyone_over_max_liked_says_to_raise_it(tmp_path):
    reviews = [review("u", f"i{k}") for k in range(5)]
    with pytest.raises(DataError, match=r"more than data.selection.max_liked=4 usable liked items"):
        prepare_training_data(section(tmp_path, reviews, min_liked=3, max_liked=4))


def test_empty_result_names_the_filter_that_removed_everything(tmp_path):
    reviews = [review("u", f"i{k}", text="Far too short.") for k in range(4)]
    with pytest.raises(DataError) as caught:
        prepare_training_data(section(tmp_path, reviews, min_liked=3))
    message = str(caught.value)
    assert (
        "no_short_sentence: 4" in message
        and "min_liked=3" in message
        and "the most any user has is 0" in message
    )


def test_a_field_missing_from_every_row_is_named(tmp_path):
    reviews = [{"user": "u", "item": "i", "rating": 5}] * 3
    with pytest.raises(DataError, match=r"field `text` missing or empty in 3"):
        prepare_training_data(section(tmp_path, reviews, min_liked=1))


def test_selection_streams_with_memory_bounded_by_users_not_file_size(tmp_path):
    """A 17 MiB file of long reviews: peak Python allocations stay a small fraction of it (about 2 MiB)."""
    folder = write_synthetic_source(tmp_path / "yelp", lines=5000, users=400, items=300, words=600)
    size = (folder / "review.json").stat().st_size
    assert size > 15 * 2**20
    data_section = DataSection(
        data_dir=str(tmp_path),
        source={"format": "yelp_open", "path": "yelp"},
        selection={"min_liked": 5, "max_liked": 30},
    )
    tracemalloc.start()
    try:
        data = prepare_training_data(data_section)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert data.stats["source"]["reviews"] == 5000 and data.selection.users
    assert peak < size / 6, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB file"

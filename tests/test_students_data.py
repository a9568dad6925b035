"""Students' inputs, batching, negative mining and dev measures (no model training here)."""

from __future__ import annotations

import json
import random

import pytest
from fixtures.students.toy import write_toy_world

from mint_distill.errors import DataError
from mint_distill.students.batching import BatchFootprint, BatchSchedule, process_share
from mint_distill.students.biencoder import BiEncoderTask
from mint_distill.students.data import (
    Pair,
    load_item_cities,
    load_negatives,
    load_student_data,
)
from mint_distill.students.dev_metrics import ranking_measures
from mint_distill.students.negatives import (
    bm25_rankings,
    effective_window,
    mine_negatives,
    sample_negatives,
)


@pytest.fixture()
def world(tmp_path):
    return write_toy_world(tmp_path / "world")


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_load_student_data_splits_kept_pairs_and_collects_shown_items(world):
    data = load_student_data(world["pairs"], world["requests"], world["items"])
    pairs = _records(world["pairs"])
    kept = [p for p in pairs if p["kept"]]
    assert [(p.request_id, p.item_id) for p in data.train] == [
        (p["request_id"], p["item_id"]) for p in kept if p["split"] == "train"
    ]
    assert len(data.dev) == sum(p["split"] == "dev" for p in kept)
    request = pairs[0]["request_id"]
    assert data.shown[request] == {
        p["item_id"] for p in pairs if p["user_id"] == pairs[0]["user_id"]
    }
    assert data.counts()["catalog_items"] == len(_records(world["items"]))


def test_pairs_without_text_are_counted_not_silently_dropped(world):
    items = _records(world["items"])
    kept_item = next(
        p["item_id"] for p in _records(world["pairs"]) if p["kept"] and p["split"] == "train"
    )
    world["items"].write_text(
        "".join(json.dumps(i) + "\n" for i in items if i["item_id"] != kept_item)
    )
    data = load_student_data(world["pairs"], world["requests"], world["items"])
    expected = sum(p["kept"] and p["item_id"] == kept_item for p in _records(world["pairs"]))
    assert data.skipped["pairs_without_item_text"] == expected
    assert data.counts()["skipped_pairs_without_item_text"] == expected


def test_bad_records_name_the_file_and_line(world):
    lines = world["pairs"].read_text().splitlines()
    lines[2] = "{not json"
    world["pairs"].write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"pairs\.jsonl:3: not valid JSON"):
        load_student_data(world["pairs"], world["requests"], world["items"])
    record = json.loads(lines[0])
    del record["kept"]
    lines[2] = json.dumps(record)
    world["pairs"].write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"pairs\.jsonl:3: field `kept`"):
        load_student_data(world["pairs"], world["requests"], world["items"])


def test_negatives_file_is_split_like_its_pairs_and_checked_against_the_catalog(world, tmp_path):
    data = load_student_data(world["pairs"], world["requests"], world["items"])
    path = tmp_path / "negatives.jsonl"
    records = [
        {"request_id": p.request_id, "item_id": p.item_id, "negatives": ["pizza-0"]}
        for p in data.train + data.dev
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    groups = load_negatives(path, data)
    assert len(groups["train"]) == len(data.train) and len(groups["dev"]) == len(data.dev)
    records[0]["negatives"] = ["no-such-item"]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(
        DataError, match=r"negatives\.jsonl:1: negatives not in the catalog: no-such-item"
    ):
        load_negatives(path, data)


def test_batches_replay_exactly_and_never_repeat_a_request_or_item():
    pairs = [Pair(f"r{i // 3}", f"i{(i * 7) % 40}") for i in range(90)]
    footprints = lambda i: BatchFootprint.of([("request", pairs[i].request_id), ("item", pairs[i].item_id)])
    first = BatchSchedule(len(pairs), 8, seed=3, footprints=footprints)
    again = BatchSchedule(len(pairs), 8, seed=3, footprints=footprints)
    other = BatchSchedule(len(pairs), 8, seed=4, footprints=footprints)
    total = first.total_batches(2.5)
    assert total == len(first.epoch(0)) + len(first.epoch(1)) + int(len(first.epoch(2)) * 0.5)
    assert [again.locate(p) for p in range(total)] == [first.locate(p) for p in range(total)]
    assert [other.locate(p) for p in range(5)] != [first.locate(p) for p in range(5)]
    for epoch in range(3):
        seen = set()
        for batch in first.epoch(epoch):
            assert len(batch) == 8
            assert len({pairs[i].request_id for i in batch}) == 8
            assert len({pairs[i].item_id for i in batch}) == 8
            assert seen.isdisjoint(batch)
            seen.update(batch)


def test_a_batch_holds_no_item_another_request_must_not_meet_but_shared_avoidances_do_meet():
    # a, b and c each avoid item "x"; a and b bring other items, c brings x itself.
    footprint = {
        "a": BatchFootprint.of(["a", "ia"], also_avoids=["x"]),
        "b": BatchFootprint.of(["b", "ib"], also_avoids=["x"]),
        "c": BatchFootprint.of(["c", "x"]),
        "d": BatchFootprint.of(["d", "id"]),
    }
    names = list(footprint)
    batches = BatchSchedule(4, 2, seed=0, footprints=lambda i: footprint[names[i]]).epoch(0)
    together = [{names[i] for i in batch} for batch in batches]
    assert len(together) == 2
    assert {"c", "a"} not in together and {"c", "b"} not in together
    assert {"c", "d"} in together and {"a", "b"} in together


def test_biencoder_batches_never_hold_another_shown_item_of_a_request(world):
    data = load_student_data(world["pairs"], world["requests"], world["items"])
    # A second request of the first user for each of its shown items, and hard negatives that are
    # often another user's shown item.
    request = data.train[0].request_id
    twins = [Pair(f"{request}-{n}", item) for n, item in enumerate(sorted(data.shown[request]))]
    data.shown.update({pair.request_id: data.shown[request] for pair in twins})
    examples = data.train + twins
    items = sorted(data.items)
    hard = {pair: [items[(7 * n) % len(items)]] for n, pair in enumerate(examples)}
    task = BiEncoderTask(None, data, examples, hard_negatives=hard, batch_size=4, dev_catalog=None)
    schedule = BatchSchedule(len(examples), 4, seed=1, footprints=task.batch_footprints())
    for epoch in range(3):
        assert schedule.epoch(epoch)
        for batch in schedule.epoch(epoch):
            pairs = [examples[i] for i in batch]
            for pair in pairs:
                others = {i for o in pairs if o is not pair for i in (o.item_id, *hard[o])}
                assert not others & data.shown[pair.request_id], (pair, others)
    dev_task = BiEncoderTask(None, data, examples, batch_size=4, dev_catalog=None)
    for batch in dev_task.dev_batches():
        for pair in batch:
            others = {o.item_id for o in batch if o is not pair}
            assert not others & data.shown[pair.request_id]


def test_grouped_batches_keep_each_city_together_where_it_can_fill_one():
    # 40 pairs in Vienna, 20 in Osaka, 5 in Porto (too few for a batch of 8), 7 without a city.
    cities = ["Vienna"] * 40 + ["Osaka"] * 20 + ["Porto"] * 5 + [None] * 7
    pairs = [Pair(f"r{i}", f"i{i}") for i in range(len(cities))]
    footprints = lambda i: BatchFootprint.of([("request", pairs[i].request_id), ("item", pairs[i].item_id)])
    grouped = BatchSchedule(len(pairs), 8, seed=3, footprints=footprints, groups=lambda i: cities[i])
    mixed = BatchSchedule(len(pairs), 8, seed=3, footprints=footprints)

    def single_city(batch):
        return len({cities[i] for i in batch}) == 1 and cities[batch[0]] is not None

    for epoch in range(2):
        batches = grouped.epoch(epoch)
        assert [len(b) for b in batches] == [8] * (len(pairs) // 8)
        assert len({i for b in batches for i in b}) == 8 * len(batches)
        whole = [cities[b[0]] for b in batches if single_city(b)]
        assert sorted(whole) == ["Osaka"] * 2 + ["Vienna"] * 5
        leftovers = {cities[i] for b in batches if not single_city(b) for i in b}
        assert leftovers <= {"Osaka", "Porto", None}
        # the groups' batches come shuffled, not Vienna's first
        assert whole != sorted(whole, key=["Vienna", "Osaka"].index)
        assert sum(map(single_city, mixed.epoch(epoch))) < 2
    again = BatchSchedule(len(pairs), 8, seed=3, footprints=footprints, groups=lambda i: cities[i])
    assert [again.locate(p) for p in range(16)] == [grouped.locate(p) for p in range(16)]


def test_item_cities_are_read_where_items_name_one(tmp_path):
    path = tmp_path / "items.jsonl"
    records = [
        {"item_id": "a", "city": "Vienna", "region": "9", "country": "AT", "text": "x"},
        {"item_id": "b", "city": "Vienna", "region": "", "country": "US", "text": "y"},
        {"item_id": "c", "text": "no city"},
        {"item_id": "d", "city": " ", "text": "blank city"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert load_item_cities(path) == {"a": ("AT", "9", "Vienna"), "b": ("US", "", "Vienna")}


def test_process_shares_partition_a_global_batch():
    batch = list(range(12))
    shares = [process_share(batch, rank, 3) for rank in range(3)]
    assert [i for share in shares for i in share] == batch
    # contiguous slices of 12 / 3 = 4, in rank order
    assert shares == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


@pytest.mark.parametrize(
    ("catalog", "expected"),
    [
        (5000, (100, 300)),
        (300, (100, 300)),
        (150, (50, 150)),
        (12, (4, 12)),
        (5, (1, 5)),
        (3, (0, 3)),
    ],
)
def test_rank_window_scales_down_on_small_catalogs(catalog, expected):
    assert effective_window(100, 300, catalog, per_positive=4) == expected


def test_mined_negatives_exclude_every_shown_item_and_do_not_depend_on_order():
    rng = random.Random(0)
    catalog = [f"i{n}" for n in range(60)]
    pairs = [Pair(f"r{n}", f"i{n}") for n in range(20)]
    shown = {f"r{n}": frozenset(rng.sample(catalog, 15) + [f"i{n}"]) for n in range(20)}
    rankings = {p.request_id: rng.sample(catalog, len(catalog)) for p in pairs}
    records = mine_negatives(rankings, pairs, shown, window=(5, 30), per_positive=4, seed=7)
    for pair, record in zip(pairs, records):
        assert len(record["negatives"]) == 4 == len(set(record["negatives"]))
        assert not set(record["negatives"]) & shown[pair.request_id]
        ranks = [rankings[pair.request_id].index(item) for item in record["negatives"]]
        assert ranks == sorted(ranks) and all(5 <= rank < 30 for rank in ranks)
    reversed_records = mine_negatives(
        rankings, pairs[::-1], shown, window=(5, 30), per_positive=4, seed=7
    )
    assert reversed_records[::-1] == records
    assert mine_negatives(rankings, pairs, shown, window=(5, 30), per_positive=4, seed=8) != records


def test_a_crowded_window_is_filled_from_the_ranks_after_it_then_before_it():
    ranking = [f"i{n}" for n in range(10)]
    chosen = sample_negatives(ranking, (2, 5), 4, excluded={"i2", "i3"}, rng=random.Random(0))
    assert chosen == ["i4", "i5", "i6", "i7"]
    chosen = sample_negatives(ranking, (2, 9), 8, excluded={"i2", "i3"}, rng=random.Random(0))
    assert chosen == ["i0", "i1", "i4", "i5", "i6", "i7", "i8", "i9"]


def test_bm25_puts_the_requested_topic_first(world):
    data = load_student_data(world["pairs"], world["requests"], world["items"])
    rankings = bm25_rankings(data.requests, data.items, depth=5)
    kept = {**data.positives("train"), **data.positives("dev")}
    for request_id, ranking in rankings.items():
        topic = kept[request_id][0].split("-")[0]
        assert ranking[0].split("-")[0] == topic


def test_dev_measures_match_ir_measures():
    import ir_measures
    import torch
    from ir_measures import Qrel, ScoredDoc

    generator = torch.Generator().manual_seed(0)
    scores = torch.rand(6, 25, generator=generator)
    relevant = [
        set(torch.randperm(25, generator=generator)[:k].tolist()) for k in (1, 2, 3, 1, 4, 2)
    ]
    qrels = [Qrel(f"q{q}", f"d{d}", 1) for q, docs in enumerate(relevant) for d in docs]
    run = [ScoredDoc(f"q{q}", f"d{d}", float(scores[q, d])) for q in range(6) for d in range(25)]
    expected = ir_measures.calc_aggregate([ir_measures.RR @ 10, ir_measures.R @ 10], qrels, run)
    measured = ranking_measures(scores, relevant, k=10)
    assert measured["mrr@10"] == pytest.approx(expected[ir_measures.RR @ 10])
    assert measured["recall@10"] == pytest.approx(expected[ir_measures.R @ 10])


def test_selection_keeps_the_latest_model_when_dev_cannot_measure_the_metric():
    from mint_distill.students.loop import improved

    assert improved({"loss": 0.5}, {"loss": 0.6}, "loss")
    assert not improved({"loss": 0.7}, {"loss": 0.6}, "loss")
    assert not improved({"mrr@10": 0.2}, {"mrr@10": 0.3}, "mrr@10")
    # too few dev requests for an in-batch loss: no value, so no basis to keep an older model
    assert improved({"mrr@10": 0.2}, {"mrr@10": 0.3}, "loss")

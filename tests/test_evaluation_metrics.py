"""Metrics: Pointrec's published baseline table, a hand-computed toy run, trec_eval's tie order,
TREC file round trips, and the `evaluate` metric module."""

from __future__ import annotations

import math

import pytest

from mint_distill.errors import DataError
from mint_distill.evaluation.metrics import DEFAULT_MEASURES, evaluate_run, mean, trec_eval_command
from mint_distill.evaluation.trec import ranked, read_qrels, read_run, write_run

# The Pointrec README (trec_eval -c -m ndcg_cut; trec_eval -c -l3 for MRR and MAP).
PUBLISHED = {
    "baseline1": {"NDCG@5": 0.6389, "NDCG@10": 0.5812, "MRR": 0.5812, "MAP": 0.3304},
    "baseline2": {"NDCG@5": 0.4109, "NDCG@10": 0.3979, "MRR": 0.2814, "MAP": 0.0667},
    "baseline3": {"NDCG@5": 0.6784, "NDCG@10": 0.6573, "MRR": 0.5535, "MAP": 0.2506},
}


@pytest.mark.integration
@pytest.mark.parametrize("baseline", sorted(PUBLISHED))
def test_pointrec_baselines_reproduce_the_published_table(shared_data, baseline):
    raw = shared_data / "pointrec" / "raw"
    qrels = read_qrels(raw / "relevance" / "qrels.trec")
    run = read_run(raw / "baselines" / f"{baseline}.trec")
    means = mean(evaluate_run(run, qrels, ["NDCG@5", "NDCG@10", "MRR", "MAP"], relevance_level=3))
    assert {name: round(value, 4) for name, value in means.items()} == PUBLISHED[baseline]


# Toy qrels and run. r3 is judged but not answered (trec_eval -c scores it 0 on every measure)
# and has no grade-3 item; "zz" in r1 is unjudged and counts as non-relevant.
QRELS = {
    "r1": {"a": 3, "b": 2, "c": 0, "d": 3, "e": 1},
    "r2": {"x": 3, "y": 0},
    "r3": {"z": 2},
}
RUN = {
    "r1": {"c": 6.0, "a": 5.0, "e": 4.0, "d": 3.0, "b": 2.0, "zz": 1.0},
    "r2": {"y": 2.0, "x": 1.0},
}


def test_toy_run_matches_hand_computed_values():
    log2 = math.log2
    # r1 gains in rank order: c0 a3 e1 d3 b2 (zz 0 at rank 6, outside the cutoffs)
    dcg_r1 = 3 / log2(3) + 1 / log2(4) + 3 / log2(5) + 2 / log2(6)
    ideal_r1 = 3 / log2(2) + 3 / log2(3) + 2 / log2(4) + 1 / log2(5)
    # r2 gains: y0 x3; ideal: x3
    ndcg_r2 = (3 / log2(3)) / 3
    expected = {
        "NDCG@5": (dcg_r1 / ideal_r1 + ndcg_r2 + 0) / 3,
        "NDCG@10": (dcg_r1 / ideal_r1 + ndcg_r2 + 0) / 3,
        # grade 3 only: r1 relevant a (rank 2), d (rank 4): AP = (1/2 + 2/4) / 2; r2: x at rank 2
        "MAP": ((1 / 2 + 2 / 4) / 2 + 1 / 2 + 0) / 3,
        "MRR": (1 / 2 + 1 / 2 + 0) / 3,
        # P@5 divides by 5 even when fewer items are returned (r2 returns 2)
        "P@5": (2 / 5 + 1 / 5 + 0) / 3,
        # R@100: r1 finds both grade-3 items, r2 its one; r3 has none to find and scores 0
        "R@100": (1 + 1 + 0) / 3,
    }
    per_query = evaluate_run(RUN, QRELS, DEFAULT_MEASURES, relevance_level=3)
    assert set(per_query["MRR"]) == {"r1", "r2", "r3"}
    assert per_query["NDCG@5"]["r3"] == 0.0
    assert mean(per_query) == pytest.approx(expected, abs=1e-12)


def test_relevance_level_changes_binary_measures_only():
    # ranked a1 c0 b3 d3: a grade-1 item first, so the two levels disagree
    qrels = {"q": {"a": 1, "b": 3, "c": 0, "d": 3}}
    run = {"q": {"a": 4.0, "c": 3.0, "b": 2.0, "d": 1.0}}
    at_one = mean(evaluate_run(run, qrels, ["MRR", "MAP", "NDCG@5"], relevance_level=1))
    at_three = mean(evaluate_run(run, qrels, ["MRR", "MAP", "NDCG@5"], relevance_level=3))
    # grade >= 1: a, b, d relevant at ranks 1, 3, 4
    assert at_one["MRR"] == pytest.approx(1.0)
    assert at_one["MAP"] == pytest.approx((1 / 1 + 2 / 3 + 3 / 4) / 3)
    # grade 3: b, d relevant at ranks 3, 4
    assert at_three["MRR"] == pytest.approx(1 / 3)
    assert at_three["MAP"] == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert at_one["MAP"] != pytest.approx(at_three["MAP"])
    assert at_one["NDCG@5"] == at_three["NDCG@5"]


def test_requested_queries_without_judgements_score_zero():
    per_query = evaluate_run(RUN, QRELS, ["MRR"], qids=["r1", "unjudged"])
    assert per_query["MRR"] == {"r1": 0.5, "unjudged": 0.0}


def test_ties_are_broken_by_item_id_descending_like_trec_eval(tmp_path):
    run = {"q": {"a": 1.0, "b": 1.0, "c": 2.0}}
    assert [item for item, _ in ranked(run["q"])] == ["c", "b", "a"]
    # with "a" the only relevant item, trec_eval puts it third
    assert evaluate_run(run, {"q": {"a": 3}}, ["MRR"])["MRR"]["q"] == pytest.approx(1 / 3)
    path = tmp_path / "tie.trec"
    write_run(path, run, "tie")
    assert [line.split()[2] for line in path.read_text().splitlines()] == ["c", "b", "a"]
    assert [line.split()[3] for line in path.read_text().splitlines()] == ["1", "2", "3"]


def test_run_files_round_trip_exactly_and_respect_depth(tmp_path):
    run = {"q1": {f"i{n}": 1 / (n + 3) for n in range(10)}, "q2": {"x": -123.456789012345}}
    path = tmp_path / "run.trec"
    assert write_run(path, run, "system", depth=4) == 5
    back = read_run(path)
    assert back["q2"] == run["q2"]
    assert back["q1"] == dict(ranked(run["q1"], 4))
    assert all(line.endswith(" system") for line in path.read_text().splitlines())


def test_bad_trec_lines_name_file_and_line(tmp_path):
    path = tmp_path / "broken.trec"
    path.write_text("q Q0 a 1 1.0 run\nq Q0 b 2 high run\n")
    with pytest.raises(DataError, match=r"broken.trec, line 2: score `high`"):
        read_run(path)
    path.write_text("q 0 a\n")
    with pytest.raises(DataError, match="line 1: expected 4 fields"):
        read_qrels(path)
    path.write_bytes(b"q 0 a 1\nq 0 caf\xe9 2\n")
    with pytest.raises(DataError, match=r"broken.trec, line 2: not UTF-8 text"):
        read_qrels(path)


def test_non_finite_scores_are_refused(tmp_path):
    with pytest.raises(ValueError, match="query q, item a has score nan"):
        write_run(tmp_path / "nan.trec", {"q": {"a": float("nan")}}, "bad")


def test_trec_eval_equivalents():
    assert trec_eval_command("NDCG@10") == "trec_eval -c -m ndcg_cut.10"
    assert trec_eval_command("MAP") == "trec_eval -c -l3 -m map"
    assert trec_eval_command("R@100", 2) == "trec_eval -c -l2 -m recall.100"
    with pytest.raises(ValueError, match="unknown measure `nDCG`"):
        trec_eval_command("nDCG")


def test_evaluate_metric_module_loads_offline_and_agrees(monkeypatch):
    import evaluate

    from mint_distill.evaluation import metric_module_path

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metric = evaluate.load(metric_module_path())
    predictions = [
        {"query_id": qid, "item_ids": list(RUN.get(qid, {})), "scores": list(RUN.get(qid, {}).values())}
        for qid in QRELS
    ]
    references = [{"query_id": qid, "item_ids": list(QRELS[qid]), "grades": list(QRELS[qid].values())} for qid in QRELS]
    result = metric.compute(predictions=predictions, references=references)
    assert result == pytest.approx(mean(evaluate_run(RUN, QRELS)), abs=1e-12)
    # A reference without grades is no judged request: trec_eval would not see it in a qrels file.
    unanswered = {"query_id": "r4", "item_ids": [], "scores": []}
    unjudged = {"query_id": "r4", "item_ids": [], "grades": []}
    assert metric.compute(predictions=[*predictions, unanswered], references=[*references, unjudged]) == result

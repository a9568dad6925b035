"""The cross-encoder's dev task: rerank the first stage's top k of each dev request."""

from __future__ import annotations

import pytest

from mint_distill.errors import DataError
from mint_distill.students.data import Pair, StudentData, load_dev_rankings
from mint_distill.students.dev_reranking import DevReranking
from mint_distill.students.fusion import fuse


def _data() -> StudentData:
    items = {name: f"text of {name}" for name in "abcdefxyz"}
    return StudentData(
        requests={"r1": "quiet jazz bar", "r2": "family park", "r3": "sushi"},
        items=items,
        train=[],
        dev=[Pair("r1", "b"), Pair("r1", "d"), Pair("r2", "f"), Pair("r3", "z")],
        # r1's user was shown a (not kept): neither relevant nor a fair mistake
        shown={"r1": frozenset("abd"), "r2": frozenset("f"), "r3": frozenset("z")},
    )


def _scored(*items: str) -> list[tuple[str, float]]:
    """A first-stage ranking with descending scores 1.0, 0.9, ..."""
    return [(item, 1.0 - 0.1 * rank) for rank, item in enumerate(items)]


RANKINGS = {
    "r1": _scored("a", "x", "b", "y", "d", "c"),
    "r2": _scored("x", "f", "y"),
    "r3": _scored("x", "y", "c", "z"),  # its kept item is below the top 3
}


def test_candidates_drop_unkept_shown_items_and_requests_with_nothing_to_find():
    reranking = DevReranking.from_rankings(RANKINGS, _data(), top_k=3)
    assert {r: list(items) for r, items in reranking.candidates.items()} == {
        "r1": ["x", "b", "y"],
        "r2": ["x", "f", "y"],
    }
    assert reranking.candidates["r1"]["b"] == pytest.approx(0.8)  # first-stage scores are kept
    assert reranking.relevant == {"r1": {"b"}, "r2": {"f"}}  # d is kept but below the top 3
    assert reranking.requests_without_kept_items == 1


SCORES = {("r1", "x"): 0.1, ("r1", "b"): 0.9, ("r1", "y"): 0.0}
SCORES |= {("r2", "x"): 0.5, ("r2", "f"): 0.2, ("r2", "y"): 0.1}


def test_first_stage_order_and_a_reranker_are_measured_on_the_same_candidates():
    reranking = DevReranking.from_rankings(RANKINGS, _data(), top_k=3)
    # in first-stage order both kept items are second
    assert reranking.first_stage_measures() == {"mrr@10": 0.5, "recall@10": 1.0}
    # b moves to the top of r1; f stays second in r2
    assert reranking.measures(SCORES) == pytest.approx({"mrr@10": 0.75, "recall@10": 1.0})
    assert reranking.measures(SCORES, k=1) == pytest.approx({"mrr@1": 0.5, "recall@1": 0.5})


def test_fusion_weight_is_the_highest_with_the_best_dev_mrr():
    reranking = DevReranking.from_rankings(RANKINGS, _data(), top_k=3)
    weight, measures = reranking.fused_measures(SCORES, (0.0, 0.2, 0.5))
    # weight 0 is the first stage (0.5); at 0.2 the reranker does not yet lift b in r1 above x;
    # at 0.5 it does (1.0) while r2 keeps f second (0.5)
    assert weight == 0.5 and measures["mrr@10"] == pytest.approx(0.75)
    assert reranking.fused_measures(SCORES, (0.0,))[1] == reranking.first_stage_measures()
    # 0.5 and 1.0 tie: the reranker alone is kept, and a reranker no better than the first stage
    # anywhere keeps its weight 1 rather than fusing itself away to weight 0
    assert reranking.fused_measures(SCORES, (0.0, 0.5, 1.0))[0] == 1.0
    first_stage_copy = {(r, item): score for r, items in reranking.candidates.items() for item, score in items.items()}
    assert reranking.fused_measures(first_stage_copy, (0.0, 0.5, 1.0))[0] == 1.0


def test_fuse_weighs_z_normalised_scores():
    first_stage = {"a": 0.9, "b": 0.8, "c": 0.7}
    reranker = {"a": -3.0, "b": 5.0, "c": 1.0}
    alone = fuse(first_stage, reranker, 1.0)
    assert alone["b"] > alone["c"] > alone["a"]
    assert sum(alone.values()) == pytest.approx(0.0)
    assert sorted(fuse(first_stage, reranker, 0.0), key=fuse(first_stage, reranker, 0.0).get) == ["c", "b", "a"]
    # halfway: a is 1.22 above the mean in the first stage and 1.22 below in the reranker
    assert fuse(first_stage, reranker, 0.5)["a"] == pytest.approx(0.0)
    assert fuse({"a": 1.0, "b": 1.0}, {"a": 2.0, "b": 2.0}, 0.5) == {"a": 0.0, "b": 0.0}


def test_rankings_of_items_outside_the_catalog_name_the_line(tmp_path):
    path = tmp_path / "dev_rankings.jsonl"
    path.write_text(
        '{"request_id": "r1", "ranking": ["x", "b"], "scores": [0.9, 0.8]}\n'
        '{"request_id": "r2", "ranking": ["f", "nowhere"], "scores": [0.9, 0.8]}\n'
    )
    with pytest.raises(DataError, match=r"dev_rankings.jsonl:2: .*nowhere"):
        load_dev_rankings(path, _data())


def test_rankings_of_requests_outside_the_dev_split_are_skipped(tmp_path):
    path = tmp_path / "dev_rankings.jsonl"
    path.write_text(
        '{"request_id": "r1", "ranking": ["x", "b"], "scores": [0.9, 0.8]}\n'
        '{"request_id": "train-9", "ranking": ["x"], "scores": [0.5]}\n'
    )
    data = _data()
    assert load_dev_rankings(path, data) == {"r1": [("x", 0.9), ("b", 0.8)]}
    assert data.skipped["rankings_not_of_dev_requests"] == 1


def test_scores_that_do_not_match_the_ranking_name_the_line(tmp_path):
    path = tmp_path / "dev_rankings.jsonl"
    path.write_text('{"request_id": "r1", "ranking": ["x", "b"], "scores": [0.9]}\n')
    with pytest.raises(DataError, match=r"dev_rankings.jsonl:1: `scores`"):
        load_dev_rankings(path, _data())

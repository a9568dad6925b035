"""Report files from an evaluation on the fixture collection, and resuming an interrupted one."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest
from fixtures.evaluation.tiny_encoders import load_fixture_collection

from mint_distill.evaluation import (
    BM25Ranker,
    evaluate_run,
    evaluate_runs,
    mean,
    read_run,
    write_report,
)
from mint_distill.evaluation.report import render_markdown
from mint_distill.evaluation.run import run_evaluation
from mint_distill.recipe.sections.evaluation import EvaluationSection, RankerSpec


@pytest.fixture(scope="module")
def collection():
    return load_fixture_collection()


def _ideal_run(collection):
    """Each pool ordered by grade: the best any ranker can do on these pools."""
    return {
        qid: {item: float(collection.qrels[qid].get(item, -1)) for item in collection.pool_of(qid)}
        for qid in collection.qids()
        if collection.pool_of(qid)
    }


def test_report_files_agree_with_each_other(collection, tmp_path):
    runs = {"bm25": BM25Ranker().rank(collection, 200), "ideal": _ideal_run(collection)}
    evaluation = evaluate_runs(collection, runs, reference="bm25", method="randomization", alpha=0.05)
    paths = write_report(evaluation, tmp_path)
    assert {path.name for path in tmp_path.iterdir()} == {
        "metrics.json", "per_query.csv", "coverage.csv", "report.md", "metrics.png"
    }

    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["pool"] == "judged" and metrics["requests"] == 3
    assert metrics["coverage"]["requests_with_empty_pool"] == 1
    with open(paths["per_query"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 3
    for system in ("bm25", "ideal"):
        for measure in evaluation.measures:
            values = [float(row[measure]) for row in rows if row["system"] == system]
            assert sum(values) / len(values) == pytest.approx(metrics["systems"][system]["means"][measure], abs=1e-6)

    ideal = metrics["systems"]["ideal"]["versus_reference"]["NDCG@5"]
    assert ideal["delta"] == pytest.approx(
        metrics["systems"]["ideal"]["means"]["NDCG@5"] - metrics["systems"]["bm25"]["means"]["NDCG@5"]
    )
    # the ideal run's grade-3 recall within pools is 3 of the 5 grade-3 judged items: the pools' ceiling
    assert metrics["systems"]["ideal"]["means"]["R@100"] == pytest.approx((1 / 2 + 2 / 2 + 0) / 3)

    report = paths["report"].read_text()
    assert "Pool: `judged`. Requests evaluated: 3 (1 with an empty pool, scored 0)." in report
    assert "the pools hold 6 of 9 judged items (66.7%)" in report
    assert "| bm25 (reference) |" in report
    assert report == render_markdown(metrics)  # the report renders from metrics.json alone

    from matplotlib.image import imread

    assert imread(paths["chart"]).shape[0] > 100


def test_significant_differences_are_marked(collection):
    metrics = {
        "collection": "c", "pool": "judged", "requests": 12, "relevance_level": 3, "reference": "a",
        "coverage": {}, "measures": {"MAP": "trec_eval -c -l3 -m map"},
        "significance": {"method": "ttest", "resamples": 10_000, "alpha": 0.05},
        "systems": {
            "a": {"means": {"MAP": 0.3}, "versus_reference": {}},
            "b": {"means": {"MAP": 0.4}, "versus_reference": {"MAP": {"delta": 0.1, "p_value": 0.01, "significant": True}}},
            "c": {"means": {"MAP": 0.2}, "versus_reference": {"MAP": {"delta": -0.1, "p_value": 0.01, "significant": True}}},
            "d": {"means": {"MAP": 0.31}, "versus_reference": {"MAP": {"delta": 0.01, "p_value": 0.6, "significant": False}}},
        },
    }
    report = render_markdown(metrics)
    assert "| b | 0.4000 (+0.1000)▲ |" in report
    assert "| c | 0.2000 (-0.1000)▼ |" in report
    assert "| d | 0.3100 (+0.0100) |" in report


def _trec_eval_c(qrels_file, run_file) -> dict[str, float]:
    """NDCG@5 and MAP (grade 3) as `trec_eval -c` gives them from the two files, through pytrec_eval
    alone: averaged over every query of the qrels, one the run leaves out scoring 0."""
    import pytrec_eval

    with open(qrels_file) as handle:
        qrels = pytrec_eval.parse_qrel(handle)
    with open(run_file) as handle:
        run = pytrec_eval.parse_run(handle)
    graded = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.5"}).evaluate(run)
    binary = pytrec_eval.RelevanceEvaluator(qrels, {"map"}, relevance_level=3).evaluate(run)
    return {
        "NDCG@5": sum(graded.get(qid, {}).get("ndcg_cut_5", 0.0) for qid in qrels) / len(qrels),
        "MAP": sum(binary.get(qid, {}).get("map", 0.0) for qid in qrels) / len(qrels),
    }


def test_run_evaluation_writes_runs_that_trec_eval_scores_the_same(collection, tmp_path):
    settings = EvaluationSection(
        rankers=[RankerSpec(name="bm25", kind="bm25"), RankerSpec(name="bm25-plain", kind="bm25", stemmer=None)],
        reference="bm25", students=False, cache_dir=str(tmp_path / "cache"),
    )
    out = tmp_path / "evaluate"
    evaluation = run_evaluation(collection, settings, out)
    systems = json.loads((out / "systems.json").read_text())
    assert systems["bm25-plain"]["run_file"] == "runs/bm25-plain.trec"
    for system in evaluation.systems:
        from_file = mean(evaluate_run(read_run(out / "runs" / f"{system.name}.trec"), collection.qrels,
                                      evaluation.measures, qids=collection.qids()))
        assert from_file == system.means
        assert _trec_eval_c(out / "qrels.txt", out / "runs" / f"{system.name}.trec") == pytest.approx(
            {"NDCG@5": system.means["NDCG@5"], "MAP": system.means["MAP"]}, abs=1e-12
        )
    assert "`trec_eval -c -m ndcg_cut.5 qrels.txt runs/<system>.trec`" in (out / "report.md").read_text()

    # an interrupted evaluation resumes: finished runs with the same spec are read back
    (out / "runs" / "bm25-plain.trec").unlink()
    run_evaluation(collection, settings, out, resume=True)
    resumed = json.loads((out / "systems.json").read_text())
    assert resumed["bm25"] == systems["bm25"]  # same timing record: not recomputed
    assert (out / "runs" / "bm25-plain.trec").is_file()


def test_the_report_says_ideal_rankings_are_within_reach_only_where_the_pools_hold_every_judged_item(
    collection,
):
    condensed = dataclasses.replace(collection, notes={**collection.notes, "condensed_qrels": True})
    runs = {"bm25": BM25Ranker().rank(condensed, 200)}
    partial = render_markdown(evaluate_runs(condensed, runs, reference="bm25").to_json())
    assert "the pools hold 6 of 9 judged items" in partial
    assert "ideal rankings count only POIs a ranker can see" not in partial
    assert "Judged items outside the pools cannot be retrieved but still count in the ideal ranking." in partial

    pooled_qrels = {qid: {i: g for i, g in judged.items() if i in condensed.items} for qid, judged in condensed.qrels.items()}
    pooled = dataclasses.replace(condensed, qrels=pooled_qrels, pools={qid: list(j) for qid, j in pooled_qrels.items()})
    whole = render_markdown(evaluate_runs(pooled, {"bm25": BM25Ranker().rank(pooled, 200)}, reference="bm25").to_json())
    assert "(condensed qrels): ideal rankings count only POIs a ranker can see." in whole
    assert "still count in the ideal ranking" not in whole


def test_the_report_says_how_many_judged_items_training_left_out(collection, tmp_path):
    runs = {"bm25": BM25Ranker().rank(collection, 200)}
    plain = render_markdown(evaluate_runs(collection, runs, reference="bm25").to_json())
    assert "Training used no judged item" not in plain
    collection.notes["training_excluded_judged"] = 1280
    try:
        report = render_markdown(evaluate_runs(collection, runs, reference="bm25").to_json())
    finally:
        del collection.notes["training_excluded_judged"]
    assert "Training used no judged item: the 1,280 judged POIs of the catalog were excluded" in report
    collection.notes["training_allowed_judged"] = True
    try:
        report = render_markdown(evaluate_runs(collection, runs, reference="bm25").to_json())
    finally:
        del collection.notes["training_allowed_judged"]
    assert "**Training may have used judged items**" in report and "Training used no judged item" not in report

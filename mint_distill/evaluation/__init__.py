"""Evaluation on a narrative-request test collection: rankers, trec_eval-exact metrics,
paired significance tests and reports.

    from mint_distill.evaluation import EvalCollection, BM25Ranker, evaluate_runs, write_report

    collection = EvalCollection(name="toy", pool="judged", requests={...}, items={...},
                                pools={...}, qrels={...})
    runs = {"bm25": BM25Ranker().rank(collection, depth=200)}
    evaluation = evaluate_runs(collection, runs, reference="bm25")
    write_report(evaluation, "out/")

Names are imported on first use, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EvalCollection": ".collection",
    "from_test_collection": ".collection",
    "Run": ".trec",
    "Qrels": ".trec",
    "read_run": ".trec",
    "write_run": ".trec",
    "read_qrels": ".trec",
    "write_qrels": ".trec",
    "DEFAULT_MEASURES": ".metrics",
    "evaluate_run": ".metrics",
    "mean": ".metrics",
    "compare": ".significance",
    "randomization_test": ".significance",
    "paired_ttest": ".significance",
    "Evaluation": ".compare",
    "evaluate_runs": ".compare",
    "BM25Ranker": ".rankers",
    "DenseRanker": ".rankers",
    "CrossEncoderScorer": ".rankers",
    "LikelihoodPairScorer": ".rankers",
    "Reranker": ".rankers",
    "EncodingCache": ".cache",
    "PairScoreCache": ".cache",
    "make_ranker": ".systems",
    "produce_runs": ".systems",
    "run_evaluation": ".run",
    "write_report": ".report",
    "print_table": ".report",
    "metric_module_path": ".hf_metric",
    "bench_evaluation": ".bench",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)

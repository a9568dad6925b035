"""The Pointrec measures as a Hugging Face `evaluate` metric module that loads offline."""

from __future__ import annotations

from pathlib import Path


def metric_module_path() -> str:
    """Path to pass to `evaluate.load(...)`:

        import evaluate
        from mint_distill.evaluation import metric_module_path
        metric = evaluate.load(metric_module_path())
        metric.compute(
            predictions=[{"query_id": "q1", "item_ids": ["a", "b"], "scores": [2.0, 1.0]}],
            references=[{"query_id": "q1", "item_ids": ["a", "b"], "grades": [3, 0]}],
        )
    """
    return str(Path(__file__).with_name("pointrec_metrics.py"))

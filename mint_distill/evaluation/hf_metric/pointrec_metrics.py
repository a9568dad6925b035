"""Pointrec measures (trec_eval -c; NDCG graded, MAP/MRR/P/R binary at grade >= 3) for `evaluate`.

Load it offline with `evaluate.load(mint_distill.evaluation.metric_module_path())`. One example
per request: `predictions` carry the ranked items and their scores, `references` the judged
items and their grades. A request the system did not answer gets empty `item_ids` and scores
0, as with `trec_eval -c`. The numbers come from `mint_distill.evaluation.metrics.evaluate_run`, the same
code the `evaluate` stage uses.
"""

import datasets
import evaluate

from mint_distill.evaluation.metrics import DEFAULT_MEASURES, evaluate_run, mean

_DESCRIPTION = __doc__

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"query_id": str, "item_ids": list[str], "scores": list[float]}
        (ranking order is by score, ties broken as trec_eval does).
    references: list of {"query_id": str, "item_ids": list[str], "grades": list[int]}.
    measures: measure names (default: NDCG@5, NDCG@10, MAP, MRR, P@5, R@100).
    relevance_level: lowest grade binary measures count as relevant (default 3, `trec_eval -l3`).
Returns:
    dict measure name -> mean over the judged requests.
Example:
    >>> metric = evaluate.load(metric_module_path())
    >>> metric.compute(
    ...     predictions=[{"query_id": "q1", "item_ids": ["a", "b"], "scores": [2.0, 1.0]}],
    ...     references=[{"query_id": "q1", "item_ids": ["a", "b"], "grades": [3, 0]}],
    ...     measures=["MRR"])
    {'MRR': 1.0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PointrecMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Afzali et al., POINTREC: A Test Collection for Narrative-driven Point of Interest "
            "Recommendation, SIGIR 2021.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": {
                        "query_id": datasets.Value("string"),
                        "item_ids": datasets.Sequence(datasets.Value("string")),
                        "scores": datasets.Sequence(datasets.Value("float64")),
                    },
                    "references": {
                        "query_id": datasets.Value("string"),
                        "item_ids": datasets.Sequence(datasets.Value("string")),
                        "grades": datasets.Sequence(datasets.Value("int64")),
                    },
                }
            ),
            reference_urls=["https://github.com/iai-group/sigir2021-pointrec"],
        )

    def _compute(self, predictions, references, measures=DEFAULT_MEASURES, relevance_level=3):
        run = {}
        for prediction in predictions:
            if len(prediction["item_ids"]) != len(prediction["scores"]):
                raise ValueError(f"request {prediction['query_id']}: item_ids and scores differ in length")
            run.setdefault(prediction["query_id"], {}).update(zip(prediction["item_ids"], prediction["scores"]))
        qrels = {}
        for reference in references:
            if len(reference["item_ids"]) != len(reference["grades"]):
                raise ValueError(f"request {reference['query_id']}: item_ids and grades differ in length")
            qrels.setdefault(reference["query_id"], {}).update(zip(reference["item_ids"], reference["grades"]))
        return mean(evaluate_run(run, qrels, list(measures), relevance_level))

"""trec_eval-exact measures through ir_measures' pytrec_eval provider.

Pointrec's official protocol (its README):

- graded: `trec_eval -c -m ndcg_cut qrels run` for NDCG@5 and NDCG@10 (gain = grade, log2
  discount, the ideal ranking built from all judged items of the query);
- binary: `trec_eval -c -l3 qrels run` for MAP and MRR, where only grade 3 counts as relevant.

P@k and R@k (used for the city pools) are binary at the same relevance level as MAP and MRR.
`-c` averages over every judged query: a query the run does not answer scores 0, which is
what `ir_measures`' evaluators do for queries present in the qrels and absent from the run.
Unjudged items in a run count as non-relevant (trec_eval's default; no `-J`).
trec_eval breaks score ties by item id, descending; see `mint_distill.evaluation.trec.ranked`.

With these settings the Pointrec baselines reproduce the published table to 4 decimals
(`tests/test_evaluation_metrics.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from .trec import Qrels, Run

DEFAULT_MEASURES: tuple[str, ...] = ("NDCG@5", "NDCG@10", "MAP", "MRR", "P@5", "R@100")
MEASURE_PATTERN = r"^(?:(?:NDCG|P|R)@[1-9][0-9]*|MAP|MRR)$"
_NAME = re.compile(MEASURE_PATTERN)

PerQuery = dict[str, dict[str, float]]  # measure name -> qid -> value


def check_measure(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"unknown measure `{name}`; use NDCG@k, P@k, R@k, MAP or MRR (e.g. {', '.join(DEFAULT_MEASURES)})")
    return name


def ir_measure(name: str, relevance_level: int = 3):
    """The ir_measures object for a measure name (graded NDCG; binary measures at `relevance_level`)."""
    import ir_measures

    check_measure(name)
    if name == "MAP":
        return ir_measures.AP(rel=relevance_level)
    if name == "MRR":
        return ir_measures.RR(rel=relevance_level)
    family, cutoff = name.split("@")
    if family == "NDCG":
        return ir_measures.nDCG @ int(cutoff)
    factory = ir_measures.P if family == "P" else ir_measures.R
    return factory(rel=relevance_level) @ int(cutoff)


def trec_eval_command(name: str, relevance_level: int = 3) -> str:
    """The trec_eval invocation that gives the same number, for reports."""
    check_measure(name)
    if name.startswith("NDCG@"):
        return f"trec_eval -c -m ndcg_cut.{name.split('@')[1]}"
    if name in ("MAP", "MRR"):
        measure = "map" if name == "MAP" else "recip_rank"
    else:
        family, cutoff = name.split("@")
        measure = f"{'P' if family == 'P' else 'recall'}.{cutoff}"
    return f"trec_eval -c -l{relevance_level} -m {measure}"


def evaluate_run(
    run: Run,
    qrels: Qrels,
    measures: Sequence[str] = DEFAULT_MEASURES,
    relevance_level: int = 3,
    qids: Iterable[str] | None = None,
) -> PerQuery:
    """Per-query values `{measure: {qid: value}}`, as `trec_eval -c` computes them.

    `qids` are the queries to evaluate (default: every query with a judgement, as trec_eval
    reads a qrels file). A query the run does not answer scores 0 on every measure; a requested
    query without any judgement also scores 0.
    """
    import ir_measures

    wanted = sorted({qid for qid, judged in qrels.items() if judged} if qids is None else set(qids))
    judged = {qid: qrels[qid] for qid in wanted if qrels.get(qid)}
    answered = {qid: {item: float(score) for item, score in run[qid].items()} for qid in judged if run.get(qid)}
    by_object = {ir_measure(name, relevance_level): name for name in measures}
    values: PerQuery = {name: dict.fromkeys(wanted, 0.0) for name in measures}
    if judged:
        evaluator = ir_measures.pytrec_eval.evaluator(list(by_object), judged)
        for metric in evaluator.iter_calc(answered):
            values[by_object[metric.measure]][metric.query_id] = float(metric.value)
    return values


def mean(per_query: PerQuery) -> dict[str, float]:
    """The mean over queries of each measure (0.0 for a measure with no queries)."""
    return {name: (sum(values.values()) / len(values) if values else 0.0) for name, values in per_query.items()}

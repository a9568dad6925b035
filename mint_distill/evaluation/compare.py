"""Score runs on a collection and compare every system with a reference, query by query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .collection import EvalCollection
from .metrics import DEFAULT_MEASURES, PerQuery, evaluate_run, mean, trec_eval_command
from .significance import Comparison, Method, compare
from .trec import Run


@dataclass
class SystemResult:
    """One system's per-query and mean scores, and its comparison with the reference."""

    name: str
    per_query: PerQuery
    means: dict[str, float]
    versus_reference: dict[str, Comparison] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evaluation:
    """Everything a report shows: the collection it ran on, the protocol, and each system."""

    collection: str
    pool: str
    qids: list[str]
    coverage: dict[str, Any]
    measures: list[str]
    relevance_level: int
    reference: str
    method: Method
    resamples: int
    alpha: float
    systems: list[SystemResult]
    coverage_by_request: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The `metrics.json` document (the report, the table and the chart are rendered from it)."""
        return {
            "collection": self.collection,
            "pool": self.pool,
            "requests": len(self.qids),
            "coverage": self.coverage,
            "measures": {name: trec_eval_command(name, self.relevance_level) for name in self.measures},
            "relevance_level": self.relevance_level,
            "reference": self.reference,
            "significance": {"method": self.method, "resamples": self.resamples, "alpha": self.alpha},
            "systems": {
                system.name: {
                    "means": system.means,
                    "versus_reference": {
                        measure: {
                            "delta": comparison.delta,
                            "p_value": comparison.p_value,
                            "significant": comparison.significant(self.alpha),
                        }
                        for measure, comparison in system.versus_reference.items()
                    },
                    **system.details,
                }
                for system in self.systems
            },
        }


def evaluate_runs(
    collection: EvalCollection,
    runs: Mapping[str, Run],
    reference: str,
    *,
    measures: Sequence[str] = DEFAULT_MEASURES,
    relevance_level: int = 3,
    method: Method = "randomization",
    resamples: int = 10_000,
    alpha: float = 0.05,
    seed: int = 0,
    details: Mapping[str, dict[str, Any]] | None = None,
) -> Evaluation:
    """Score every run over the collection's requests and test each against `reference`.

    Runs are scored with `trec_eval -c` semantics over `collection.qids()`; a request whose pool
    is empty (or that a run does not answer) scores 0, so every system is averaged over the same
    requests and the paired tests are well defined.
    """
    if reference not in runs:
        raise ValueError(f"reference system `{reference}` has no run; systems: {', '.join(runs)}")
    qids = collection.qids()
    results = {}
    for name, run in runs.items():
        per_query = evaluate_run(run, collection.qrels, measures, relevance_level, qids=qids)
        results[name] = SystemResult(name, per_query, mean(per_query), details=dict((details or {}).get(name, {})))
    baseline = results[reference]
    for name, result in results.items():
        if name == reference:
            continue
        result.versus_reference = {
            measure: compare(result.per_query[measure], baseline.per_query[measure], method, resamples, seed)
            for measure in measures
        }
    ordered = [baseline] + [results[name] for name in runs if name != reference]
    return Evaluation(
        collection=collection.name,
        pool=collection.pool,
        qids=qids,
        coverage={**collection.coverage_summary(relevance_level), **collection.notes},
        measures=list(measures),
        relevance_level=relevance_level,
        reference=reference,
        method=method,
        resamples=resamples,
        alpha=alpha,
        systems=ordered,
        coverage_by_request=collection.coverage(relevance_level),
    )

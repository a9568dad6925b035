"""One call from a collection and the recipe's `evaluation` section to a written report."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import MintError
from ..recipe.sections.evaluation import EvaluationSection, RankerSpec
from .cache import evaluation_cache_dir
from .collection import EvalCollection
from .compare import Evaluation, evaluate_runs
from .report import write_report
from .systems import produce_runs
from .trec import QRELS_FILE, write_qrels


def run_evaluation(
    collection: EvalCollection,
    settings: EvaluationSection,
    folder: str | os.PathLike,
    *,
    extra_rankers: Sequence[RankerSpec] = (),
    seed: int = 0,
    resume: bool = False,
) -> Evaluation:
    """Rank with every configured system (then `extra_rankers`), score, compare, write the report.

    Example:
        from mint_distill.recipe import load_recipe
        recipe = load_recipe("recipes/pointrec.yaml")
        evaluation = run_evaluation(collection, recipe.evaluation, "out/")
        # out/report.md, out/metrics.json, out/per_query.csv, out/runs/*.trec, out/qrels.txt, out/metrics.png

    `qrels.txt` holds the judgements the measures were computed with (the evaluated requests'; with
    `condensed_qrels`, only of items that have a record), so that trec_eval on it and a run file
    gives the report's numbers.
    """
    rankers = [*settings.rankers, *extra_rankers]
    if settings.reference not in {ranker.name for ranker in rankers}:
        raise MintError(
            f"evaluation.reference `{settings.reference}` has no ranker in this evaluation (a student that is "
            f"not trained yet?); systems: {', '.join(ranker.name for ranker in rankers)}"
        )
    runs, details = produce_runs(
        collection, rankers, folder,
        depth=settings.depth, batch_size=settings.batch_size, cache_dir=evaluation_cache_dir(settings.cache_dir),
        precision=settings.precision,
        reuse=resume,
    )
    evaluation = evaluate_runs(
        collection, runs, settings.reference,
        measures=settings.measures, relevance_level=settings.relevance_level, method=settings.significance,
        resamples=settings.resamples, alpha=settings.alpha, seed=seed, details=details,
    )
    write_qrels(Path(folder) / QRELS_FILE, {qid: collection.qrels.get(qid, {}) for qid in collection.qids()})
    write_report(evaluation, folder)
    return evaluation

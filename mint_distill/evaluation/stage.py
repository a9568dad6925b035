"""The `evaluate` stage: every configured ranker and the run's trained students on the test collection.

The stage comes after the student stages (`after`), so their output hashes are part of its
fingerprint: a student that is trained, retrained or removed makes the evaluation stale. It
does not need them: a student is evaluated when its stage has finished (its `manifest.json`
and `model/` exist in the run folder) and the recipe enables it; before that the report holds
the baselines only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import MintError
from ..pipeline import Stage, StageContext, register_stage
from ..pipeline.manifest import MANIFEST, read_manifest
from ..recipe import Recipe
from ..recipe.sections.evaluation import RankerSpec
from ..students.data import MODEL_DIR
from ..students.fusion import recorded_fusion_weight
from ..students.stage import AVERAGE_BIENCODER, TRAIN_CROSSENCODER


def student_rankers(recipe: Recipe, run_root: Path) -> list[RankerSpec]:
    """Rankers for the students whose training stage finished in `run_root`."""
    if not recipe.evaluation.students:
        return []
    specs: list[RankerSpec] = []
    biencoder = run_root / AVERAGE_BIENCODER
    if recipe.students.biencoder.enabled and _finished(biencoder):
        specs.append(
            RankerSpec(name="biencoder-mint", kind="biencoder", model=str(biencoder / MODEL_DIR))
        )
    crossencoder = run_root / TRAIN_CROSSENCODER
    if recipe.students.crossencoder.enabled and _finished(crossencoder):
        specs.append(
            RankerSpec(
                name="crossencoder-mint",
                kind="crossencoder",
                model=str(crossencoder / MODEL_DIR),
                first_stage="biencoder-mint" if specs else _first_stage_without_biencoder(recipe),
                top_k=recipe.students.crossencoder.rerank_top_k,
                fusion_weight=recorded_fusion_weight(crossencoder / MODEL_DIR),
            )
        )
    return specs


def _first_stage_without_biencoder(recipe: Recipe) -> str:
    """The reference when it is a configured ranker, else the first configured ranker."""
    names = [ranker.name for ranker in recipe.evaluation.rankers]
    if not names:
        raise MintError("evaluation.rankers is empty: the cross-encoder student needs a first-stage ranker")
    return recipe.evaluation.reference if recipe.evaluation.reference in names else names[0]


def _finished(stage_dir: Path) -> bool:
    return (stage_dir / MANIFEST).is_file() and (stage_dir / MODEL_DIR).is_dir()


def _collection_folder(recipe: Recipe) -> Path:
    from ..data.paths import data_dir, under

    return under(data_dir(recipe.data.data_dir), recipe.data.test.path)


def _input_files(recipe: Recipe) -> list[Path]:
    """Every file of the test collection's folder."""
    collection = _collection_folder(recipe)
    return sorted(path for path in collection.rglob("*") if path.is_file()) if collection.is_dir() else []


def _check(recipe: Recipe) -> list[str]:
    from ..data.download import POINTREC, fetch_problem

    problem = fetch_problem(POINTREC, _collection_folder(recipe), download=recipe.data.test.download, key="data.test")
    return [f"data.test: {problem}"] if problem else []


def run_evaluate(ctx: StageContext) -> dict[str, Any]:
    from ..data.paths import data_dir
    from ..data.pointrec import load_test_collection
    from .collection import from_test_collection
    from .run import run_evaluation

    recipe = ctx.recipe
    test = load_test_collection(recipe.data.test, data_dir(recipe.data.data_dir))
    collection = from_test_collection(test, recipe.data.test.pool)
    data_summary = (read_manifest(ctx.run_root / "data") or {}).get("summary", {})
    if data_summary.get("judged_items_allowed"):
        collection.notes["training_allowed_judged"] = True
    elif data_summary.get("judged_excluded") is not None:
        collection.notes["training_excluded_judged"] = data_summary["judged_excluded"]
    students = student_rankers(recipe, ctx.run_root)
    ctx.log.info(
        "evaluating %d requests (pool %s) with %d system(s)%s", len(collection.qids()), collection.pool,
        len(recipe.evaluation.rankers) + len(students),
        f", students: {', '.join(s.name for s in students)}" if students else ", no trained students yet",
    )
    evaluation = run_evaluation(
        collection, recipe.evaluation, ctx.dir, extra_rankers=students, seed=recipe.seed, resume=ctx.resuming
    )
    metrics = evaluation.to_json()
    return {
        "requests": metrics["requests"],
        "pool": metrics["pool"],
        "reference": metrics["reference"],
        "means": {name: entry["means"] for name, entry in metrics["systems"].items()},
    }


STAGE_OPTIONS: dict[str, Any] = {
    "summary": "rank the test collection with the baselines and trained students; metrics, significance, report",
    "config_keys": (
        "seed",
        "data.data_dir",
        "data.test",
        "evaluation",
        "students.biencoder.enabled",
        "students.crossencoder.enabled",
        "students.crossencoder.rerank_top_k",
    ),
    "version": 2,  # 2: cross-encoders score with logits, the scale their fusion weight is chosen on
    "after": (AVERAGE_BIENCODER, TRAIN_CROSSENCODER),
    "input_files": _input_files,
    "check": _check,
}
register_stage("evaluate", **STAGE_OPTIONS)(run_evaluate)
# The same stage as an object, so `mint-distill evaluate` runs it without ordering every stage.
EVALUATE_STAGE = Stage(name="evaluate", run=run_evaluate, **STAGE_OPTIONS)

"""Ablations: the same recipe with one thing changed, compared through the bi-encoder student.

Each variant is a run of its own (`<run_dir>/<name>-<variant>`) made from the recipe plus the
variant's overrides. Stages whose fingerprint the change leaves alone (data, the teacher, ...)
are copied from the main run (`reuse_stages`), so a filter ablation costs a filter pass, a
bi-encoder training and its evaluation. Variants train no cross-encoder and package nothing:
the bi-encoder is the student the paper's ablations are read from, and the cheapest to retrain.

Every bi-encoder is also scored on one synthetic dev split, the main run's (`score_on_main_dev`):
each variant selected its checkpoint on its own split, made from its own data, so only a shared
split can choose between data sources or teachers without reading the test collection. That split
is written by the main run's teacher; with `data.catalog.dev_requests`, every bi-encoder is also
scored on requests written for the target catalog outside the pipeline
(`score_on_dev_requests`), which its teacher did not write.

Two trainings of the same pairs with different seeds land further apart on a few dozen requests
than most variants do from the recipe, so an arm (the full run, or a variant) may be trained with
several seeds (`students.biencoder.training.seed`): its runs are `<run>-seed<N>`, and every figure
of the arm is the per-request (per-pair) mean over its students, compared paired as before.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from statistics import fmean
from typing import Any

from ..errors import RecipeError
from ..io import read_json, write_json_atomic, write_text_atomic
from ..recipe import Recipe
from .significance import compare

STUDENT = "biencoder-mint"
FULL = "full"
ZERO_SHOT = "zero-shot"
DEV_COLUMNS = ("dev loss", "dev MRR@10")
DEV_REQUEST_MEASURES = ("NDCG@5", "NDCG@10")
REPORT_FOLDER = "ablations"
COUNTS = (("generate", "requests"), ("filter", "pairs_kept"))

# An arm's run folder per training seed: {arm: {seed: run root}}, the full run's arm first.
Arms = dict[str, dict[int, Path]]


def training_seed(recipe: Recipe) -> int:
    """The seed the recipe trains its bi-encoder with."""
    from ..students.stage import seed_of

    return seed_of(recipe, recipe.students.biencoder.training.seed)


def variant_recipe(recipe: Recipe, variant: str, seed: int | None = None) -> Recipe:
    """The recipe of one ablation run: the main recipe, the variant's overrides (none for `full`),
    no cross-encoder; with a `seed` other than the recipe's training seed, the bi-encoder is trained
    with it in a run of its own. `full` at the recipe's training seed is the recipe itself."""
    from pydantic import ValidationError

    from ..recipe.loading import apply_override, format_validation_error

    other_seed = seed is not None and seed != training_seed(recipe)
    if variant == FULL and not other_seed:
        return recipe
    raw = recipe.model_dump(mode="json")
    for override in [] if variant == FULL else recipe.ablations[variant]:
        try:
            apply_override(raw, override)
        except RecipeError as error:
            raise RecipeError(f"ablations.{variant}: {error}") from None
    raw["name"] = recipe.name if variant == FULL else f"{recipe.name}-{variant}"
    if other_seed:
        raw["students"]["biencoder"]["training"]["seed"] = seed
        raw["name"] += f"-seed{seed}"
    raw["ablations"] = {}
    raw["students"]["crossencoder"]["enabled"] = False
    raw["package"]["enabled"] = False
    reference = raw["evaluation"]["reference"]
    raw["evaluation"]["rankers"] = [r for r in raw["evaluation"]["rankers"] if r["name"] == reference]
    try:
        return Recipe.model_validate(raw)
    except ValidationError as error:
        raise RecipeError(format_validation_error(error, source=f"ablations.{variant}")) from None


def finished_run(root: Path) -> Path:
    """`root`, if its bi-encoder was trained and evaluated (what a report reads)."""
    for needed in (student_model(root), root / "evaluate" / "per_query.csv"):
        if not needed.exists():
            raise RecipeError(f"{needed} does not exist: run `mint-distill ablate` without --report-only first")
    return root


def read_per_query(evaluate_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """`per_query.csv` as {system: {measure: {qid: score}}}."""
    systems: dict[str, dict[str, dict[str, float]]] = {}
    with (evaluate_dir / "per_query.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            system, qid = row.pop("system"), row.pop("qid")
            for measure, value in row.items():
                systems.setdefault(system, {}).setdefault(measure, {})[qid] = float(value)
    return systems


def score_on_main_dev(arms: Arms, recipe: Recipe) -> dict[str, Any]:
    """The zero-shot encoder and every arm's bi-encoders on the full run's synthetic dev split.

    Each student as `average-biencoder` saved it, scored as the full run's `train-biencoder` scores
    its checkpoints (its batches, dev catalog sample, sequence length and precision), so at
    `finetuned_weight` 1 the full run's row is the figure it was selected on. An arm's measures
    and pair losses are its students' means. Each dev loss is compared with the full run's: the
    difference of the two dev losses, and the report's paired test over the dev pairs' own loss terms.
    """
    from ..students.dev_scoring import run_dev_data, score_on_dev

    main_root = main_run(arms)
    data = run_dev_data(main_root)
    spec = recipe.students.biencoder
    scored = {ZERO_SHOT: score_on_dev(spec.model, data, spec, recipe.seed)}
    for arm, roots in arms.items():
        students = [
            score_on_dev(str(student_model(root)), data, spec, recipe.seed) for root in roots.values()
        ]
        scored[arm] = _mean_dev_scores(students)
    full = scored[FULL]
    test = recipe.evaluation
    versus_full = {}
    for name, scores in scored.items():
        if name == FULL or not full.pair_losses or not scores.pair_losses:
            continue
        comparison = compare(scores.pair_losses, full.pair_losses, test.significance, test.resamples, recipe.seed)
        # The dev loss is averaged over batch losses that train-biencoder takes at its training
        # precision (bf16 rounds each to 3 digits), the pair terms in float32: the difference shown is
        # that of the dev losses in the table, the p-value the pair terms'.
        delta = scores.measures["loss"] - full.measures["loss"]
        versus_full[name] = _comparison(replace(comparison, delta=delta), test.alpha)
    return {
        "run": str(main_root),
        "requests": len({pair.request_id for pair in data.dev}),
        "pairs": len(data.dev),
        "scores": {name: scores.measures for name, scores in scored.items()},
        "loss_versus_full": versus_full,
    }


def main_run(arms: Arms) -> Path:
    """The full run's first folder: its synthetic dev split, evaluation metadata and report."""
    return next(iter(arms[FULL].values()))


def student_model(root: Path) -> Path:
    from ..students.data import MODEL_DIR
    from ..students.stage import AVERAGE_BIENCODER

    return root / AVERAGE_BIENCODER / MODEL_DIR


def _mean_dev_scores(students: list):
    """Several students' `DevScores` as one: mean measures, and each dev pair's mean loss."""
    from ..students.dev_scoring import DevScores

    measures = {key: fmean(s.measures[key] for s in students) for key in students[0].measures}
    pairs = set.intersection(*(set(s.pair_losses) for s in students))
    pair_losses = {pair: fmean(s.pair_losses[pair] for s in students) for pair in sorted(pairs)}
    return DevScores(measures, pair_losses)


def seed_mean(per_seed: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """{measure: {qid: score}} of several students as one: each request's mean score."""
    return {
        measure: {qid: fmean(scores[measure][qid] for scores in per_seed) for qid in per_seed[0][measure]}
        for measure in per_seed[0]
    }


def score_on_dev_requests(arms: Arms, recipe: Recipe) -> dict[str, Any] | None:
    """The zero-shot encoder and every arm's bi-encoders on the recipe's dev requests
    (`data.catalog.dev_requests`, every file's pooled; None without them).

    Each student ranks every request's graded pool as the evaluate stage ranks the test pools
    (`produce_runs` with its precision, batch size and encoding cache, each model at its own
    sequence length; runs and their qrels in `ablations/dev-requests/`). An arm's score for a
    request is its students' mean, compared per request with the full run's, paired as in the report.
    """
    if recipe.data.catalog.dev_requests is None:
        return None
    from ..data.dev_requests import dev_collection
    from ..data.poi_catalog import load_poi_catalog
    from ..data.pseudo_histories import collection_folder
    from ..recipe.sections.evaluation import RankerSpec
    from .cache import evaluation_cache_dir
    from .metrics import evaluate_run, mean
    from .systems import produce_runs
    from .trec import QRELS_FILE, write_qrels

    files = recipe.data.catalog.dev_request_files
    collection = dev_collection(files, recipe.data.test, load_poi_catalog(collection_folder(recipe.data)))
    several_seeds = any(len(roots) > 1 for roots in arms.values())
    students = {
        (arm, seed): f"{arm}-seed{seed}" if several_seeds else arm
        for arm, roots in arms.items()
        for seed in roots
    }
    rankers = [RankerSpec(name=ZERO_SHOT, kind="dense", model=recipe.students.biencoder.model)]
    rankers += [
        RankerSpec(name=name, kind="biencoder", model=str(student_model(arms[arm][seed])))
        for (arm, seed), name in students.items()
    ]
    spec = recipe.evaluation
    folder = main_run(arms) / REPORT_FOLDER / "dev-requests"
    runs, _ = produce_runs(
        collection,
        rankers,
        folder,
        depth=max(len(pool) for pool in collection.pools.values()),
        batch_size=spec.batch_size,
        cache_dir=evaluation_cache_dir(spec.cache_dir),
        precision=spec.precision,
    )
    write_qrels(folder / QRELS_FILE, collection.qrels)
    evaluated = {
        name: evaluate_run(run, collection.qrels, DEV_REQUEST_MEASURES, spec.relevance_level)
        for name, run in runs.items()
    }
    per_query = {ZERO_SHOT: evaluated[ZERO_SHOT]}
    per_seed: dict[str, dict[int, dict[str, float]]] = {}
    for arm, roots in arms.items():
        per_query[arm] = seed_mean([evaluated[students[arm, seed]] for seed in roots])
        per_seed[arm] = {seed: mean(evaluated[students[arm, seed]]) for seed in roots}
    full = per_query[FULL]
    return {
        "files": files,
        "requests": len(collection.requests),
        "judgements": sum(len(grades) for grades in collection.qrels.values()),
        "scores": {name: mean(scores) for name, scores in per_query.items()},
        "per_seed": per_seed,
        "versus_full": {
            name: {
                m: _comparison(
                    compare(scores[m], full[m], spec.significance, spec.resamples, recipe.seed), spec.alpha
                )
                for m in DEV_REQUEST_MEASURES
            }
            for name, scores in per_query.items()
            if name != FULL
        },
    }


def compare_variants(
    arms: Arms,
    recipe: Recipe,
    dev: dict[str, Any] | None = None,
    dev_requests: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Each variant's bi-encoder against the reference and against the full run's bi-encoder;
    `dev` and `dev_requests`: `score_on_main_dev`'s and `score_on_dev_requests`' results, shown
    beside them. An arm's per-request scores are its students' means."""
    spec = recipe.evaluation
    main_root = main_run(arms)
    main = read_per_query(main_root / "evaluate")
    if STUDENT not in main:
        raise RecipeError(f"{main_root / 'evaluate'}: the main run has no evaluated `{STUDENT}` to compare with")
    reference = main[spec.reference]
    students = {
        arm: seed_mean([read_per_query(root / "evaluate")[STUDENT] for root in roots.values()])
        for arm, roots in arms.items()
    }
    full = students[FULL]
    measures = list(full)
    rows = {
        arm: _row(scores, reference, None if arm == FULL else full, arms[arm], measures, spec, recipe.seed)
        for arm, scores in students.items()
    }
    metrics = read_json(main_root / "evaluate" / "metrics.json")
    return {
        "reference": spec.reference,
        "student": STUDENT,
        "measures": measures,
        "requests": metrics["requests"],
        "pool": metrics["pool"],
        "alpha": spec.alpha,
        "method": spec.significance,
        "seeds": list(arms[FULL]),
        "overrides": {arm: [] if arm == FULL else recipe.ablations[arm] for arm in arms},
        "rows": rows,
        "dev": dev,
        "dev_requests": dev_requests,
    }


def _row(scores, reference, full, roots: dict[int, Path], measures: list[str], spec, seed: int) -> dict[str, Any]:
    # The evaluate stage's seed: the full run's row then repeats its report's p-values exactly.
    def versus(other):
        return {
            m: _comparison(compare(scores[m], other[m], spec.significance, spec.resamples, seed), spec.alpha)
            for m in measures
        }

    first = next(iter(roots.values()))
    return {
        "runs": {str(seed): str(root) for seed, root in roots.items()},
        "means": {m: fmean(scores[m].values()) for m in measures},
        "versus_reference": versus(reference),
        "versus_full": versus(full) if full is not None else {},
        "counts": {f"{stage}.{key}": _summary(first, stage).get(key) for stage, key in COUNTS},
    }


def _comparison(comparison, alpha: float) -> dict[str, Any]:
    return {"delta": comparison.delta, "p_value": comparison.p_value, "significant": comparison.significant(alpha)}


def _summary(root: Path, stage: str) -> dict[str, Any]:
    from ..pipeline.manifest import read_manifest

    manifest = read_manifest(root / stage)
    return dict(manifest.get("summary") or {}) if manifest else {}


def render_markdown(table: dict[str, Any]) -> str:
    from .report import BETTER, WORSE

    measures = table["measures"]
    dev = table.get("dev")
    dev_scores = dev["scores"] if dev else {}
    dev_columns = list(DEV_COLUMNS) if dev else []
    written = table.get("dev_requests")
    seeds = table.get("seeds", [])
    per_seed_column = len(seeds) > 1
    if written:
        dev_columns += [f"dev requests {m}" for m in DEV_REQUEST_MEASURES]
        if per_seed_column:
            dev_columns.append(f"dev requests {DEV_REQUEST_MEASURES[0]} per seed")
    lines = [
        f"# Ablations: `{table['student']}` trained on each variant's synthetic data",
        "",
        f"Pool `{table['pool']}`, {table['requests']} requests (as in the main report). Each cell: mean, "
        f"then the difference from `{table['reference']}` (zero-shot reference) and from the full run's "
        f"`{table['student']}`; {BETTER} / {WORSE}: significant at p < {table['alpha']} ({table['method']}, paired).",
        "",
        *(_seeds_note(seeds) if per_seed_column else []),
        *(_dev_note(dev) if dev else []),
        *(_dev_requests_note(written) if written else []),
        "| variant | overrides | requests | pairs kept | " + " | ".join(measures + dev_columns) + " |",
        "|---|---|---:|---:|" + "---|" * len(measures) + "---:|" * len(dev_columns),
    ]
    for variant, row in table["rows"].items():
        cells = []
        for m in measures:
            text = f"{row['means'][m]:.4f} (ref {_delta_cell(row['versus_reference'][m])}"
            if row["versus_full"]:
                text += f"; full {_delta_cell(row['versus_full'][m])}"
            cells.append(text + ")")
        overrides = ", ".join(f"`{o}`" for o in table["overrides"][variant]) or "the recipe as is"
        counts = row["counts"]
        if dev:
            scores = dev_scores.get(variant, {})
            loss = _dev_cell(scores, "loss", ".3f")
            versus = dev.get("loss_versus_full", {}).get(variant)
            if versus:
                # Lower is better for a loss.
                mark = (WORSE if versus["delta"] > 0 else BETTER) if versus["significant"] else ""
                loss += f" ({versus['delta']:+.3f}{mark})"
            cells.extend([loss, _dev_cell(scores, "mrr@10", ".3f")])
        if written:
            cells.extend(_dev_request_cells(written, variant, per_seed_column))
        lines.append(
            f"| {variant} | {overrides} | {_count(counts['generate.requests'])} | "
            f"{_count(counts['filter.pairs_kept'])} | " + " | ".join(cells) + " |"
        )
    lines.append("")
    return "\n".join(lines)


def _dev_note(dev: dict[str, Any]) -> list[str]:
    zero = dev["scores"].get(ZERO_SHOT, {})
    note = (
        f"Dev columns: every bi-encoder scored on one synthetic dev split, the main run's ({dev['requests']} "
        f"requests, {dev['pairs']} kept pairs), as it selects checkpoints; in brackets the dev loss's "
        "difference from the full run's (paired over the dev pairs, same test and marks; lower is better). "
        f"The zero-shot encoder: dev loss {_dev_cell(zero, 'loss', '.3f')}, dev MRR@10 "
        f"{_dev_cell(zero, 'mrr@10', '.3f')}. Each variant was selected on its own split, so compare "
        "variants on these columns, not on the test collection. The full run chose its checkpoint on "
        "this split, which flatters its row a little."
    )
    return [note, ""]


def _seeds_note(seeds: list[int]) -> list[str]:
    note = (
        f"Every arm was trained with seeds {', '.join(map(str, seeds))} (`students.biencoder.training.seed`): "
        "its score for a request (a dev pair) is the mean of its students' scores, and the tests pair "
        "these means, so the training seeds' spread does not decide a comparison."
    )
    return [note, ""]


def _dev_requests_note(written: dict[str, Any]) -> list[str]:
    zero = written["scores"][ZERO_SHOT]
    versus = written["versus_full"][ZERO_SHOT]
    files = ", ".join(f"`{file}`" for file in written["files"])
    note = (
        f"Dev-request columns: every bi-encoder ranking the graded pools of {written['requests']} "
        f"requests written for the target catalog outside the pipeline ({files}, "
        f"{written['judgements']} judgements; not the run's teacher's, and none of their items was a "
        "training item); in brackets the difference from the full run's student and its p-value, same "
        "test and marks. The zero-shot encoder: "
        + ", ".join(f"{m} {zero[m]:.4f} ({_versus_cell(versus[m])})" for m in DEV_REQUEST_MEASURES)
        + "."
    )
    return [note, ""]


def _dev_request_cells(written: dict[str, Any], variant: str, per_seed_column: bool) -> list[str]:
    scores = written["scores"].get(variant)
    if scores is None:
        return ["n/a"] * (len(DEV_REQUEST_MEASURES) + per_seed_column)
    versus = written["versus_full"].get(variant)
    cells = [
        f"{scores[m]:.4f}" + (f" ({_versus_cell(versus[m])})" if versus else "") for m in DEV_REQUEST_MEASURES
    ]
    if per_seed_column:
        measure = DEV_REQUEST_MEASURES[0]
        cells.append(", ".join(f"{seed[measure]:.4f}" for seed in written["per_seed"][variant].values()))
    return cells


def _delta_cell(entry: dict[str, Any]) -> str:
    """A difference, marked when significant (higher is better)."""
    from .report import BETTER, WORSE

    mark = (BETTER if entry["delta"] > 0 else WORSE) if entry["significant"] else ""
    return f"{entry['delta']:+.4f}{mark}"


def _versus_cell(entry: dict[str, Any]) -> str:
    return f"{_delta_cell(entry)}, p {entry['p_value']:.2f}"


def _dev_cell(scores: dict[str, float], key: str, spec: str) -> str:
    # A dev split with fewer requests than a batch has no in-batch loss.
    return format(scores[key], spec) if key in scores else "n/a"


def _count(value: Any) -> str:
    return "" if value is None else f"{value:,}"


def write_ablation_report(table: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "ablations.json", table)
    write_text_atomic(folder / "report.md", render_markdown(table))
    return folder / "report.md"

"""`mint-distill validate`: can a run of this recipe start here?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .errors import MintError
from .filtering.keep import SCORED_METHODS
from .models import resolve_model
from .pipeline.registry import Stage, all_stages, stage_problems
from .recipe import Recipe


@dataclass
class ValidationReport:
    models: dict[str, str] = field(default_factory=dict)  # recipe key -> where it resolved
    precisions: dict[str, str] = field(default_factory=dict)  # recipe key -> what it runs at here
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def model_references(recipe: Recipe) -> dict[str, str]:
    """Recipe key -> model reference, for every model the recipe would load."""
    from .teacher.stage import uses_llm

    references: dict[str, str] = {}
    catalog = recipe.data.catalog
    if catalog.enabled and catalog.similar_by is not None:
        references["data.catalog.similar_by"] = catalog.similar_by
    if uses_llm(recipe):
        references["teacher.model"] = recipe.teacher.model
        if recipe.teacher.report.enabled:
            references["teacher.report.encoder"] = recipe.teacher.report.encoder
    if recipe.filter.method in SCORED_METHODS:
        references["filter.model"] = recipe.filter.model
    if recipe.students.biencoder.enabled:
        references["students.biencoder.model"] = recipe.students.biencoder.model
    if recipe.students.crossencoder.enabled:
        references["students.crossencoder.model"] = recipe.students.crossencoder.model
    for index, ranker in enumerate(recipe.evaluation.rankers):
        if ranker.model:
            references[f"evaluation.rankers.{index}.model"] = ranker.model
    return references


def resolve_models(recipe: Recipe, stages: Sequence[Stage] | None = None) -> tuple[dict[str, str], list[str]]:
    """Find each model the recipe would load, or only those that a stage of `stages` reads.

    Returns recipe key -> where the model is, and one problem per model that is not here."""
    found: dict[str, str] = {}
    problems: list[str] = []
    for key, reference in model_references(recipe).items():
        if stages is not None and not any(stage.reads(key) for stage in stages):
            continue
        try:
            resolved = resolve_model(reference)
            found[key] = f"{reference} -> {resolved.source}: {resolved.location}"
        except MintError as error:
            problems.append(f"{key}: {error}")
    return found, problems


def _check_precisions(recipe: Recipe, report: ValidationReport) -> None:
    from .models.precision import default_device_type, emulated
    from .recipe.precision import PRECISION_KEYS, precision_settings, resolve_here

    device = default_device_type()
    for key, precision in precision_settings(recipe.model_dump(mode="json")).items():
        resolved = resolve_here(precision, PRECISION_KEYS[key])
        report.precisions[key] = f"{precision} -> {resolved} on this {device.upper()}"
        if emulated(resolved, device):
            report.warnings.append(
                f"{key}: {precision} is emulated on this {device.upper()} (no native bfloat16), "
                "tens of times slower than float32 on a CPU; `auto` picks float32 here"
            )


def validate_recipe(recipe: Recipe) -> ValidationReport:
    report = ValidationReport()
    _check_precisions(recipe, report)
    catalog = recipe.data.catalog
    if catalog.enabled and catalog.source == "test" and not catalog.exclude_judged:
        report.warnings.append(
            "data.catalog.exclude_judged is false: catalog pseudo-histories may show items the test "
            "collection judges, so its evaluation is not a held-out test"
        )
    found, problems = resolve_models(recipe)
    report.models.update(found)
    report.problems.extend(problems)
    recipe_problems = stage_problems(recipe, [stage for stage in all_stages() if stage.enabled(recipe)])
    report.problems.extend(recipe_problems)
    report.problems.extend(_ablation_problems(recipe, set(recipe_problems)))
    return report


def _ablation_problems(recipe: Recipe, recipe_problems: set[str]) -> list[str]:
    """What would stop an ablation run (`mint-distill ablate` starts them after the full run):
    an invalid variant, a model only a variant loads that is not here, a variant's stage problem
    other than the recipe's own (`recipe_problems`, reported once)."""
    from .evaluation.ablations import variant_recipe

    problems = []
    recipe_models = set(model_references(recipe).values())
    for variant in recipe.ablations:
        try:
            ablation = variant_recipe(recipe, variant)
        except MintError as error:
            problems.append(str(error))
            continue
        for key, reference in model_references(ablation).items():
            if reference in recipe_models:
                continue
            try:
                resolve_model(reference)
            except MintError as error:
                problems.append(f"ablations.{variant}: {key}: {error}")
        stages = [stage for stage in all_stages() if stage.enabled(ablation)]
        problems += [
            f"ablations.{variant}: {problem}"
            for problem in stage_problems(ablation, stages)
            if problem not in recipe_problems
        ]
    return problems

"""Ablations: the same recipe with one thing changed, compared through the bi-encoder student.

Each variant is a run of its own (`<run_dir>/<name>-<variant>`) made from the recipe plus the
variant's overrides. Stages whose fingerprint the change leaves alone (data, the teacher, ...)
are copied from the main run (`reuse_stages`), so a filter ablation costs a filter pass, a
bi-encoder training and its evaluation. Variants train no cross-encoder and package nothing:
the bi-encoder is the student the paper's ablations are read from, and the cheapest to retrain.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ..errors import RecipeError
from ..io import read_json, write_json_atomic, write_text_atomic
from ..recipe import Recipe
from .significance import compare

STUDENT = "biencoder-mint"
FULL = "full"
REPORT_FOLDER = "ablations"
COUNTS = (("generate", "requests"), ("filter", "pairs_kept"))


def variant_recipe(recipe: Recipe, variant: str) -> Recipe:
    """The recipe of one ablation run: the main recipe, the variant's overrides, no cross-encoder."""
    from pydantic import ValidationError

    from ..recipe.loading import apply_override, format_validation_error

    raw = recipe.model_dump(mode="json")
    for override in recipe.ablations[variant]:
        try:
            apply_override(raw, override)
        except RecipeError as error:
            raise RecipeError(f"ablations.{variant}: {error}") from None
    raw["name"] = f"{recipe.name}-{variant}"
    raw["ablations"] = {}
    raw["students"]["crossencoder"]["enabled"] = False
    raw["package"]["enabled"] = False
    reference = raw["evaluation"]["reference"]
    raw["evaluation"]["rankers"] = [r for r in raw["evaluation"]["rankers"] if r["name"] == reference]
    try:
        return Recipe.model_validate(raw)
    except ValidationError as error:
        raise RecipeError(format_validation_error(error, source=f"ablations.{variant}")) from None


def read_per_query(evaluate_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """`per_query.csv` as {system: {measure: {qid: score}}}."""
    systems: dict[str, dict[str, dict[str, float]]] = {}
    with (evaluate_dir / "per_query.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            system, qid = row.pop("system"), row.pop("qid")
            for measure, value in row.items():
                systems.setdefault(system, {}).setdefault(measure, {})[qid] = float(value)
    return systems


def compare_variants(main_root: Path, variant_roots: dict[str, Path], recipe: Recipe) -> dict[str, Any]:
    """Each variant's bi-encoder against the reference and against the full run's bi-encoder."""
    spec = recipe.evaluation
    main = read_per_query(main_root / "evaluate")
    if STUDENT not in main:
        raise RecipeError(f"{main_root / 'evaluate'}: the main run has no evaluated `{STUDENT}` to compare with")
    reference, full = main[spec.reference], main[STUDENT]
    measures = list(full)
    rows = {FULL: _row(full, reference, None, main_root, measures, spec)}
    for variant, root in variant_roots.items():
        scores = read_per_query(root / "evaluate")[STUDENT]
        rows[variant] = _row(scores, reference, full, root, measures, spec)
    metrics = read_json(main_root / "evaluate" / "metrics.json")
    return {
        "reference": spec.reference,
        "student": STUDENT,
        "measures": measures,
        "requests": metrics["requests"],
        "pool": metrics["pool"],
        "alpha": spec.alpha,
        "method": spec.significance,
        "overrides": {FULL: [], **{variant: recipe.ablations[variant] for variant in variant_roots}},
        "rows": rows,
    }


def _row(scores, reference, full, root: Path, measures: list[str], spec) -> dict[str, Any]:
    def versus(other):
        return {
            m: _comparison(compare(scores[m], other[m], spec.significance, spec.resamples), spec.alpha)
            for m in measures
        }

    return {
        "run": str(root),
        "means": {m: sum(scores[m].values()) / len(scores[m]) for m in measures},
        "versus_reference": versus(reference),
        "versus_full": versus(full) if full is not None else {},
        "counts": {f"{stage}.{key}": _summary(root, stage).get(key) for stage, key in COUNTS},
    }


def _comparison(comparison, alpha: float) -> dict[str, Any]:
    return {"delta": comparison.delta, "p_value": comparison.p_value, "significant": comparison.significant(alpha)}


def _summary(root: Path, stage: str) -> dict[str, Any]:
    from ..pipeline.manifest import read_manifest

    manifest = read_manifest(root / stage)
    return dict(manifest.get("summary") or {}) if manifest else {}


def render_markdown(table: dict[str, Any]) -> str:
    from .report import BETTER, WORSE

    def cell(entry: dict[str, Any]) -> str:
        mark = (BETTER if entry["delta"] > 0 else WORSE) if entry["significant"] else ""
        return f"{entry['delta']:+.4f}{mark}"

    measures = table["measures"]
    lines = [
        f"# Ablations: `{table['student']}` trained on each variant's synthetic data",
        "",
        f"Pool `{table['pool']}`, {table['requests']} requests (as in the main report). Each cell: mean, "
        f"then the difference from `{table['reference']}` (zero-shot reference) and from the full run's "
        f"`{table['student']}`; {BETTER} / {WORSE}: significant at p < {table['alpha']} ({table['method']}, paired).",
        "",
        "| variant | overrides | requests | pairs kept | " + " | ".join(measures) + " |",
        "|---|---|---:|---:|" + "---|" * len(measures),
    ]
    for variant, row in table["rows"].items():
        cells = []
        for m in measures:
            text = f"{row['means'][m]:.4f} (ref {cell(row['versus_reference'][m])}"
            if row["versus_full"]:
                text += f"; full {cell(row['versus_full'][m])}"
            cells.append(text + ")")
        overrides = ", ".join(f"`{o}`" for o in table["overrides"][variant]) or "the recipe as is"
        counts = row["counts"]
        lines.append(
            f"| {variant} | {overrides} | {_count(counts['generate.requests'])} | "
            f"{_count(counts['filter.pairs_kept'])} | " + " | ".join(cells) + " |"
        )
    lines.append("")
    return "\n".join(lines)


def _count(value: Any) -> str:
    return "" if value is None else f"{value:,}"


def write_ablation_report(table: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "ablations.json", table)
    write_text_atomic(folder / "report.md", render_markdown(table))
    return folder / "report.md"

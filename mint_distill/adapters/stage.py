"""The `package` stage: the run's LoRA student(s), its counts and figures, as an adapter bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import MintError
from ..io import output_problem
from ..pipeline import StageContext, register_stage
from ..pipeline.manifest import read_manifest
from ..pipeline.registry import Stage
from ..recipe import Recipe
from ..students.data import MODEL_DIR
from ..students.stage import AVERAGE_BIENCODER, TRAIN_BIENCODER, TRAIN_CROSSENCODER
from .bundle import ComponentSource, copy_bundle, is_adapter_folder, replace_problem, write_bundle

EVALUATE_STAGE = "evaluate"
# Stages whose summary counts describe the training data in the manifest and card.
COUNTED_STAGES = ("data", "tune-teacher", "generate", "filter", TRAIN_BIENCODER, TRAIN_CROSSENCODER)


def _enabled(recipe: Recipe) -> bool:
    if not recipe.students.biencoder.enabled:
        return False
    if recipe.package.enabled is None:
        return recipe.students.biencoder.finetune == "lora"
    return recipe.package.enabled


def _check(recipe: Recipe) -> list[str]:
    if recipe.students.biencoder.finetune != "lora":
        return [
            "package.enabled is true but students.biencoder.finetune is `full`: a bundle holds a LoRA adapter; "
            "set students.biencoder.finetune=lora (or package.enabled=false)"
        ]
    if recipe.package.bundle_dir:
        bundle_dir = Path(recipe.package.bundle_dir)
        problem = output_problem(bundle_dir)
        if problem:
            return [f"package.bundle_dir: {bundle_dir}: {problem}"]
        problem = replace_problem(bundle_dir, recipe.package.domain)
        if problem:
            return [f"package.bundle_dir: {problem}"]
    return []


def run_package(ctx: StageContext) -> dict[str, Any]:
    """Write the bundle to <run folder>/package/<domain> (and copy it to package.bundle_dir)."""
    recipe, spec = ctx.recipe, ctx.recipe.package
    biencoder = ctx.upstream(AVERAGE_BIENCODER) / MODEL_DIR
    if not is_adapter_folder(biencoder):
        raise MintError(
            f"{biencoder}: the trained bi-encoder is not a LoRA adapter; set students.biencoder.finetune=lora "
            "and rerun from train-biencoder, or package.enabled=false"
        )
    crossencoder = _crossencoder_source(ctx)
    target = ctx.dir / spec.domain
    manifest = write_bundle(
        target,
        domain=spec.domain,
        biencoder=ComponentSource(biencoder, recipe.students.biencoder.model),
        crossencoder=crossencoder,
        recipe=recipe.model_dump(mode="json"),
        training_data=_stage_summaries(ctx.run_root),
        evaluation=_evaluation(ctx),
        description=recipe.description,
        license=spec.license,
    )
    summary: dict[str, Any] = {
        "bundle": str(target),
        "components": sorted(manifest["components"]),
        "files": len(manifest["files"]),
        "bytes": sum(record["size"] for record in manifest["files"].values()),
    }
    if spec.onnx:
        summary["export"] = _export(ctx, target)
    if spec.bundle_dir:
        summary["installed"] = str(copy_bundle(target, spec.bundle_dir))
    ctx.log.info("bundle %s: %s, %.1f MB", spec.domain, ", ".join(summary["components"]), summary["bytes"] / 1e6)
    return summary


def reinstall_bundle(recipe: Recipe, run_root: Path) -> Path | None:
    """Copy the run's bundle to `package.bundle_dir` again where that copy is missing, altered or
    another: it is installed when the package stage runs, and a fresh stage does not run. Returns
    the folder when it copied."""
    from ..pipeline import stage_states
    from .bundle import MANIFEST, verify_bundle

    if not (recipe.package.bundle_dir and _enabled(recipe)):
        return None
    if stage_states(recipe, [PACKAGE_STAGE])[0].status != "fresh":
        return None  # not built for these settings: nothing current to install
    built, installed = run_root / "package" / recipe.package.domain, Path(recipe.package.bundle_dir)
    ours, theirs = built / MANIFEST, installed / MANIFEST
    if theirs.is_file() and theirs.read_bytes() == ours.read_bytes() and not verify_bundle(installed):
        return None
    return copy_bundle(built, installed)


def _crossencoder_source(ctx: StageContext) -> ComponentSource | None:
    recipe = ctx.recipe
    folder = ctx.run_root / TRAIN_CROSSENCODER / MODEL_DIR
    if not (recipe.package.include_crossencoder and recipe.students.crossencoder.enabled and folder.is_dir()):
        return None
    if not is_adapter_folder(folder):
        ctx.log.info(
            "the cross-encoder is fully fine-tuned, not a LoRA adapter; the bundle leaves it out "
            "(students.crossencoder.finetune: lora trains one it holds)"
        )
        return None
    return ComponentSource(folder, recipe.students.crossencoder.model)


def _crossencoder_files(recipe: Recipe) -> list[Path]:
    """The LoRA cross-encoder's files, which the bundle copies: retraining it makes the package
    stale even where the evaluation does not change. None for a bundle without a cross-encoder,
    whose fingerprint stays as it was."""
    spec = recipe.students.crossencoder
    if not (recipe.package.include_crossencoder and spec.enabled and spec.finetune == "lora"):
        return []
    folder = Path(recipe.run_dir) / recipe.name / TRAIN_CROSSENCODER / MODEL_DIR
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else []


def _stage_summaries(run_root: Path) -> dict[str, Any]:
    summaries = {}
    for name in COUNTED_STAGES:
        manifest = read_manifest(run_root / name)
        if manifest and manifest.get("summary"):
            summaries[name] = manifest["summary"]
    return summaries


def _evaluation(ctx: StageContext) -> dict[str, Any]:
    manifest = read_manifest(ctx.upstream(EVALUATE_STAGE))
    return dict(manifest.get("summary") or {}) if manifest else {}


def _export(ctx: StageContext, bundle: Path) -> dict[str, Any]:
    from ..export import export_encoder

    report = export_encoder(bundle, ctx.dir / "export", onnx=True, int8=ctx.recipe.package.int8)
    for line in report.lines():
        ctx.log.info(line)
    return {"folder": str(report.folder), "parity": report.parity_summary()}


STAGE_OPTIONS: dict[str, Any] = {
    "summary": "domain adapter bundle: the LoRA student(s), manifest with hashes and figures, model card",
    "config_keys": ("name", "description", "package", "students.biencoder.model", "students.crossencoder.model"),
    "after": (AVERAGE_BIENCODER, EVALUATE_STAGE),
    "input_files": _crossencoder_files,
    "enabled": _enabled,
    "check": _check,
}
register_stage("package", **STAGE_OPTIONS)(run_package)
PACKAGE_STAGE = Stage(name="package", run=run_package, **STAGE_OPTIONS)

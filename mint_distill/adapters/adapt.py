"""`adapt`: a domain adapter for a new catalog, from its review histories.

1. `build_adapt_recipe` turns a source spec (the `data.source` mapping of a recipe: format,
   path, columns...) or a whole recipe into the recipe of an adapter run: it extends the POI
   recipe (or the given one), trains the bi-encoder with LoRA, leaves out the cross-encoder and
   the Pointrec evaluation, and packages the result as a bundle named after the domain.
2. `adapt` runs it: data -> teacher -> generate -> filter -> LoRA training -> package. A LoRA
   teacher tuned in another run folder is reused when it fits (same teacher settings and seed
   examples), so a new catalog costs generation, filtering and student training only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import RecipeError
from ..pipeline import RunResult, Stage, all_stages, run_pipeline, stage_states
from ..pipeline.manifest import read_manifest
from ..pipeline.runner import (
    RunLock,
    copy_finished_stage,
    refuse_what_would_stop_a_stage,
    run_root_of,
)
from ..recipe import Recipe, apply_override, load_recipe
from ..recipe.loading import format_validation_error, read_yaml_file
from ..recipe.sections.data import SourceSpec
from .bundle import check_domain
from .stage import reinstall_bundle

DEFAULT_BASE_RECIPE = Path("recipes/pointrec.yaml")
TEACHER_STAGE = "tune-teacher"
# Scored on Pointrec, which says nothing about a new catalog.
SKIPPED_STAGES = ("evaluate",)


def build_adapt_recipe(
    domain: str,
    data: str | os.PathLike,
    *,
    base_recipe: str | os.PathLike = DEFAULT_BASE_RECIPE,
    base_model: str | None = None,
    out: str | os.PathLike | None = None,
    seeds: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> Recipe:
    """The recipe of an adapter run for `domain`.

    `data` is a YAML file holding either a source spec (a mapping with `format` and `path`; a
    relative `path` or `items.path` that exists beside the file is taken from there) or a recipe
    (a mapping with `data`), which is then the starting point instead of `base_recipe`.
    A source spec also sets catalog adaptation to the new source's own items (or off, when it has
    no item table): the base recipe's catalog is its test collection's, not the new one's.
    Set: name `adapt-<domain>`, students.biencoder.finetune=lora (and .model=`base_model`),
    students.crossencoder.enabled=false, no ablations, package.domain, package.bundle_dir (`out`, default
    `adapters/<domain>`), teacher.tuning.seeds (`seeds`), then the `overrides` (key=value).
    """
    check_domain(domain)
    data = Path(data)
    document = _read_yaml(data)
    if "data" in document:
        raw = _unset_dropped(load_recipe(data))
    elif "format" in document:
        raw = _unset_dropped(load_recipe(base_recipe))
        source = _source_spec(document, data)
        raw.setdefault("data", {})["source"] = source
        for key, value in _catalog_of_new_source(source).items():
            _set(raw, key, value)
    else:
        raise RecipeError(
            f"{data}: neither a source spec (a mapping with `format` and `path`, as under data.source) "
            "nor a recipe (a mapping with `data`)"
        )
    settings: dict[str, Any] = {
        "name": f"adapt-{domain}",
        "description": raw.get("description") or f"Domain adapter `{domain}` trained on {data}.",
        "students.biencoder.finetune": "lora",
        "students.crossencoder.enabled": False,
        "package.enabled": True,
        "package.domain": domain,
        "package.bundle_dir": str(out if out is not None else Path("adapters") / domain),
        "ablations": {},
    }
    if base_model:
        settings["students.biencoder.model"] = base_model
    if seeds:
        settings["teacher.tuning.seeds"] = seeds
    for key, value in settings.items():
        _set(raw, key, value)
    for override in overrides:
        apply_override(raw, override)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as error:
        raise RecipeError(format_validation_error(error, source=f"adapter recipe built from {data}")) from None


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise RecipeError(f"--data file not found: {path}")
    document = read_yaml_file(path)
    if not isinstance(document, dict):
        raise RecipeError(f"{path}: expected a mapping (a source spec or a recipe)")
    return document


def _unset_dropped(recipe: Recipe) -> dict:
    """The recipe's values as written (defaults left to validation), safe to edit and revalidate."""
    return recipe.model_dump(mode="json", exclude_unset=True)


def _source_spec(document: dict, origin: Path) -> dict:
    document = dict(document)
    folder = origin.resolve().parent
    if isinstance(document.get("path"), str) and (folder / document["path"]).exists():
        document["path"] = str(folder / document["path"])
    items = document.get("items")
    if isinstance(items, dict) and isinstance(items.get("path"), str) and (folder / items["path"]).exists():
        document["items"] = {**items, "path": str(folder / items["path"])}
    try:
        return SourceSpec.model_validate(document).model_dump(mode="json", exclude_unset=True)
    except ValidationError as error:
        raise RecipeError(format_validation_error(error, source=f"{origin} (source spec)")) from None


def _catalog_of_new_source(source: dict) -> dict[str, Any]:
    """Catalog adaptation from the new source's own items, never the base recipe's test collection
    (Pointrec POIs in a books adapter), and off where the source has no item metadata to group by."""
    if source.get("items") or source["format"].startswith("yelp"):
        return {"data.catalog.source": "training", "data.catalog.dev_requests": None}
    return {"data.catalog.enabled": False}


def _set(raw: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


@dataclass
class AdaptResult:
    run: RunResult
    bundle: Path
    reused_teacher: Path | None


def adapt(
    recipe: Recipe,
    *,
    stages: list[Stage] | None = None,
    teacher_from: list[str | os.PathLike] = (),
    quiet: bool = False,
) -> AdaptResult:
    """Run an adapter recipe (see `build_adapt_recipe`) and return where its bundle is.

    Before the teacher stage, `teacher_from` and (with `reuse_stages`) the run folders under
    `recipe.run_dir` are searched for a `tune-teacher` output that fits (see `reuse_stage_output`).
    """
    chosen = [s for s in (stages if stages is not None else all_stages()) if s.name not in SKIPPED_STAGES]
    enabled = [s for s in chosen if s.enabled(recipe)]
    reused = None
    teacher = next((s for s in enabled if s.name == TEACHER_STAGE), None)
    if teacher is not None:
        before = enabled[: enabled.index(teacher)]
        if before:
            # The first call checks only the stages before the teacher: a bad model or setting of a
            # later one must stop the command before them, as `run` would.
            refuse_what_would_stop_a_stage(recipe, enabled, set())
            run_pipeline(recipe, stages=chosen, until=before[-1].name, quiet=quiet)
        if recipe.reuse_stages or teacher_from:
            reused = reuse_stage_output(recipe, teacher, _candidate_runs(recipe, teacher_from))
    result = run_pipeline(recipe, stages=chosen, quiet=quiet)
    reinstall_bundle(recipe, result.run_root)
    return AdaptResult(
        result, Path(recipe.package.bundle_dir or result.run_root / "package" / recipe.package.domain), reused
    )


def _candidate_runs(recipe: Recipe, extra: list[str | os.PathLike]) -> list[Path]:
    """`extra`, then the other run folders under run_dir unless the recipe turns reuse off."""
    own = run_root_of(recipe).resolve()
    siblings = sorted(p for p in Path(recipe.run_dir).glob("*") if p.is_dir()) if recipe.reuse_stages else []
    found = [Path(p) for p in extra] + siblings
    return [p for p in dict.fromkeys(found) if p.resolve() != own]


def reuse_stage_output(recipe: Recipe, stage: Stage, runs: list[Path]) -> Path | None:
    """Copy `stage`'s output from the first run folder where it was computed with the same
    config hash and input files as this recipe would use, and return that folder.

    Upstream outputs are not compared: this is meant for stages, like the teacher tuning, that
    read nothing of their upstream stages but what the config and input files already pin (the
    teacher reads only its seed examples). The copy's manifest records where it came from
    (`reused_from`) and the upstream hashes it was computed with (`reused_upstream`).
    """
    state = stage_states(recipe, [stage])[0]
    if state.status == "fresh":
        return None
    expected = state.expected
    for run in runs:
        source = run / stage.name
        manifest = read_manifest(source)
        if not manifest or (source / ".in_progress.json").exists():
            continue
        if (
            manifest.get("config_hash") != expected["config_hash"]
            or manifest.get("input_files") != expected["input_files"]
        ):
            continue
        run_root = run_root_of(recipe)
        run_root.mkdir(parents=True, exist_ok=True)
        with RunLock(run_root):
            copy_finished_stage(
                source,
                run_root / stage.name,
                {
                    **manifest,
                    "upstream": expected["upstream"],
                    "reused_from": str(source),
                    "reused_upstream": manifest.get("upstream"),
                },
            )
        return source
    return None

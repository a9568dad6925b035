"""Stage registration: components declare their stage where they live; the runner orders them.

A stage names the recipe keys it depends on (dotted paths) and the stages whose outputs it
reads. Stages are ordered so that every stage comes after the ones it reads, ties broken by
module (in `BUILTIN_STAGE_MODULES` order, plug-ins last), then registration order. Other
packages can add stages through the `mint_distill.stages` entry-point group (each entry point
is a module that calls `register_stage`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .manifest import select_config

if TYPE_CHECKING:
    from ..recipe import Recipe
    from .runner import StageContext

# Modules of this package that register stages when imported.
BUILTIN_STAGE_MODULES: tuple[str, ...] = (
    "mint_distill.data.stage",
    "mint_distill.teacher.stage",
    "mint_distill.teacher.report_stage",
    "mint_distill.filtering.stage",
    "mint_distill.evaluation.stage",
    "mint_distill.students.stage",
    "mint_distill.adapters.stage",
)


def _always(recipe: Recipe) -> bool:
    return True


def _no_files(recipe: Recipe) -> list[Path]:
    return []


def _no_problems(recipe: Recipe) -> list[str]:
    return []


def _nothing_unused(recipe_dump: dict) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class Stage:
    """One pipeline step: `run(ctx)` writes outputs into `ctx.dir` and returns summary counts.

    `check(recipe)` returns problems that would stop the stage (missing data, bad paths), for
    `mint-distill validate`; `input_files(recipe)` lists files whose content the outputs depend on.

    `version` is part of the stage's config hash: bump it when a code change alters outputs.
    `config_excluded` names keys inside `config_keys` that the stage does not depend on (a later
    stage applies them), so that changing them leaves the stage fresh.
    `config_unused(recipe_dump)` names keys inside `config_keys` that the recipe's own settings
    leave unused (LoRA settings of a fully fine-tuned student): they are left out of the config
    as excluded keys are, so that such keys, added with defaults, keep the fingerprints of the
    recipes that do not use them.
    `reports` names files of the stage folder that only describe the run (counts, tables) and no
    later stage reads: they are left out of the output hash, so that a change they alone show
    (a run that excludes other items but writes the same data) leaves later stages fresh.
    `scratch` names folders of the stage folder that only serve resuming it (training
    checkpoints): they are removed once the manifest is written, so that a run killed before
    that resumes from them.
    """

    name: str
    run: Callable[[StageContext], dict[str, Any]]
    summary: str
    config_keys: tuple[str, ...]
    config_excluded: tuple[str, ...] = ()
    config_unused: Callable[[dict], tuple[str, ...]] = field(default=_nothing_unused)
    reports: tuple[str, ...] = ()
    scratch: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    input_files: Callable[[Recipe], list[Path]] = field(default=_no_files)
    enabled: Callable[[Recipe], bool] = field(default=_always)
    check: Callable[[Recipe], list[str]] = field(default=_no_problems)
    version: int = 1

    def config(self, recipe_dump: dict) -> dict[str, Any]:
        """The recipe values this stage depends on: its keys, less the excluded and unused ones."""
        return select_config(recipe_dump, self.config_keys, (*self.config_excluded, *self.config_unused(recipe_dump)))

    def reads(self, key: str) -> bool:
        """Whether the stage depends on the dotted recipe key, e.g. `evaluation.rankers.0.model`."""

        def within(prefix: str) -> bool:
            return key == prefix or key.startswith(f"{prefix}.")

        return any(map(within, self.config_keys)) and not any(map(within, self.config_excluded))


class StageRegistry:
    def __init__(self, modules: tuple[str, ...] = ()):
        self._stages: dict[str, Stage] = {}
        self._modules = modules
        self._loaded = False

    def register(self, name: str, **options: Any) -> Callable[[Callable], Callable]:
        """Decorator: register `function(ctx) -> dict` as stage `name` (options: see `Stage`)."""

        def decorate(function: Callable) -> Callable:
            if name in self._stages and self._stages[name].run is not function:
                raise ValueError(f"stage `{name}` is registered twice")
            self._stages[name] = Stage(name=name, run=function, **options)
            return function

        return decorate

    def ordered(self) -> list[Stage]:
        """Every registered stage, each after the stages it reads."""
        self._load_modules()
        ordered: list[Stage] = []
        placed: set[str] = set()

        def place(stage: Stage, chain: tuple[str, ...]) -> None:
            if stage.name in placed:
                return
            if stage.name in chain:
                cycle = " -> ".join((*chain, stage.name))
                raise ValueError(f"stages read each other in a cycle: {cycle}")
            for upstream in stage.after:
                if upstream not in self._stages:
                    raise ValueError(
                        f"stage `{stage.name}` reads `{upstream}`, which is not registered"
                    )
                place(self._stages[upstream], (*chain, stage.name))
            placed.add(stage.name)
            ordered.append(stage)

        # Ties go by module (this package's in BUILTIN_STAGE_MODULES order, then plugins), not by
        # which module a process happened to import first.
        def module_rank(stage: Stage) -> int:
            module = stage.run.__module__
            return self._modules.index(module) if module in self._modules else len(self._modules)

        for stage in sorted(self._stages.values(), key=module_rank):
            place(stage, ())
        return ordered

    def _load_modules(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._modules:
            importlib.import_module(module)
        if self is REGISTRY:
            for entry in entry_points(group="mint_distill.stages"):
                entry.load()


REGISTRY = StageRegistry(BUILTIN_STAGE_MODULES)
register_stage = REGISTRY.register


def stage_problems(recipe: Recipe, stages: list[Stage]) -> list[str]:
    """What would stop each of `stages` (its `check`), each problem prefixed with the stage's name."""
    return [f"stage {stage.name}: {problem}" for stage in stages for problem in stage.check(recipe)]


def all_stages() -> list[Stage]:
    return REGISTRY.ordered()

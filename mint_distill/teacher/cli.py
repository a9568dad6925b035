"""`mint-distill tune-teacher`, `generate` and `teacher-report`: thin wrappers over the stages."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..recipe import Recipe

_RECIPE = click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
_OVERRIDES = click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
_FORCE = click.option(
    "--force", is_flag=True, help="Rerun the stage even if its outputs are fresh."
)


def _load(recipe: Path, overrides: tuple[str, ...]) -> Recipe:
    from ..recipe import load_recipe

    return load_recipe(recipe, overrides)


def _run(recipe: Recipe, stage: str, force: bool) -> Path | None:
    """Run `stage` (and the stages before it); the run folder, None on non-main processes."""
    from ..console import console, is_quiet
    from .distributed import run_stage

    result = run_stage(recipe, stage, force=force, quiet=is_quiet())
    if result is None:
        return None
    state = "ran" if stage in result.ran else "reused from another run" if stage in result.reused else "was fresh; skipped"
    console.print(f"{stage} {state}; outputs in {result.run_root / stage}", highlight=False, markup=False)
    return result.run_root


@click.command("tune-teacher")
@_RECIPE
@_OVERRIDES
@_FORCE
def tune_teacher(recipe: Path, overrides: tuple[str, ...], force: bool) -> None:
    """LoRA-tune the teacher LLM on the recipe's seed pairs (runs `data` first if needed; under
    `accelerate launch`, the stages before it must have finished).

    Writes a PEFT adapter folder with a card to runs/<name>/tune-teacher/adapter and resumes
    from its last checkpoint if interrupted.

    \b
    Examples:
      mint-distill tune-teacher recipes/pointrec.yaml
      mint-distill tune-teacher recipes/pointrec.yaml teacher.tuning.lora.r=8 teacher.tuning.epochs=1
      mint-distill tune-teacher recipes/pointrec.yaml teacher.tuning.qlora=true
    """
    _run(_load(recipe, overrides), "tune-teacher", force)


@click.command("generate")
@_RECIPE
@_OVERRIDES
@_FORCE
def generate(recipe: Path, overrides: tuple[str, ...], force: bool) -> None:
    """Write synthetic narrative requests for the recipe's users with the (tuned) teacher.

    Output: runs/<name>/generate/requests.jsonl, rejected.jsonl and summary.json (the teacher
    report is a stage of its own: `mint-distill teacher-report`). Killing it and running it again finishes the remaining users. Under
    `accelerate launch` every process generates its share of the users. With
    teacher.kind=template no model is loaded: each request is teacher.template.pattern filled
    with the request prefix and sentences of the history's items. teacher.catalog_kind=template
    keeps the LLM for users and writes catalog pseudo-histories' requests with the pattern.

    \b
    Examples:
      mint-distill generate recipes/pointrec.yaml
      mint-distill generate recipes/pointrec.yaml teacher.generation.requests_per_user=2
      mint-distill generate recipes/pointrec.yaml teacher.kind=template
      mint-distill generate recipes/pointrec.yaml teacher.catalog_kind=template
      accelerate launch --num_processes 2 "$(command -v mint-distill)" generate recipes/pointrec.yaml
    """
    _run(_load(recipe, overrides), "generate", force)


@click.command("teacher-report")
@_RECIPE
@_OVERRIDES
@_FORCE
def teacher_report(recipe: Path, overrides: tuple[str, ...], force: bool) -> None:
    """Sample the untuned and the tuned teacher on the dev seeds and the first users, and print
    how their requests, the seeds' and generate's compare (round-trip retrievability, diversity).

    Runs the stages before it if needed. Writes runs/<name>/teacher-report/teacher_report.md,
    report_samples.jsonl and summary.json; changing a teacher.report key reruns only this stage.

    \b
    Examples:
      mint-distill teacher-report recipes/pointrec.yaml
      mint-distill teacher-report recipes/pointrec.yaml teacher.report.users=64
    """
    from ..console import stdout
    from ..errors import MintError
    from .report import WHEN_WRITTEN, format_table
    from .report import teacher_report as stored_report
    from .report_stage import report_enabled

    loaded = _load(recipe, overrides)
    if not report_enabled(loaded):
        raise MintError(f"{recipe}: no teacher report to write: {WHEN_WRITTEN}")
    run_root = _run(loaded, "teacher-report", force)
    if run_root is not None:
        stdout.print(format_table(stored_report(run_root)), markup=False, highlight=False)

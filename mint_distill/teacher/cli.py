"""`mint-distill tune-teacher`, `generate` and `teacher-report`: thin wrappers over the stages."""

from __future__ import annotations

from pathlib import Path

import click

_RECIPE = click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
_OVERRIDES = click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
_FORCE = click.option(
    "--force", is_flag=True, help="Rerun the stage even if its outputs are fresh."
)


def _run(recipe: Path, overrides: tuple[str, ...], stage: str, force: bool) -> None:
    from ..console import console, is_quiet
    from ..recipe import load_recipe
    from .distributed import run_stage

    loaded = load_recipe(recipe, overrides)
    result = run_stage(loaded, stage, force=force, quiet=is_quiet())
    if result is None:
        return
    state = "ran" if stage in result.ran else "was fresh; skipped"
    console.print(f"{stage} {state}; outputs in {result.run_root / stage}", highlight=False)


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
    _run(recipe, overrides, "tune-teacher", force)


@click.command("generate")
@_RECIPE
@_OVERRIDES
@_FORCE
def generate(recipe: Path, overrides: tuple[str, ...], force: bool) -> None:
    """Write synthetic narrative requests for the recipe's users with the (tuned) teacher.

    Output: runs/<name>/generate/requests.jsonl, rejected.jsonl, summary.json and
    teacher_report.md. Killing it and running it again finishes the remaining users. Under
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
    _run(recipe, overrides, "generate", force)


@click.command("teacher-report")
@_RECIPE
@_OVERRIDES
def teacher_report(recipe: Path, overrides: tuple[str, ...]) -> None:
    """Print the teacher table of a finished generate stage (round-trip retrievability, diversity).

    \b
    Example:
      mint-distill teacher-report recipes/pointrec.yaml
    """
    from ..console import stdout
    from ..pipeline.runner import run_root_of
    from ..recipe import load_recipe
    from .report import format_table
    from .report import teacher_report as stored_report

    report = stored_report(run_root_of(load_recipe(recipe, overrides)))
    stdout.print(format_table(report), markup=False, highlight=False)

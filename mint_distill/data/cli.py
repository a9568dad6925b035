"""`mint-distill data ...`: inspect and fetch a recipe's data (a thin layer over `mint_distill.data`)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

RECIPE = click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
OVERRIDES = click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")


@click.group()
def data() -> None:
    """Training review histories and the Pointrec test collection."""


@data.command("stats")
@RECIPE
@OVERRIDES
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write every count as JSON to this file.",
)
@click.option("--no-test", is_flag=True, help="Skip the test collection coverage table.")
def stats(recipe: Path, overrides: tuple[str, ...], json_path: Path | None, no_test: bool) -> None:
    """Count users, items and reviews, what selection removed and why, catalog histories
    (with data.catalog.enabled), and test coverage.

    Reads the source as the data stage would, without writing a run folder.

    \b
    Examples:
      mint-distill data stats recipes/pointrec.yaml
      mint-distill data stats recipes/pointrec.yaml data.selection.min_liked=10
      mint-distill data stats recipes/pointrec.yaml data.catalog.enabled=true --no-test
      mint-distill data stats recipes/pointrec.yaml --no-test --json stats.json
    """
    from ..console import stdout
    from ..io import write_json_atomic
    from ..recipe import load_recipe
    from .build import prepare_training_data
    from .paths import data_dir
    from .pointrec import load_test_collection
    from .report import catalog_table, coverage_table, selection_tables, source_table

    loaded = load_recipe(recipe, overrides)
    prepared = prepare_training_data(loaded.data)
    for renderable in (source_table(prepared.stats), *selection_tables(prepared.stats)):
        stdout.print(renderable)
    if "catalog" in prepared.stats:
        stdout.print(catalog_table(prepared.stats))
    everything = {"training": prepared.stats}
    if not no_test:
        collection = load_test_collection(loaded.data.test, data_dir(loaded.data.data_dir))
        coverage = collection.coverage()
        stdout.print(coverage_table(coverage, loaded.data.test))
        everything["test"] = {
            "name": collection.name,
            "pool": loaded.data.test.pool,
            "coverage": coverage,
        }
    if json_path is not None:
        write_json_atomic(json_path, everything)


@data.command("fetch")
@RECIPE
@OVERRIDES
def fetch(recipe: Path, overrides: tuple[str, ...]) -> None:
    """Download the recipe's training source and test collection if they are missing.

    Only datasets with a known public origin can be fetched (the Yelp Boston subset and
    Pointrec); each file is checked against its pinned sha256.

    \b
    Examples:
      mint-distill data fetch recipes/pointrec.yaml
      MINT_DISTILL_DATA_DIR=~/data mint-distill data fetch recipes/pointrec.yaml
    """
    from ..console import console
    from ..errors import DataError
    from ..recipe import load_recipe
    from .download import POINTREC, ensure_dataset
    from .paths import data_dir, under
    from .sources import source_path

    loaded = load_recipe(recipe, overrides)
    base = data_dir(loaded.data.data_dir)
    path = source_path(loaded.data.source, base)
    if not path.exists():
        raise DataError(
            f"{path}: not found, and there is no known public origin for data.source.path `{loaded.data.source.path}`"
        )
    console.print(f"[green]ok[/] data.source: {escape(str(path))}", highlight=False)
    folder = ensure_dataset(
        POINTREC,
        under(base, loaded.data.test.path),
        download=loaded.data.test.download,
        key="data.test",
    )
    console.print(f"[green]ok[/] data.test: {escape(str(folder))}", highlight=False)

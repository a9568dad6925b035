"""`mint-distill filter`: run the filter stage of a recipe on its own."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("filter")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--force", is_flag=True, help="Rerun the stage even if its outputs are fresh (scores stay cached).")
def filter(recipe: Path, overrides: tuple[str, ...], force: bool) -> None:
    """Score each synthetic request's items and keep the ones that best explain it.

    Reads generate/requests.jsonl and data/items.jsonl in the recipe's run folder and writes
    filter/pairs.jsonl and filter/summary.json. The scores come from an LM's query likelihood
    (method likelihood, the paper's) or a bi-encoder's similarity (method encoder). Scores and
    vectors are cached in the run folder's .cache/, so changing only the keep rule
    (keep_fraction, min_keep, mint_compat, score) rescores nothing. Under `accelerate launch`
    (or torchrun) every process scores a share of the likelihood pairs and the output is the
    same as a single process's.

    \b
    Examples:
      mint-distill filter recipes/pointrec.yaml
      mint-distill filter recipes/pointrec.yaml filter.keep_fraction=0.3
      mint-distill filter recipes/pointrec.yaml filter.method=random
      mint-distill filter recipes/pointrec.yaml filter.method=encoder filter.model=embedded:all-mpnet-base-v2
      mint-distill filter recipes/pointrec.yaml filter.quantization=8bit
      accelerate launch --num_processes 2 -m mint_distill filter recipes/pointrec.yaml
      accelerate launch --multi_gpu --num_processes 2 -m mint_distill filter recipes/pointrec.yaml  # 2 CPU processes
    """
    from ..console import console, is_quiet
    from ..io import read_json
    from ..recipe import load_recipe
    from .stage import FILTER, run_filter_stage

    result = run_filter_stage(load_recipe(recipe, overrides), force=force, quiet=is_quiet())
    if result is None:
        return
    folder = result.run_root / FILTER
    if FILTER in result.skipped:
        console.print(f"filter is fresh, nothing to do; outputs in {folder} (--force reruns it)", highlight=False, markup=False)
        return
    summary = read_json(folder / "summary.json")
    console.print(
        f"kept {summary['pairs_kept']} of {summary['pairs_in']} pairs from {summary['requests']} requests "
        f"(method {summary['method']}); outputs in {folder}",
        highlight=False,
        markup=False,
    )

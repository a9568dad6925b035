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
    metrics.png and runs/<system>.trec, and prints the table. Students (average-biencoder/model,
    train-crossencoder/model) are included as soon as their stages have finished.

    \b
    Examples:
      mint-distill evaluate recipes/pointrec.yaml
      mint-distill evaluate recipes/pointrec.yaml data.test.pool=city
      mint-distill evaluate recipes/pointrec.yaml evaluation.significance=ttest --force
    """
    from ..console import console, is_quiet
    from ..pipeline import run_pipeline
    from ..recipe import load_recipe
    from .report import print_report_of_run
    from .stage import EVALUATE_STAGE

    loaded = load_recipe(recipe, overrides)
    result = run_pipeline(loaded, stages=[EVALUATE_STAGE], force=("evaluate",) if force else (), quiet=is_quiet())
    if "evaluate" in result.skipped:
        console.print("the evaluation is up to date (use --force to run it again)")
    print_report_of_run(result.run_root)


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--variant", "variants", multiple=True, help="Run only this variant of `ablations` (repeatable).")
@click.option(
    "--report-only",
    is_flag=True,
    help="Write the report from the runs already in the run folder; run no stage (e.g. after adding dev requests).",
)
def ablate(recipe: Path, overrides: tuple[str, ...], variants: tuple[str, ...], report_only: bool) -> None:
    """Run the recipe's ablations and compare their bi-encoders with the full run.

    Runs the recipe itself first (fresh stages are skipped), then each variant listed under the
    recipe's `ablations` key as a run of its own, <run_dir>/<name>-<variant>, copying every stage
    the variant leaves unchanged from the main run. Writes <run_dir>/<name>/ablations/report.md
    and ablations.json: each variant's biencoder-mint against the reference and the full run, and
    every bi-encoder's dev loss and MRR@10 on the main run's synthetic dev split and, with
    data.catalog.dev_requests, its NDCG on those written requests: the figures to choose a
    variant by.

    \b
    Examples:
      mint-distill ablate recipes/pointrec.yaml
      mint-distill ablate recipes/pointrec.yaml --variant filter-none --variant filter-random
      mint-distill ablate recipes/pointrec.yaml --report-only
    """
    from ..console import console, is_quiet
    from ..errors import RecipeError
    from ..pipeline import run_pipeline
    from ..pipeline.runner import run_root_of
    from ..recipe import load_recipe
    from .ablations import (
        REPORT_FOLDER,
        compare_variants,
        finished_run,
        score_on_dev_requests,
        score_on_main_dev,
        variant_recipe,
        write_ablation_report,
    )

    loaded = load_recipe(recipe, overrides)
    unknown = sorted(set(variants) - set(loaded.ablations))
    if unknown:
        raise RecipeError(
            f"{recipe}: no ablation named {', '.join(unknown)}; `ablations` lists: {', '.join(loaded.ablations) or 'none'}"
        )
    chosen = list(variants) or list(loaded.ablations)
    if not chosen:
        raise RecipeError(f"{recipe}: the recipe lists no `ablations`")
    if report_only:
        main_root = finished_run(run_root_of(loaded))
        roots = {variant: finished_run(run_root_of(variant_recipe(loaded, variant))) for variant in chosen}
    else:
        main_root = run_pipeline(loaded, quiet=is_quiet()).run_root
        roots = {}
        for variant in chosen:
            console.print(f"ablation {variant}: {', '.join(loaded.ablations[variant])}", highlight=False)
            roots[variant] = run_pipeline(variant_recipe(loaded, variant), quiet=is_quiet()).run_root
    dev = score_on_main_dev(main_root, roots, loaded)
    dev_requests = score_on_dev_requests(main_root, roots, loaded)
    table = compare_variants(main_root, roots, loaded, dev, dev_requests)
    report = write_ablation_report(table, main_root / REPORT_FOLDER)
    console.print(report.read_text(encoding="utf-8"), markup=False, highlight=False)
    console.print(f"report: {report}", highlight=False)

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
    metrics.png, runs/<system>.trec and qrels.txt (the judgements evaluated: trec_eval on it and a
    run gives the report's numbers), and prints the table. Students (average-biencoder/model,
    train-crossencoder/model) are included as soon as their stages have finished.

    \b
    Examples:
      mint-distill evaluate recipes/pointrec.yaml
      mint-distill evaluate recipes/pointrec.yaml data.test.pool=city
      mint-distill evaluate recipes/pointrec.yaml evaluation.significance=ttest --force
    """
    from ..console import console, is_quiet
    from ..pipeline import run_pipeline
    from ..pipeline.runner import refuse_unfinished_upstream
    from ..recipe import load_recipe
    from .report import print_report_of_run
    from .stage import EVALUATE_STAGE

    loaded = load_recipe(recipe, overrides)
    if loaded.evaluation.students:  # the stages it reads are the students'
        refuse_unfinished_upstream(loaded, [EVALUATE_STAGE], unfinished_ok=True)
    result = run_pipeline(loaded, stages=[EVALUATE_STAGE], force=("evaluate",) if force else (), quiet=is_quiet())
    if "evaluate" in result.skipped:
        console.print("the evaluation is up to date (use --force to run it again)")
    print_report_of_run(result.run_root)


def _seeds(context, parameter, value: str | None) -> tuple[int, ...]:
    if value is None:
        return ()
    try:
        seeds = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give integers separated by commas, e.g. 13,1,2") from None
    if len(set(seeds)) != len(seeds):
        raise click.BadParameter(f"{value!r}: a seed is listed twice")
    return seeds


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--variant", "variants", multiple=True, help="Run only this variant of `ablations` (repeatable).")
@click.option(
    "--seeds",
    callback=_seeds,
    metavar="N,N,...",
    help="Train every arm (the full run and each variant) with these bi-encoder training seeds, the "
    "recipe's own among them, and judge each arm by its students' per-request means (default: the "
    "recipe's seed alone).",
)
@click.option(
    "--report-only",
    is_flag=True,
    help="Write the report from the runs already in the run folder; run no stage (e.g. after adding dev requests).",
)
def ablate(
    recipe: Path,
    overrides: tuple[str, ...],
    variants: tuple[str, ...],
    seeds: tuple[int, ...],
    report_only: bool,
) -> None:
    """Run the recipe's ablations and compare their bi-encoders with the full run.

    Runs the recipe itself first (fresh stages are skipped), then each variant listed under the
    recipe's `ablations` key as a run of its own, <run_dir>/<name>-<variant>, copying every stage
    the variant leaves unchanged from the main run. Writes <run_dir>/<name>/ablations/report.md
    and ablations.json: each variant's biencoder-mint against the reference and the full run, and
    every bi-encoder's dev loss and MRR@10 on the main run's synthetic dev split and, with
    data.catalog.dev_requests, its NDCG on those written requests: the figures to choose a
    variant by. With --seeds, each arm is trained with each seed, the recipe's own seed in the runs
    above and any other in <run_dir>/<name>[-<variant>]-seed<N> (bi-encoder only, reusing every
    stage before train-biencoder), and every figure is the mean over an arm's students.

    \b
    Examples:
      mint-distill ablate recipes/pointrec.yaml
      mint-distill ablate recipes/pointrec.yaml --variant filter-none --variant filter-random
      mint-distill ablate recipes/pointrec.yaml --variant catalog-more-llm-mpnet --seeds 13,1,2
      mint-distill ablate recipes/pointrec.yaml --report-only
    """
    from ..console import console, is_quiet
    from ..errors import RecipeError
    from ..pipeline import run_pipeline
    from ..pipeline.runner import run_root_of
    from ..recipe import load_recipe
    from .ablations import (
        FULL,
        REPORT_FOLDER,
        compare_variants,
        finished_run,
        score_on_dev_requests,
        score_on_main_dev,
        training_seed,
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
    own = training_seed(loaded)
    if seeds and own not in seeds:
        raise click.BadParameter(
            f"list the recipe's own training seed {own} too: its run is the main run, whose dev split "
            "and evaluation the arms are compared on",
            param_hint="--seeds",
        )
    seeds = (own, *[seed for seed in seeds if seed != own])
    arm_recipes = {arm: {seed: variant_recipe(loaded, arm, seed) for seed in seeds} for arm in [FULL, *chosen]}
    if report_only:
        arms = {
            arm: {seed: finished_run(run_root_of(r)) for seed, r in recipes.items()}
            for arm, recipes in arm_recipes.items()
        }
    else:
        arms = {}
        for arm, recipes in arm_recipes.items():
            if arm != FULL:
                console.print(f"ablation {arm}: {', '.join(loaded.ablations[arm])}", highlight=False, markup=False)
            arms[arm] = {}
            for seed, arm_recipe in recipes.items():
                if len(seeds) > 1:
                    console.print(f"{arm}, training seed {seed}", highlight=False)
                arms[arm][seed] = run_pipeline(arm_recipe, quiet=is_quiet()).run_root
    dev = score_on_main_dev(arms, loaded)
    dev_requests = score_on_dev_requests(arms, loaded)
    table = compare_variants(arms, loaded, dev, dev_requests)
    report = write_ablation_report(table, run_root_of(loaded) / REPORT_FOLDER)
    console.print(report.read_text(encoding="utf-8"), markup=False, highlight=False)
    console.print(f"report: {report}", highlight=False, markup=False)

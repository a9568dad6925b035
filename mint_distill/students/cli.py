"""`mint-distill train`: train the bi-encoder and cross-encoder students of a recipe."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("train")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option(
    "--only",
    type=click.Choice(["biencoder", "crossencoder"]),
    help="Train one student (crossencoder: mine negatives with the trained bi-encoder, then train).",
)
@click.option(
    "--force", is_flag=True, help="Retrain even if the outputs are fresh (discards checkpoints)."
)
def train(recipe: Path, overrides: tuple[str, ...], only: str | None, force: bool) -> None:
    """Train the students on the filtered pairs of a recipe's run folder.

    Runs train-biencoder, average-biencoder, mine-negatives and train-crossencoder, skipping
    fresh ones; needs the data, generate and filter stages finished (`mint-distill run RECIPE
    --until filter`). An interrupted training resumes from its last checkpoint when run again.
    Under `accelerate launch --multi_gpu --num_processes N` every process trains (in-batch
    negatives are gathered across processes) and only the main process writes; on a machine
    without GPUs the processes train on the CPU over gloo. (`accelerate launch --cpu
    --num_processes N` starts one process unless accelerate is configured to use mpirun.)

    \b
    Examples:
      mint-distill train recipes/pointrec.yaml
      mint-distill train recipes/pointrec.yaml --only biencoder students.biencoder.finetune=lora
      mint-distill train recipes/pointrec.yaml students.biencoder.training.epochs=2 --force
      accelerate launch --multi_gpu --num_processes 2 "$(which mint-distill)" train recipes/pointrec.yaml
    """
    from ..console import console, is_quiet
    from ..recipe import load_recipe
    from .run import train_students

    result = train_students(
        load_recipe(recipe, overrides), only=only, force=force, quiet=is_quiet()
    )
    if result is None:
        return
    for name in result.ran:
        console.print(
            f"[green]done[/] {name}: {_describe(result.summaries.get(name, {}))}", highlight=False
        )
    if result.skipped:
        console.print(
            f"fresh, skipped: {', '.join(result.skipped)} (--force retrains)", highlight=False
        )
    console.print(f"outputs in {result.run_root}", highlight=False, markup=False)


def _describe(summary: dict) -> str:
    if "window_start" in summary:
        return (
            f"{summary['groups']} pairs, negatives from bi-encoder ranks "
            f"{summary['window_start'] + 1}-{summary['window_end']}"
        )
    text = f"{summary.get('steps')} steps, kept step {summary.get('best_step')}"
    if "dev_mrr@10_first_stage" in summary:
        text += (
            f", dev MRR@10 reranking the bi-encoder's top k {summary.get('dev_mrr@10')} "
            f"(its own order {summary['dev_mrr@10_first_stage']}; fused at weight "
            f"{summary.get('fusion_weight')} {summary.get('dev_fused_mrr@10')})"
        )
    elif "dev_mrr@10" in summary:
        text += f", dev MRR@10 {summary.get('dev_mrr@10_before')} -> {summary['dev_mrr@10']}"
    return text

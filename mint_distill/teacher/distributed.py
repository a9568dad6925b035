"""Run one pipeline stage from the command line, alone or under `accelerate launch`.

With one process this is `run_pipeline(recipe, until=stage)`. With several, the earlier stages
must be finished: a stage that every process must enter (tune-teacher before generate) cannot
be run by the main process alone. Only the main process then drives the pipeline (run-folder
lock, manifest); the others take the same fresh-or-not decision and enter the stage function
themselves, which synchronises with the main process and does its share of the work.
"""

from __future__ import annotations

from ..errors import MintError
from ..pipeline import StageContext, all_stages, run_pipeline, stage_states
from ..pipeline.runner import RunResult, reusable_sibling, run_root_of
from ..recipe import Recipe


def process_state():
    """This process's place in the group (Accelerate's `PartialState`).

    Without a GPU the group is CPU processes talking over gloo, so
    `accelerate launch --multi_gpu --num_processes N` runs N CPU processes (plain `--cpu`
    launches a single one unless accelerate is set up for mpirun).
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def run_stage(
    recipe: Recipe, stage_name: str, *, force: bool = False, quiet: bool = False
) -> RunResult | None:
    """Run the stages up to and including `stage_name`; None on non-main processes."""
    stages = [stage for stage in all_stages() if stage.enabled(recipe)]
    names = [stage.name for stage in stages]
    if stage_name not in names:
        raise MintError(
            f"stage `{stage_name}` is disabled or unknown for this recipe; its stages: {', '.join(names)}"
        )
    forced = (stage_name,) if force else ()
    state = process_state()
    if state.num_processes == 1:
        return run_pipeline(recipe, stages=stages, until=stage_name, force=forced, quiet=quiet)

    position = names.index(stage_name)
    states = stage_states(recipe, stages[: position + 1])
    unfinished = [earlier.stage.name for earlier in states[:-1] if earlier.status != "fresh"]
    if unfinished:
        raise MintError(
            f"under accelerate launch, `{stage_name}` runs only after the stages before it; "
            f"{', '.join(unfinished)} {'is' if len(unfinished) == 1 else 'are'} not finished: run "
            f"`mint-distill run RECIPE --until {unfinished[-1]}` first"
        )
    target = stages[position]
    run_root = run_root_of(recipe)
    # The main process copies a sibling run's output instead of entering the stage; the others
    # must not enter it either, or their barrier inside it meets the main process's exit barrier.
    skipped = not force and (
        states[-1].status == "fresh"
        or (recipe.reuse_stages and reusable_sibling(target, states[-1], run_root) is not None)
    )
    state.wait_for_everyone()  # every process has read the states before the main process changes them
    if state.is_main_process:
        return run_pipeline(recipe, stages=stages, until=stage_name, force=forced, quiet=quiet)
    if not skipped:
        target.run(
            StageContext(recipe, target, run_root / stage_name, run_root, resuming=True, quiet=True)
        )
    return None

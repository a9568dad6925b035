"""Run one pipeline stage from the command line, alone or under `accelerate launch`.

With one process this is `run_pipeline(recipe, until=stage)`. With several, only the main
process drives the pipeline (run-folder lock, upstream stages, manifest); the others wait for
it, take the same fresh-or-not decision, and then enter the stage function themselves, which
synchronises with the main process and does its share of the work.
"""

from __future__ import annotations

from ..errors import MintError
from ..pipeline import StageContext, all_stages, run_pipeline, stage_states
from ..pipeline.runner import RunResult, run_root_of
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
    if state.is_main_process and position > 0:
        run_pipeline(recipe, stages=stages, until=names[position - 1], quiet=quiet)
    state.wait_for_everyone()
    target = stages[position]
    fresh = stage_states(recipe, [target])[0].status == "fresh" and not force
    state.wait_for_everyone()
    if state.is_main_process:
        return run_pipeline(recipe, stages=stages, until=stage_name, force=forced, quiet=quiet)
    if not fresh:
        run_root = run_root_of(recipe)
        target.run(
            StageContext(recipe, target, run_root / stage_name, run_root, resuming=True, quiet=True)
        )
    return None

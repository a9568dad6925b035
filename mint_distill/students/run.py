"""Run the student stages of a recipe, on one process or under `accelerate launch`."""

from __future__ import annotations

import logging
from typing import Literal

from ..errors import MintError
from ..pipeline import RunResult, run_pipeline
from ..pipeline.runner import refuse_unfinished_upstream
from ..recipe import Recipe
from .job import follow, release_followers
from .stage import (
    AVERAGE_BIENCODER,
    MINE_NEGATIVES,
    STUDENT_STAGES,
    TRAIN_BIENCODER,
    TRAIN_CROSSENCODER,
)

STAGES_OF = {
    None: (TRAIN_BIENCODER, AVERAGE_BIENCODER, MINE_NEGATIVES, TRAIN_CROSSENCODER),
    "biencoder": (TRAIN_BIENCODER, AVERAGE_BIENCODER),
    "crossencoder": (MINE_NEGATIVES, TRAIN_CROSSENCODER),
}


def train_students(
    recipe: Recipe,
    *,
    only: Literal["biencoder", "crossencoder"] | None = None,
    force: bool = False,
    quiet: bool = False,
) -> RunResult | None:
    """Train the recipe's students from its finished `data`, `generate` and `filter` stages.

    Fresh student stages are skipped unless `force`; an interrupted one resumes from its last
    checkpoint. Under `accelerate launch` the main process runs the stages and the others train
    alongside it; the main process gets the run result, the others None.
    """
    from accelerate import PartialState

    if not PartialState().is_main_process:
        logging.getLogger("mint_distill").setLevel(
            logging.WARNING
        )  # the main process reports progress
        follow()
        return None
    try:
        stages = [
            STUDENT_STAGES[name] for name in STAGES_OF[only] if STUDENT_STAGES[name].enabled(recipe)
        ]
        if not stages:
            raise MintError(
                f"the recipe disables the {only or 'students'} (students.*.enabled is false)"
            )
        refuse_unfinished_upstream(recipe, stages)
        names = tuple(stage.name for stage in stages)
        return run_pipeline(recipe, stages=stages, force=names if force else (), quiet=quiet)
    finally:
        release_followers()

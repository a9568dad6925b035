"""Stages, run folders, manifests, skip-if-fresh and resume."""

from .manifest import RUN_CACHE
from .registry import Stage, all_stages, register_stage
from .runner import RunResult, StageContext, run_pipeline, stage_states

__all__ = [
    "RUN_CACHE",
    "RunResult",
    "Stage",
    "StageContext",
    "all_stages",
    "register_stage",
    "run_pipeline",
    "stage_states",
]

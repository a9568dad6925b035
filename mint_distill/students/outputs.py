"""Turn a finished training run into the stage's outputs: `model/`, its card, `loss.png`, a summary."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..errors import MintError
from .card import write_model_card
from .data import MODEL_DIR
from .loop import LoopSettings, TrainingResult
from .plots import plot_training_log

LOSS_PNG = "loss.png"


def publish_student(
    result: TrainingResult, out_dir: Path, info: dict[str, Any], title: str
) -> None:
    """Move the kept checkpoint to `out_dir/model`, write its card and the loss curve (main process)."""
    model_dir = out_dir / MODEL_DIR
    if result.best_dir.is_dir():
        shutil.rmtree(model_dir, ignore_errors=True)
        result.best_dir.rename(model_dir)
    elif not model_dir.is_dir():
        raise MintError(
            f"{out_dir}: training finished but neither {result.best_dir} nor {model_dir} exists; "
            "rerun the stage with --force"
        )
    write_model_card(model_dir, info)
    plot_training_log(result.log_path, out_dir / LOSS_PNG, title=title)


def training_record(result: TrainingResult, settings: LoopSettings) -> dict[str, Any]:
    """The `training` part of a student's info: settings, steps, kept step."""
    state = result.state
    return {
        "settings": {key: value for key, value in vars(settings).items()},
        "steps": state.step,
        "total_steps": state.total_steps,
        "examples_seen": state.examples_seen,
        "best_step": state.best_step,
        "stopped_early": state.stopped_early,
    }


def summary_of(result: TrainingResult, counts: dict[str, int]) -> dict[str, Any]:
    """Counts and figures for the stage manifest and the report."""
    state = result.state
    summary: dict[str, Any] = dict(counts)
    summary.update(
        steps=state.step,
        best_step=state.best_step,
        stopped_early=state.stopped_early,
        examples_seen=state.examples_seen,
        train_seconds=round(result.seconds, 1),
        processes=result.processes,
    )
    if result.resumed_from is not None:
        summary["resumed_from_step"] = result.resumed_from
    for name, value in (state.best_metrics or {}).items():
        summary[f"dev_{name}"] = round(value, 4)
    for name, value in (state.start_metrics or {}).items():
        summary[f"dev_{name}_before"] = round(value, 4)
    return summary

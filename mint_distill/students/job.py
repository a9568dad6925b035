"""Training jobs, so every process of an `accelerate launch` runs the same training.

A job is a JSON-able dict: `{"kind": "biencoder" | "crossencoder", "arguments": {...}}` with
the keyword arguments of `train_biencoder` / `train_crossencoder` (spec as a dict, file paths
as strings). The pipeline runs in the main process only; when it reaches a training stage it
`dispatch`es the job, which other processes, waiting in `follow`, receive and run alongside.

Run one job directly, on one process or several:

    python -m mint_distill.students.job job.json
    accelerate launch --multi_gpu --num_processes 2 -m mint_distill.students.job job.json

(On a machine without GPUs the second line trains two CPU processes over gloo.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..errors import MintError

_STOP = None


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one training job in this process (every process of a launch calls it)."""
    from .biencoder import train_biencoder
    from .crossencoder import train_crossencoder

    trainers = {"biencoder": train_biencoder, "crossencoder": train_crossencoder}
    if job.get("kind") not in trainers:
        raise MintError(
            f"unknown training job kind {job.get('kind')!r}; expected one of {', '.join(trainers)}"
        )
    return trainers[job["kind"]](**job["arguments"])


def _world():
    from accelerate import PartialState

    return PartialState()


def dispatch(job: dict[str, Any]) -> dict[str, Any]:
    """Run `job` here and, under a multi-process launch, on every waiting follower too."""
    state = _world()
    if state.num_processes > 1:
        _broadcast(job)
    return run_job(job)


def follow() -> None:
    """On a non-main process: run each job the main process dispatches until it releases us."""
    while (job := _broadcast(None)) is not _STOP:
        run_job(job)


def release_followers() -> None:
    """On the main process: tell followers there are no more jobs."""
    if _world().num_processes > 1:
        _broadcast(_STOP)


def _broadcast(job: dict[str, Any] | None) -> dict[str, Any] | None:
    from accelerate.utils import broadcast_object_list

    message = [job]
    broadcast_object_list(message, from_process=0)
    return message[0]


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1:
        print("usage: python -m mint_distill.students.job JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(arguments[0]).read_text(encoding="utf-8"))
    try:
        summary = run_job(job)
    except MintError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if _world().is_main_process:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

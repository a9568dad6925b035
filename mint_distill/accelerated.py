"""One Accelerator per training job, even when several jobs share a process."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import Any

from .errors import MintError

PROCESS_GROUP_TIMEOUT = "MINT_DISTILL_PROCESS_GROUP_TIMEOUT_MINUTES"
DEFAULT_PROCESS_GROUP_TIMEOUT_MINUTES = 24 * 60


def fresh_accelerator(**options: Any):
    """An `Accelerator` with exactly these options, whatever an earlier job in this process set.

    `mint-distill run` tunes the teacher and then trains the students in one process, each at
    its own mixed precision. Accelerate keeps its settings in process-wide state and refuses a
    second, different configuration, so that state is cleared first. The distributed part
    (`PartialState`: process group, ranks) is kept: under `accelerate launch` it is set up once.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    return Accelerator(**options)


def join_process_group() -> None:
    """Under a multi-process launch, set up Accelerate's process group before any stage does.

    The other processes wait in a collective while the main process works alone (averaging the
    student, mining negatives over the whole catalog, checking stages), and a collective gives up
    after the group's timeout: torch's default of 30 minutes, which mining a large catalog on a CPU
    can exceed. The timeout is $MINT_DISTILL_PROCESS_GROUP_TIMEOUT_MINUTES, by default a day (the
    same knob as transformers' `ddp_timeout`); a process that dies still ends the others at once.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch
    from accelerate import PartialState

    PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(minutes=_timeout_minutes()))


def _timeout_minutes() -> float:
    text = os.environ.get(PROCESS_GROUP_TIMEOUT, "")
    if not text:
        return DEFAULT_PROCESS_GROUP_TIMEOUT_MINUTES
    try:
        minutes = float(text)
    except ValueError:
        minutes = 0.0
    if not minutes > 0:
        raise MintError(f"${PROCESS_GROUP_TIMEOUT} must be a number of minutes above 0, not {text!r}")
    return minutes


def leave_process_group(*, wait_for_others: bool) -> None:
    """Leave the `accelerate launch` process group, if this process joined one, before exit.

    A gloo worker thread drops its last reference to a collective's tensors a moment after
    the collective has returned. If the interpreter is shutting down by then, that thread cannot
    take the GIL and the process aborts ("terminate called without an active exception") with
    its work done. Waiting for every process first gives those threads that moment. After an
    error the others may never arrive, so `wait_for_others` is for a successful exit only.
    """
    distributed = sys.modules.get("torch.distributed")
    if distributed is None or not distributed.is_available() or not distributed.is_initialized():
        return
    if wait_for_others:
        distributed.barrier()
    distributed.destroy_process_group()

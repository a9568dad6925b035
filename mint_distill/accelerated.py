"""One Accelerator per training job, even when several jobs share a process."""

from __future__ import annotations

import sys
from typing import Any


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

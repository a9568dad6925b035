"""One Accelerator per training job, even when several jobs share a process."""

from __future__ import annotations

from typing import Any


def fresh_accelerator(**options: Any):
    """An `Accelerator` with exactly these options, whatever an earlier job in this process set.

    `mint-distill run` tunes the teacher (bf16) and then trains the students (no mixed precision
    on a CPU) in one process. Accelerate keeps its settings in process-wide state and refuses a
    second, different configuration, so that state is cleared first. The distributed part
    (`PartialState`: process group, ranks) is kept: under `accelerate launch` it is set up once.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    return Accelerator(**options)

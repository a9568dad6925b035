"""Several training jobs in one process (as `mint-distill run` does) each get their own settings."""

from __future__ import annotations

import pytest
from accelerate import Accelerator

from mint_distill.accelerated import fresh_accelerator


def test_a_second_job_may_change_mixed_precision_and_accumulation():
    teacher = fresh_accelerator(cpu=True, mixed_precision="bf16", gradient_accumulation_steps=2)
    assert teacher.mixed_precision == "bf16" and teacher.gradient_accumulation_steps == 2
    with pytest.raises(ValueError, match="already been initialized"):
        Accelerator(cpu=True, mixed_precision="no")  # what a plain second Accelerator does
    student = fresh_accelerator(cpu=True, mixed_precision="no")
    assert student.mixed_precision == "no" and student.gradient_accumulation_steps == 1
    assert student.num_processes == 1 and student.is_main_process

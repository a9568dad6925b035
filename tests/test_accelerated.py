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


FOLLOWER_WAITS = """
import time

from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from mint_distill.accelerated import join_process_group

if __name__ == "__main__":
    join_process_group()
    state = PartialState()
    if state.is_main_process:
        time.sleep(12)  # working alone, as when mining negatives, while the other process waits
    message = [state.process_index]
    broadcast_object_list(message, from_process=0)
    print("received", message[0], flush=True)
"""


@pytest.mark.parametrize(("minutes", "times_out"), [("0.05", True), ("2", False)])
def test_the_process_group_timeout_is_the_configured_one(tmp_path, minutes, times_out):
    """torch's default, 30 minutes, would let both runs finish; the configured timeout decides."""
    from conftest import accelerate_on_two_cpu_processes, run_on_cpu

    script = tmp_path / "follower_waits.py"
    script.write_text(FOLLOWER_WAITS)
    command = ["env", f"MINT_DISTILL_PROCESS_GROUP_TIMEOUT_MINUTES={minutes}", *accelerate_on_two_cpu_processes(str(script))]
    finished = run_on_cpu(command, timeout=240)
    if times_out:
        assert finished.returncode != 0 and "received" not in finished.stdout, finished.stdout
        assert "timed out" in finished.stderr.lower(), finished.stderr[-3000:]
    else:
        assert finished.returncode == 0, finished.stderr[-3000:]
        assert finished.stdout.count("received 0") == 2


def test_a_bad_process_group_timeout_is_named(monkeypatch):
    from mint_distill.accelerated import join_process_group
    from mint_distill.errors import MintError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MINT_DISTILL_PROCESS_GROUP_TIMEOUT_MINUTES", "soon")
    with pytest.raises(MintError, match=r"MINT_DISTILL_PROCESS_GROUP_TIMEOUT_MINUTES must be a number of minutes above 0, not 'soon'"):
        join_process_group()

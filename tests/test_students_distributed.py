"""Two CPU processes (gloo) under `accelerate launch` train the bi-encoder like one process does.

`accelerate launch --cpu --num_processes 2` starts a single process unless accelerate is
configured to use mpirun (huggingface/accelerate#2741), so the launch here is
`accelerate launch --multi_gpu --num_processes 2` (torchrun underneath) on the CPU: with no GPU
visible, the training loop asks Accelerate for the CPU, which then uses gloo.

The batch size counts examples over all processes and MNRL gathers every process's embeddings
(with gradient), so two processes with two examples each must see the same in-batch negatives,
losses and updates as one process with four. Without the gather each process would rank its
query against two documents instead of four, and the losses would differ from the first step.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, accelerate_on_two_cpu_processes, two_process_environment
from fixtures.students.toy import save_tiny_encoder, tiny_spec, write_toy_world


def _job(tmp_path: Path, name: str, paths: dict, encoder: Path) -> Path:
    spec = tiny_spec(
        encoder,
        epochs=1,
        batch_size=4,
        gradient_accumulation=2,
        eval_every=2,
        checkpoint_every=2,
        early_stopping_patience=2,
        # Agreement to float32's rounding. `auto` would train in bf16 on a CPU with AVX512-BF16,
        # where each process rounds its half of a gradient to bf16 before gloo sums the halves,
        # and Adam's first step turns near-cancelling elements into differences of 2 x lr.
        mixed_precision="no",
    )
    job = {
        "kind": "biencoder",
        "arguments": {
            "spec": spec,
            **{key: str(paths[key]) for key in ("pairs", "requests", "items")},
            "out_dir": str(tmp_path / name),
            "seed": 0,
        },
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(job))
    return path


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_cpu_processes_gather_negatives_and_train_like_one(tmp_path):
    from safetensors.torch import load_file

    paths = write_toy_world(tmp_path / "world")
    encoder = save_tiny_encoder(tmp_path / "encoder", dropout=0.0, normalize=True)
    env = two_process_environment()
    launch = accelerate_on_two_cpu_processes(
        "-m", "mint_distill.students.job", str(_job(tmp_path, "two", paths, encoder))
    )
    single = [
        sys.executable,
        "-m",
        "mint_distill.students.job",
        str(_job(tmp_path, "one", paths, encoder)),
    ]
    running = [
        subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in (launch, single)
    ]
    outputs = [process.communicate(timeout=400) for process in running]
    for process, (stdout, stderr) in zip(running, outputs):
        assert process.returncode == 0, stderr[-3000:]
    assert outputs[0][0].count('"steps"') == 1  # only the main process reports
    assert json.loads(outputs[0][0][outputs[0][0].index("{") :])["processes"] == 2
    assert json.loads(outputs[1][0][outputs[1][0].index("{") :])["processes"] == 1

    two, one = _records(tmp_path / "two" / "log.jsonl"), _records(tmp_path / "one" / "log.jsonl")
    steps = [r for r in two if "loss" in r]
    assert [r["step"] for r in steps] == list(
        range(1, len(steps) + 1)
    )  # written once, by one process
    assert [r["step"] for r in two] == [r["step"] for r in one]
    for a, b in zip(two, one):
        if "loss" in a:
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5), (a, b)
        else:
            assert a["dev"] == pytest.approx(b["dev"], rel=1e-4, abs=1e-5)

    trained_two = load_file(str(tmp_path / "two" / "model" / "model.safetensors"))
    trained_one = load_file(str(tmp_path / "one" / "model" / "model.safetensors"))
    initial = load_file(str(encoder.with_name(encoder.name + "-bert") / "model.safetensors"))
    changed = 0
    for name, tensor in trained_one.items():
        torch.testing.assert_close(trained_two[name], tensor, rtol=1e-4, atol=5e-5)  # gloo sums in another order
        changed += not torch.equal(tensor, initial[name])
    assert changed > len(trained_one) // 2

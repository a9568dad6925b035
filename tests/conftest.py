"""Shared fixtures: the shared data folder, embedded models, and a quiet, bounded torch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _shared_data_dir() -> Path:
    return Path(os.environ.get("MINT_DISTILL_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The research data beside the repository; tests that need it skip when it is absent."""
    folder = _shared_data_dir()
    if not folder.is_dir():
        pytest.skip(f"shared data not found at {folder} (set MINT_DISTILL_DATA_DIR)")
    return folder


def embedded_or_skip(name: str) -> str:
    """The `embedded:<name>` reference, or skip the test when that model is not pulled."""
    from mint_distill.models.cache import is_pulled

    if not is_pulled(name):
        pytest.skip(f"embedded model {name} is not pulled (run `mint-distill models pull {name}`)")
    return f"embedded:{name}"


@pytest.fixture(autouse=True, scope="session")
def _bounded_torch():
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield


@pytest.fixture
def one_torch_thread():
    """Tiny models run fastest on one thread, and far faster than two when other work shares the cores."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accelerate_on_two_cpu_processes(*program: str) -> list[str]:
    """`accelerate launch` of `program` on 2 CPU processes (gloo).

    `--cpu --num_processes 2` starts a single process in accelerate 1.x; `--multi_gpu` with
    CUDA hidden (see `two_process_environment`) is what gives two gloo processes on a CPU.
    """
    return [
        str(Path(sys.executable).with_name("accelerate")),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        *program,
    ]


def two_process_environment() -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }


def run_on_cpu(command: list[str], timeout: int) -> subprocess.CompletedProcess:
    """Run `command` from the repository root, CPU only (on a GPU machine too), output captured."""
    return subprocess.run(
        command,
        check=False,
        cwd=REPO_ROOT,
        env=two_process_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def private_mint_home(tmp_path_factory):
    """A module's own $MINT_DISTILL_HOME, so its POI-catalog cache is parsed once, there."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINT_DISTILL_HOME", str(tmp_path_factory.mktemp("home")))
        yield

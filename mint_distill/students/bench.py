"""How fast the students train here: examples per second and peak memory per model and student.

    from mint_distill.students import bench_training
    for row in bench_training():
        print(row)

Each measurement runs the real training step (the students' losses, AdamW, gradient clipping)
on synthetic texts of fixed token lengths, in a fresh process so its peak memory is its own. It
runs at `precision` (`auto`, the recipes' training setting: bfloat16 autocast where the device
computes it natively, else float32; a GPU without bf16, where training uses fp16, is timed in
float32).
Divide a recipe's training examples x epochs by `examples_per_s` to estimate its training time.
On a shared machine wall time depends on the other load; `cpu_seconds_per_step` (with
`threads=1`) does much less.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from ..fresh_process import in_fresh_process
from ..models.precision import Precision

WORDS = [
    "quiet",
    "bar",
    "live",
    "jazz",
    "dinner",
    "patio",
    "harbour",
    "spicy",
    "noodles",
    "museum",
    "vintage",
    "wine",
]


@dataclass(frozen=True)
class BenchResult:
    model: str
    student: str
    finetune: str
    device: str
    precision: str
    threads: int
    batch_size: int
    request_tokens: int
    item_tokens: int
    seconds_per_step: float
    cpu_seconds_per_step: float
    examples_per_s: float
    peak_memory_mb: float

    def __str__(self) -> str:
        unit = "pairs" if self.student == "biencoder" else "groups"
        return (
            f"{self.model} {self.student} ({self.finetune}, {self.device}, {self.precision}, {self.threads} threads, "
            f"batch {self.batch_size}, "
            f"{self.request_tokens}+{self.item_tokens} tokens): {self.examples_per_s:.2f} {unit}/s, "
            f"{self.seconds_per_step:.2f} s/step ({self.cpu_seconds_per_step:.2f} CPU s), peak {self.peak_memory_mb:.0f} MB"
        )


def synthetic_text(tokens: int, offset: int) -> str:
    """About `tokens` word-piece tokens of plain English words (one token each for these words)."""
    return " ".join(WORDS[(offset + i) % len(WORDS)] for i in range(tokens))


def bench_training(
    models: tuple[str, ...] = ("embedded:all-minilm-l6-v2", "embedded:all-mpnet-base-v2"),
    *,
    students: tuple[Literal["biencoder", "crossencoder"], ...] = ("biencoder", "crossencoder"),
    finetune: Literal["full", "lora"] = "full",
    batch_size: int = 16,
    crossencoder_batch_size: int = 4,
    negatives: int = 4,
    request_tokens: int = 64,
    item_tokens: int = 48,
    steps: int = 3,
    threads: int | None = None,
    precision: Precision = "auto",
) -> list[BenchResult]:
    """Time `steps` training steps (after one warm-up step) for each model and student.

    Bi-encoder steps see `batch_size` (request, item) pairs with in-batch negatives; cross-encoder
    steps see `crossencoder_batch_size` groups of one positive and `negatives` negatives. Texts are
    never truncated (max lengths are set to fit them): pick lengths that match the recipe's data,
    or its max lengths for a worst case.
    """
    results = []
    for model in models:
        for student in students:
            config = {
                "model": model,
                "student": student,
                "finetune": finetune if student == "biencoder" else "full",
                "batch_size": batch_size if student == "biencoder" else crossencoder_batch_size,
                "negatives": negatives,
                "request_tokens": request_tokens,
                "item_tokens": item_tokens,
                "steps": steps,
                "threads": threads,
                "precision": precision,
            }
            results.append(BenchResult(**in_fresh_process(_measure, config)))
    return results


def _measure(config: dict) -> dict:
    """One measurement, in a fresh process."""
    import torch

    from ..models.precision import autocast, resolve_precision
    from ..recipe.sections.base import LoraSpec
    from .biencoder import BiEncoderTask, add_lora, load_biencoder
    from .crossencoder import CrossEncoderTask, load_crossencoder
    from .data import NegativeGroup, Pair, StudentData

    if config["threads"]:
        torch.set_num_threads(config["threads"])
    size, student = config["batch_size"], config["student"]
    requests = {f"r{i}": synthetic_text(config["request_tokens"], i) for i in range(size)}
    items = {
        f"i{i}": synthetic_text(config["item_tokens"], 3 * i + 1)
        for i in range(size * (1 + config["negatives"]))
    }
    pairs = [Pair(f"r{i}", f"i{i}") for i in range(size)]
    data = StudentData(requests, items, pairs, [], {})
    if student == "biencoder":
        model = load_biencoder(
            config["model"], max_seq_length=max(config["request_tokens"], config["item_tokens"]) + 2
        )
        if config["finetune"] == "lora":
            add_lora(model, LoraSpec(r=8, alpha=16, dropout=0.1, target_modules="all-linear"))
        task = BiEncoderTask(model, data, pairs, batch_size=size, dev_catalog=0)
        batch = list(range(size))
    else:
        model = load_crossencoder(
            config["model"], max_length=config["request_tokens"] + config["item_tokens"] + 3
        )
        groups = [
            NegativeGroup(
                f"r{i}",
                f"i{i}",
                tuple(f"i{size + i * config['negatives'] + j}" for j in range(config["negatives"])),
            )
            for i in range(size)
        ]
        task = CrossEncoderTask(model, data, groups, [], batch_size=size)
        batch = list(range(size))
    device = str(next(model.parameters()).device)
    device_type = device.split(":")[0]
    precision = resolve_precision(config["precision"], device_type)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:
        _reset_peak_rss()

    def step() -> None:
        with autocast(precision, device_type):
            loss = task.loss(model, batch, gather=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: allocations, lazy initialisation
    if device.startswith("cuda"):
        torch.cuda.synchronize()  # the warm-up's queued kernels are not the timed steps'
    clock, cpu_clock = time.perf_counter(), time.process_time()
    for _ in range(config["steps"]):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = _peak_rss_mb()
    seconds = (time.perf_counter() - clock) / config["steps"]
    cpu_seconds = (time.process_time() - cpu_clock) / config["steps"]
    result = BenchResult(
        model=config["model"],
        student=student,
        finetune=config["finetune"],
        device=device,
        precision=precision,
        threads=torch.get_num_threads(),
        batch_size=size,
        request_tokens=config["request_tokens"],
        item_tokens=config["item_tokens"],
        seconds_per_step=round(seconds, 3),
        cpu_seconds_per_step=round(cpu_seconds, 3),
        examples_per_s=round(size / seconds, 3),
        peak_memory_mb=round(peak, 1),
    )
    return asdict(result)


def _reset_peak_rss() -> None:
    """Start the peak-RSS count afresh after loading (Linux; elsewhere the peak includes loading)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

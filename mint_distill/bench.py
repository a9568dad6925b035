"""`mint-distill bench`: every stage's throughput on this machine, in one table.

Each row reuses its component's benchmark (`mint_distill.<component>.bench`) and runs in a
fresh process, so its peak memory is its own; the figure is the median over `--repeats`.
Peak memory is the measuring process's peak RSS as its component reports it: model loading
included, except for the students (whose benchmark resets the count after loading; GPU memory
on a GPU). The export row's first run also exports the model, kept for later runs in
$MINT_DISTILL_HOME/bench-exports.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from .fresh_process import in_fresh_process

TEACHER_MODEL = "embedded:smollm2-135m-instruct"
ENCODERS = ("embedded:all-minilm-l6-v2", "embedded:all-mpnet-base-v2")


@dataclass(frozen=True)
class Sizes:
    """How much work each stage measures per repeat."""

    teacher_prompts: int
    teacher_new_tokens: int
    teacher_examples: int
    filter_items: int
    filter_requests: int
    student_batch: int
    student_steps: int
    encoding_requests: int
    encoding_pool: int
    export_copies: int
    data_lines: int
    data_users: int
    data_items: int
    encoders: tuple[str, ...]


# The default sizes keep all six stages under ~15 minutes on 2 CPU cores with 3 repeats.
FULL = Sizes(
    teacher_prompts=32,  # the default run's batch, its tuned teacher's prompts (no examples)
    teacher_new_tokens=96,  # about one request
    teacher_examples=0,
    filter_items=16,
    filter_requests=4,
    student_batch=16,
    student_steps=3,
    encoding_requests=10,
    encoding_pool=20,
    export_copies=8,
    data_lines=200_000,
    data_users=20_000,
    data_items=5_000,
    encoders=ENCODERS,
)
QUICK = Sizes(
    teacher_prompts=2,
    teacher_new_tokens=4,
    teacher_examples=1,
    filter_items=4,
    filter_requests=2,
    student_batch=4,
    student_steps=1,
    encoding_requests=2,
    encoding_pool=8,
    export_copies=1,
    data_lines=5_000,
    data_users=300,
    data_items=100,
    encoders=ENCODERS[:1],
)


@dataclass(frozen=True)
class BenchRow:
    stage: str
    measure: str
    unit: str
    model: str
    values: tuple[float, ...]  # one per repeat
    peak_memory_mb: float

    def as_json(self) -> dict:
        return {
            "stage": self.stage,
            "measure": self.measure,
            "unit": self.unit,
            "model": self.model,
            "median": statistics.median(self.values),
            "min": min(self.values),
            "max": max(self.values),
            "values": list(self.values),
            "peak_memory_mb": self.peak_memory_mb,
        }


def bench_teacher(sizes: Sizes, repeats: int) -> list[BenchRow]:
    """float32, and bfloat16 where the device computes it natively (what the default recipe's
    `teacher.generation.precision: auto` picks there)."""
    from .models.precision import default_device_type, native_bf16

    rows = []
    for precision in ("float32", "bfloat16") if native_bf16(default_device_type()) else ("float32",):
        values, peak = in_fresh_process(_generate, sizes, repeats, precision)
        measure = (
            f"generation {precision}, batch {sizes.teacher_prompts}, {sizes.teacher_new_tokens} new tokens, "
            f"{sizes.teacher_examples} few-shot examples"
        )
        rows.append(BenchRow("teacher", measure, "tokens/s", TEACHER_MODEL, values, peak))
    return rows


def _generate(sizes: Sizes, repeats: int, precision: str) -> tuple[tuple[float, ...], float]:
    from .teacher.bench import bench_generation

    # One model load; each batch-size entry is one timed repeat.
    rows = bench_generation(
        TEACHER_MODEL,
        batch_sizes=(sizes.teacher_prompts,) * repeats,
        prompts=sizes.teacher_prompts,
        new_tokens=sizes.teacher_new_tokens,
        num_examples=sizes.teacher_examples,
        precision=precision,
    )
    return tuple(row["tokens_per_second"] for row in rows), rows[-1]["peak_rss_mb"]


def bench_filter(sizes: Sizes, repeats: int) -> list[BenchRow]:
    from .evaluation.bench import synthetic_collection
    from .filtering.bench import BENCH_REQUESTS, quantization_study

    items = list(synthetic_collection(requests=1, pool_size=sizes.filter_items).items.values())
    requests = BENCH_REQUESTS[: sizes.filter_requests]
    # quantization_study scores in a fresh process per call.
    runs = [
        quantization_study(TEACHER_MODEL, items, requests, ("none",))[0] for _ in range(repeats)
    ]
    measure = f"likelihood scoring, {len(items) * len(requests)} pairs, unquantized"
    return [
        BenchRow(
            "filter",
            measure,
            "pairs/s",
            TEACHER_MODEL,
            tuple(run.pairs_per_second for run in runs),
            max(run.peak_rss_mib for run in runs),
        )
    ]


def bench_students(sizes: Sizes, repeats: int) -> list[BenchRow]:
    from .students.bench import bench_training

    rows = []
    for model in sizes.encoders:
        # bench_training runs each measurement in a fresh process.
        runs = [
            bench_training(
                (model,),
                students=("biencoder",),
                batch_size=sizes.student_batch,
                steps=sizes.student_steps,
            )[0]
            for _ in range(repeats)
        ]
        measure = (
            f"bi-encoder training {runs[0].precision}, batch {sizes.student_batch}, "
            f"{runs[0].request_tokens}+{runs[0].item_tokens} tokens"
        )
        values = tuple(run.examples_per_s for run in runs)
        peak = max(run.peak_memory_mb for run in runs)
        rows.append(BenchRow("students", measure, "examples/s", model, values, peak))
    return rows


def bench_encoding(sizes: Sizes, repeats: int) -> list[BenchRow]:
    items = sizes.encoding_requests * sizes.encoding_pool
    rows = []
    for model in sizes.encoders:
        values, peak = in_fresh_process(_encode, model, sizes, repeats)
        measure = f"item encoding, {items} POI texts of ~90 words"
        rows.append(BenchRow("encoding", measure, "items/s", model, values, peak))
    return rows


def _encode(model: str, sizes: Sizes, repeats: int) -> tuple[tuple[float, ...], float]:
    from .errors import MintError
    from .evaluation.bench import bench_evaluation, synthetic_collection
    from .recipe.sections.evaluation import RankerSpec

    collection = synthetic_collection(sizes.encoding_requests, sizes.encoding_pool)
    ranker = RankerSpec(name="encoder", kind="dense", model=model)
    values = []
    for _ in range(repeats):
        figures = bench_evaluation([ranker], collection)["rankers"]["encoder"]
        if "unavailable" in figures:
            raise MintError(figures["unavailable"])
        values.append(figures["items_per_second"])
    return tuple(values), _peak_rss_mb()


def bench_export(sizes: Sizes, repeats: int) -> list[BenchRow]:
    from .export.bench import ensure_export

    rows = []
    for model in sizes.encoders:
        in_fresh_process(ensure_export, model)  # apart: exporting and quantizing take more memory
        values, peak = in_fresh_process(_export_speedups, model, sizes, repeats)
        measure = "ONNX int8 vs PyTorch fp32 requests/s"
        rows.append(BenchRow("export", measure, "x speed-up", model, values, peak))
    return rows


def _export_speedups(model: str, sizes: Sizes, repeats: int) -> tuple[tuple[float, ...], float]:
    import torch

    from .export.bench import bench_export as bench_variants

    # bench_export reports medians only; one call per repeat gives each repeat's speed-up.
    speedups = []
    for _ in range(repeats):
        rows = bench_variants(
            (model,), copies=sizes.export_copies, repeats=1, threads=torch.get_num_threads()
        )
        speedups.append(next(row.speedup for row in rows if row.variant == "onnx-int8"))
    return tuple(speedups), _peak_rss_mb()


def bench_data(sizes: Sizes, repeats: int) -> list[BenchRow]:
    import subprocess
    import sys
    import tempfile

    from .errors import MintError

    runs = []
    with tempfile.TemporaryDirectory(prefix="mint-bench-data-") as scratch:
        command = [
            sys.executable,
            "-m",
            "mint_distill.data.bench",
            f"--lines={sizes.data_lines}",
            f"--users={sizes.data_users}",
            f"--items={sizes.data_items}",
            f"--folder={Path(scratch) / 'yelp'}",  # written by the first repeat, reused after
        ]
        for _ in range(repeats):
            done = subprocess.run(command, check=False, capture_output=True, text=True)
            if done.returncode:
                raise MintError(f"the data benchmark failed:\n{done.stderr[-2000:]}")
            runs.append(json.loads(done.stdout))
    measure = f"user selection, {sizes.data_lines}-line Yelp file"
    return [
        BenchRow(
            "data",
            measure,
            "reviews/s",
            "-",
            tuple(run["reviews_per_second"] for run in runs),
            max(run["peak_rss_mb"] for run in runs),
        )
    ]


STAGES: dict[str, Callable[[Sizes, int], list[BenchRow]]] = {
    "teacher": bench_teacher,
    "filter": bench_filter,
    "students": bench_students,
    "encoding": bench_encoding,
    "export": bench_export,
    "data": bench_data,
}


def _peak_rss_mb() -> float:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 2**20 if sys.platform == "darwin" else peak / 1024, 1)


def machine() -> dict:
    """The machine the figures belong to."""
    import datetime
    import os
    import platform

    import torch

    from .models.precision import default_device_type, native_bf16

    return {
        "cpu": _cpu_model() or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "bf16": "native" if native_bf16(default_device_type()) else "emulated",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
    }


def _cpu_model() -> str | None:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def machine_line(info: dict) -> str:
    gpu = f", GPU {info['gpu']}" if info["gpu"] else ""
    bf16 = f", bfloat16 {info['bf16']}" if info.get("bf16") else ""  # reports before 2026-12 lack it
    return (
        f"{info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch threads, "
        f"{info['ram_gb']} GB RAM{gpu}{bf16}; torch {info['torch']}, Python {info['python']}, "
        f"{info['date']}"
    )


COLUMNS = ("stage", "model", "median", "min-max", "unit", "peak MB", "measure")


def _cells(row: dict) -> tuple[str, ...]:
    return (
        row["stage"],
        row["model"].removeprefix("embedded:"),
        _number(row["median"]),
        f"{_number(row['min'])}-{_number(row['max'])}",
        row["unit"],
        f"{row['peak_memory_mb']:.0f}",
        row["measure"],
    )


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def markdown(report: dict) -> str:
    lines = [
        f"Machine: {machine_line(report['machine'])}. Median of {report['repeats']} repeats.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in report["rows"]]
    return "\n".join(lines) + "\n"


def run_bench(stages: list[str], *, repeats: int, quick: bool) -> dict:
    """Measure `stages` and return the report: machine, mode, repeats and one row per measure."""
    from .console import console
    from .models import resolve_model

    sizes = QUICK if quick else FULL
    needed = {TEACHER_MODEL} if {"teacher", "filter"} & set(stages) else set()
    if {"students", "encoding", "export"} & set(stages):
        needed.update(sizes.encoders)
    for model in sorted(needed):
        resolve_model(model)  # fail before any stage runs, with the pull command to fix it
    rows = []
    for stage in stages:
        console.print(f"bench: {stage} ...", highlight=False)
        rows += [row.as_json() for row in STAGES[stage](sizes, repeats)]
    return {
        "machine": machine(),
        "mode": "quick" if quick else "full",
        "repeats": repeats,
        "rows": rows,
    }


def _stage_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str]:
    if value is None:
        return list(STAGES)
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in STAGES]
    if unknown:
        raise click.BadParameter(
            f"unknown stage {', '.join(map(repr, unknown))}; choose from {', '.join(STAGES)}"
        )
    if not names:
        raise click.BadParameter(f"name at least one of {', '.join(STAGES)}")
    return list(dict.fromkeys(names))


def _writable(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Refuse an output that cannot be written before measuring for minutes, not after."""
    from .io import output_problem

    problem = output_problem(value) if value is not None else None
    if problem:
        raise click.BadParameter(f"{value}: {problem}")
    return value


@click.command("bench")
@click.option(
    "--only",
    "stages",
    metavar="STAGES",
    callback=_stage_list,
    help=f"Comma-separated stages to measure (default: all of {','.join(STAGES)}).",
)
@click.option(
    "--repeats", type=click.IntRange(min=1), default=3, show_default=True, help="Timed repeats."
)
@click.option("--quick", is_flag=True, help="Tiny sizes, MiniLM only: about a minute in all.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default="bench.json",
    show_default=True,
    callback=_writable,
    help="JSON report to write.",
)
@click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_writable,
    help="Also write the table as Markdown (for the README).",
)
def bench(
    stages: list[str], repeats: int, quick: bool, out: Path, markdown_path: Path | None
) -> None:
    """Measure each stage's throughput and peak memory on this machine.

    Teacher tokens/s, filter pairs/s, student training examples/s, encoding items/s, ONNX int8
    export speed-up and data reviews/s, each the median of --repeats runs in a fresh process,
    with the embedded models (pull them first). The full bench takes about 15 minutes on 2 cores.

    \b
    Examples:
      mint-distill bench
      mint-distill bench --only teacher,students --repeats 5
      mint-distill bench --quick --out /tmp/bench.json --markdown bench.md
    """
    from rich.table import Table

    from .console import stdout
    from .io import write_json_atomic, write_text_atomic

    report = run_bench(stages, repeats=repeats, quick=quick)
    table = Table(title=machine_line(report["machine"]))
    for column in COLUMNS:
        table.add_column(column, no_wrap=column in ("median", "min-max", "peak MB"))
    for row in report["rows"]:
        table.add_row(*_cells(row))
    stdout.print(table)
    write_json_atomic(out, report)
    if markdown_path:
        write_text_atomic(markdown_path, markdown(report))

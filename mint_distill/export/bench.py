"""Encoding speed and size: PyTorch fp32 vs ONNX fp32 vs ONNX int8, on this machine's CPU.

    python -m mint_distill.export.bench                     # both embedded encoders
    python -m mint_distill.export.bench --model embedded:all-minilm-l6-v2 --repeats 5

Throughput is requests per second encoding narrative requests (about 60-90 words each) in
batches; latency is the time to encode one request alone (batch of 1), the case of a server
answering one user. The variants are measured in turns within each repeat, so load from other
processes on a shared machine affects them alike; the medians over repeats are reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .samples import SAMPLE_REQUESTS

DEFAULT_MODELS = ("embedded:all-minilm-l6-v2", "embedded:all-mpnet-base-v2")


@dataclass(frozen=True)
class BenchRow:
    model: str
    variant: str
    requests_per_second: float
    latency_ms_median: float
    latency_ms_p90: float
    size_mb: float
    min_cosine: float
    speedup: float = 1.0
    size_ratio: float = 1.0


def bench_export(
    models: tuple[str, ...] = DEFAULT_MODELS,
    *,
    workdir: str | os.PathLike | None = None,
    requests: tuple[str, ...] = SAMPLE_REQUESTS,
    copies: int = 8,
    batch_size: int = 32,
    repeats: int = 3,
    threads: int = 2,
) -> list[BenchRow]:
    """Export each model (once, into `workdir`) and time its three variants.

    Throughput encodes `copies` x `requests` texts per repeat; latency encodes each request
    alone. Speedup and size ratio are relative to PyTorch fp32 of the same model.
    """
    import torch

    from .runtime import OnnxEncoder, read_runtime_config

    torch.set_num_threads(threads)
    rows: list[BenchRow] = []
    for reference in models:
        folder = ensure_export(reference, workdir)
        pytorch = _sentence_transformer(folder)
        encoders: dict[str, Callable[[list[str]], np.ndarray]] = {
            "pytorch-fp32": lambda texts, model=pytorch: model.encode(
                texts, batch_size=batch_size, show_progress_bar=False
            ),
            "onnx-fp32": _onnx(OnnxEncoder(folder, "fp32", threads=threads), batch_size),
            "onnx-int8": _onnx(OnnxEncoder(folder, "int8", threads=threads), batch_size),
        }
        config = read_runtime_config(folder)
        sizes = {
            "pytorch-fp32": (folder / "model.safetensors").stat().st_size,
            "onnx-fp32": (folder / config["models"]["fp32"]).stat().st_size,
            "onnx-int8": (folder / config["models"]["int8"]).stat().st_size,
        }
        rows += _measure(reference, encoders, sizes, list(requests), copies, repeats)
    return rows


def ensure_export(reference: str, workdir: str | os.PathLike | None = None) -> Path:
    """The ONNX export of `reference` under `workdir` (default: the cache's bench-exports),
    exported now unless an export kept from an earlier run is current."""
    from ..models.cache import home
    from .exporter import export_encoder

    folder = (Path(workdir) if workdir else home() / "bench-exports") / reference.replace(":", "-").replace("/", "-")
    if not _current_export(folder):
        export_encoder(reference, folder, onnx=True, int8=True)
    return folder


def _current_export(folder: Path) -> bool:
    """An export kept from an earlier run, quantized as `export_encoder` quantizes now."""
    from .onnx import INT8_LOOKUP_TABLES, INT8_SPREAD_LIMIT
    from .runtime import is_onnx_export, read_runtime_config

    if not is_onnx_export(folder):
        return False
    record = read_runtime_config(folder).get("int8", {})
    return record.get("spread_limit") == INT8_SPREAD_LIMIT and record.get("lookup_tables") == INT8_LOOKUP_TABLES


def _sentence_transformer(folder: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu")


def _onnx(encoder, batch_size: int) -> Callable[[list[str]], np.ndarray]:
    return lambda texts: encoder.encode(texts, batch_size=batch_size)


def _measure(reference, encoders, sizes, requests, copies, repeats) -> list[BenchRow]:
    batch = requests * copies
    throughput: dict[str, list[float]] = {name: [] for name in encoders}
    latency: dict[str, list[float]] = {name: [] for name in encoders}
    reference_embeddings = encoders["pytorch-fp32"](requests)
    cosines = {}
    for name, encode in encoders.items():
        embeddings = encode(requests)  # warm-up, and parity on the benchmark texts
        norms = np.linalg.norm(embeddings, axis=1) * np.linalg.norm(reference_embeddings, axis=1)
        cosines[name] = float(((embeddings * reference_embeddings).sum(axis=1) / norms).min())
    for _ in range(repeats):
        for name, encode in encoders.items():
            start = time.perf_counter()
            encode(batch)
            throughput[name].append(len(batch) / (time.perf_counter() - start))
            for request in requests:
                start = time.perf_counter()
                encode([request])
                latency[name].append((time.perf_counter() - start) * 1000)
    base_speed = statistics.median(throughput["pytorch-fp32"])
    rows = []
    for name in encoders:
        speed = statistics.median(throughput[name])
        rows.append(
            BenchRow(
                model=reference,
                variant=name,
                requests_per_second=round(speed, 2),
                latency_ms_median=round(statistics.median(latency[name]), 1),
                latency_ms_p90=round(float(np.percentile(latency[name], 90)), 1),
                size_mb=round(sizes[name] / 1e6, 1),
                min_cosine=round(cosines[name], 5),
                speedup=round(speed / base_speed, 2),
                size_ratio=round(sizes[name] / sizes["pytorch-fp32"], 3),
            )
        )
    return rows


def markdown_table(rows: list[BenchRow]) -> str:
    header = (
        "| model | variant | requests/s | latency median (ms) | latency p90 (ms) | size (MB) "
        "| vs PyTorch speed | vs PyTorch size | min cosine |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row.model} | {row.variant} | {row.requests_per_second:.1f} | {row.latency_ms_median:.1f} | "
            f"{row.latency_ms_p90:.1f} | {row.size_mb:.1f} | {row.speedup:.2f}x | {row.size_ratio:.2f} "
            f"| {row.min_cosine:.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", action="append", help="model reference (repeatable; default: both embedded encoders)"
    )
    parser.add_argument(
        "--workdir", help="where exports are kept between runs (default: $MINT_DISTILL_HOME/bench-exports)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    rows = bench_export(
        tuple(args.model or DEFAULT_MODELS), workdir=args.workdir, repeats=args.repeats, threads=args.threads
    )
    print(markdown_table(rows))
    print(
        f"\n{os.cpu_count()} CPU(s), {args.threads} thread(s) per variant, "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    if args.json:
        from ..io import write_json_atomic

        write_json_atomic(args.json, [asdict(row) for row in rows])


if __name__ == "__main__":
    main()

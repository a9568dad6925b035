"""Generation throughput of a teacher on this machine (a benchmark, not a test).

    from mint_distill.teacher.bench import bench_generation
    for row in bench_generation(batch_sizes=(1, 8, 16, 32)):
        print(row)

Prompts are real: the shipped seed histories in the generator's prompt format. Every row
generates exactly `new_tokens` per prompt (EOS suppressed), so tokens/s compares across batch
sizes; wall time includes prompt processing, as in a real run.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

from ..models.precision import Precision
from .histories import load_seeds
from .prompts import PromptBuilder, prompt_rng

DEFAULT_SEEDS = Path(__file__).resolve().parents[2] / "recipes" / "seeds" / "poi.jsonl"


def bench_generation(
    model: str = "embedded:smollm2-135m-instruct",
    *,
    adapter: str | Path | None = None,
    batch_sizes: tuple[int, ...] = (1, 8, 16, 32),
    prompts: int = 32,
    new_tokens: int = 64,
    num_examples: int = 3,
    max_tokens: int | None = 512,
    precision: Precision = "float32",
    seeds: str | Path = DEFAULT_SEEDS,
) -> list[dict]:
    """Tokens/s, requests/s and peak memory per batch size for `prompts` real teacher prompts.

    `precision="bfloat16"` runs the weights in bfloat16 (faster on CPUs with AVX512-BF16).
    """
    import torch

    from .generation import RequestSampler, load_teacher

    network, tokenizer = load_teacher(model, adapter, precision=precision)
    pool = load_seeds(seeds)
    builder = PromptBuilder(
        tokenizer,
        [s for s in pool if s.split == "train"],
        num_examples=num_examples,
        max_tokens=max_tokens,
    )
    warm_up = max(batch_sizes)
    texts = [
        builder.build(pool[i % len(pool)].history, prompt_rng(0, "bench", i)).text
        for i in range(prompts + warm_up)
    ]
    texts, warm_up_texts = texts[:prompts], texts[prompts:]
    prompt_tokens = sum(builder.count_tokens(t) for t in texts)
    sampler = RequestSampler(
        network, tokenizer, max_new_tokens=new_tokens, min_new_tokens=new_tokens, stop=()
    )
    # Warm-up with a full batch of other prompts: first-call allocations and the kernels oneDNN
    # builds for new shapes are paid once in a run of many batches (without it, the three
    # bfloat16 repeats of `mint-distill bench` measured 103, 120, 134 tokens/s).
    sampler.sample(warm_up_texts, seed=0)
    rows = []
    for batch_size in batch_sizes:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        clock, cpu_clock = time.perf_counter(), time.process_time()
        generated = 0
        for start in range(0, len(texts), batch_size):
            generated += sum(
                s.new_tokens for s in sampler.sample(texts[start : start + batch_size], seed=start)
            )
        seconds = time.perf_counter() - clock
        rows.append(
            {
                "model": model,
                "precision": precision,
                "batch_size": batch_size,
                "prompts": len(texts),
                "mean_prompt_tokens": round(prompt_tokens / len(texts), 1),
                "new_tokens_per_prompt": new_tokens,
                "seconds": round(seconds, 2),
                "cpu_seconds": round(time.process_time() - cpu_clock, 2),
                "tokens_per_second": round(generated / seconds, 1),
                "requests_per_second": round(len(texts) / seconds, 3),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                **(
                    {"peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
                    if torch.cuda.is_available()
                    else {}
                ),
            }
        )
    return rows

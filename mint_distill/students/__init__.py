"""The students: a bi-encoder and a cross-encoder trained on the filtered synthetic pairs.

    from mint_distill.students import train_biencoder, load_crossencoder, rerank

    summary = train_biencoder(
        {"model": "embedded:all-minilm-l6-v2", "training": {"epochs": 1}},
        pairs="runs/x/filter/pairs.jsonl", requests="runs/x/generate/requests.jsonl",
        items="runs/x/data/items.jsonl", out_dir="out/biencoder", seed=13,
    )
    model = load_crossencoder("runs/x/train-crossencoder/model")
    best = rerank(model, "a quiet wine bar near the harbour", {"b1": "...", "b2": "..."}, top_k=10)

Names are imported on first use, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "StudentData": ".data",
    "Pair": ".data",
    "load_student_data": ".data",
    "load_negatives": ".data",
    "train_biencoder": ".biencoder",
    "load_biencoder": ".biencoder",
    "add_lora": ".biencoder",
    "BiEncoderTask": ".biencoder",
    "train_crossencoder": ".crossencoder",
    "load_crossencoder": ".crossencoder",
    "add_crossencoder_lora": ".crossencoder",
    "rerank": ".crossencoder",
    "CrossEncoderTask": ".crossencoder",
    "LoopSettings": ".loop",
    "TrainerState": ".loop",
    "TrainingResult": ".loop",
    "train_loop": ".loop",
    "effective_window": ".negatives",
    "mine_negatives": ".negatives",
    "dense_rankings": ".negatives",
    "bm25_rankings": ".negatives",
    "run_job": ".job",
    "bench_training": ".bench",
}

__all__ = [
    "BiEncoderTask",
    "CrossEncoderTask",
    "LoopSettings",
    "Pair",
    "StudentData",
    "TrainerState",
    "TrainingResult",
    "add_crossencoder_lora",
    "add_lora",
    "bench_training",
    "bm25_rankings",
    "dense_rankings",
    "effective_window",
    "load_biencoder",
    "load_crossencoder",
    "load_negatives",
    "load_student_data",
    "mine_negatives",
    "rerank",
    "run_job",
    "train_biencoder",
    "train_crossencoder",
    "train_loop",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)

"""`students`: the bi-encoder and cross-encoder trained on the filtered pairs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import LoraSpec, Section


class TrainingSpec(Section):
    epochs: float = 1.0
    learning_rate: float = 2e-5
    batch_size: int = 16
    gradient_accumulation: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    eval_every: int = 50
    checkpoint_every: int = 50
    early_stopping_patience: int | None = 3
    max_train_pairs: int | None = None
    seed: int = 0


class BiEncoderSpec(Section):
    enabled: bool = True
    model: str = "embedded:all-mpnet-base-v2"
    loss: Literal["mnrl", "triplet"] = "mnrl"
    triplet_margin: float = 1.0
    hard_negatives: int = Field(0, ge=0, description="first-stage hard negatives per pair (0: in-batch only)")
    finetune: Literal["full", "lora"] = "full"
    lora: LoraSpec = LoraSpec(r=8, alpha=16, dropout=0.1, target_modules=["query", "key", "value", "dense"])
    max_seq_length: int = 256
    training: TrainingSpec = TrainingSpec()


class NegativesSpec(Section):
    rank_start: int = Field(100, ge=0, description="paper: ranks 101-300 of the bi-encoder")
    rank_end: int = 300
    per_positive: int = 4


class CrossEncoderSpec(Section):
    enabled: bool = True
    model: str = "embedded:all-mpnet-base-v2"
    loss: Literal["listwise", "bce"] = "listwise"
    max_length: int = 512
    rerank_top_k: int = 200
    training: TrainingSpec = TrainingSpec(batch_size=4)


class StudentsSection(Section):
    biencoder: BiEncoderSpec = BiEncoderSpec()
    negatives: NegativesSpec = NegativesSpec()
    crossencoder: CrossEncoderSpec = CrossEncoderSpec()

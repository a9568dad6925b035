"""`students`: the bi-encoder and cross-encoder trained on the filtered pairs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ...models.precision import MixedPrecision, Precision
from .base import LoraSpec, Section, Seed


class TrainingSpec(Section):
    """The training loop shared by both students (Accelerate underneath)."""

    epochs: float = Field(
        1.0, gt=0.0, description="passes over the training examples (fractions allowed)"
    )
    learning_rate: float = Field(2e-5, gt=0.0)
    batch_size: int = Field(
        16,
        ge=1,
        description="examples per forward pass summed over all processes (the in-batch negative pool); "
        "must be divisible by the number of processes",
    )
    gradient_accumulation: int = Field(1, ge=1, description="forward passes per optimizer step")
    warmup_ratio: float = Field(
        0.1, ge=0.0, lt=1.0, description="share of steps with a linear learning-rate warmup"
    )
    weight_decay: float = Field(0.01, ge=0.0)
    max_grad_norm: float = Field(1.0, gt=0.0, description="gradient clipping norm")
    mixed_precision: MixedPrecision = Field(
        "auto",
        description="auto: bf16 where the device computes it natively (CPUs with AVX512-BF16 or AMX, "
        "Ampere+ GPUs), else fp16 on GPUs and none on the CPU",
    )
    eval_every: int = Field(
        50, ge=0, description="optimizer steps between dev evaluations (0: only at start and end)"
    )
    checkpoint_every: int = Field(
        50, ge=1, description="optimizer steps between resumable checkpoints"
    )
    early_stopping_patience: int | None = Field(
        3,
        ge=1,
        description="stop after this many dev evaluations without improvement (null: never)",
    )
    select_by: Literal["mrr@10", "recall@10", "loss", "fused_mrr@10"] = Field(
        "mrr@10",
        description="dev measure that picks the kept checkpoint; fused_mrr@10 (cross-encoder only): the "
        "MRR@10 of its scores fused with the bi-encoder's at the weight chosen there, what evaluate and "
        "recommend serve",
    )
    max_train_pairs: int | None = Field(
        None, ge=1, description="use at most this many training examples (seeded sample)"
    )
    seed: Seed | None = Field(None, description="null: the recipe's top-level seed")


class HardNegativesSpec(Section):
    """Negatives for the bi-encoder from a first-stage ranker, added to the in-batch ones."""

    count: int = Field(
        0, ge=0, description="hard negatives per training pair (0: in-batch negatives only)"
    )
    ranker: Literal["bm25"] = "bm25"
    rank_start: int = Field(10, ge=0, description="first rank (0-based) negatives are drawn from")
    rank_end: int = Field(100, ge=1, description="rank after the last one negatives are drawn from")

    @model_validator(mode="after")
    def _window(self) -> HardNegativesSpec:
        if self.rank_end <= self.rank_start:
            raise ValueError(
                f"rank_end ({self.rank_end}) must be above rank_start ({self.rank_start})"
            )
        return self


class BiEncoderSpec(Section):
    enabled: bool = True
    model: str = "embedded:all-mpnet-base-v2"
    trust_remote_code: bool = False
    loss: Literal["mnrl", "mnrl_symmetric", "triplet"] = Field(
        "mnrl",
        description="mnrl: softmax over in-batch (and hard) negatives; mnrl_symmetric: mnrl averaged "
        "with each item ranking its own request among the batch's requests; triplet: euclidean "
        "margin loss",
    )
    mnrl_scale: float = Field(
        20.0, gt=0.0, description="inverse temperature of the mnrl softmax over cosine scores"
    )
    triplet_margin: float = Field(
        1.0, gt=0.0, description="margin of the triplet loss (euclidean distance)"
    )
    hard_negatives: HardNegativesSpec = HardNegativesSpec()
    batch_grouping: Literal["none", "city"] = Field(
        "none",
        description="city: topic-aware batches (TAS-B); each training batch is filled with pairs whose "
        "items share a city (country, region, city in items.jsonl) where that city has enough distinct "
        "requests and items, the rest mixed, so in-batch negatives differ in what is asked, not where",
    )
    finetune: Literal["full", "lora"] = "full"
    lora: LoraSpec = Field(
        LoraSpec(r=8, alpha=16, dropout=0.1, target_modules="all-linear"),
        description="used when finetune is lora; all-linear fits BERT (query/key/value) and MPNet (q/k/v) alike",
    )
    max_seq_length: int = Field(256, ge=8, description="tokens per request or item text in training")
    inference_max_seq_length: int | None = Field(
        None,
        ge=8,
        description="tokens per text the trained student encodes with (evaluation, negatives, export, "
        "serving); null: max_seq_length, as in training. Applied by the average-biencoder stage: "
        "changing it does not retrain the student",
    )
    finetuned_weight: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="WiSE-FT: the saved student is base + w * (fine-tuned - base), for LoRA its update "
        "scaled by w; 1: the fine-tuned student as trained. Applied by the average-biencoder stage: "
        "changing it does not retrain the student",
    )
    dev_catalog: int | None = Field(
        1000,
        ge=1,
        description="items ranked for dev metrics: the dev positives plus a fixed sample of the catalog (null: all)",
    )
    training: TrainingSpec = TrainingSpec()


class NegativesSpec(Section):
    """Hard negatives for the cross-encoder, from the trained bi-encoder's ranking of the catalog."""

    rank_start: int = Field(
        100, ge=0, description="paper: ranks 101-300 of the bi-encoder (0-based 100..299)"
    )
    rank_end: int = Field(300, ge=1, description="rank after the last one negatives are drawn from")
    per_positive: int = Field(4, ge=1, description="negatives per (request, positive item) pair")
    encode_batch_size: int = Field(32, ge=1)
    precision: Precision = Field(
        "float32",
        description="bfloat16: encode the catalog under bf16 autocast, ~1.5x faster on CPUs with AVX512-BF16; "
        "auto: bfloat16 where the device computes it natively, else float32",
    )

    @model_validator(mode="after")
    def _window(self) -> NegativesSpec:
        if self.rank_end <= self.rank_start:
            raise ValueError(
                f"rank_end ({self.rank_end}) must be above rank_start ({self.rank_start})"
            )
        return self


class CrossEncoderSpec(Section):
    enabled: bool = True
    model: str = "embedded:all-mpnet-base-v2"
    trust_remote_code: bool = False
    loss: Literal["listwise", "bce"] = Field(
        "listwise",
        description="listwise: softmax over 1 positive + negatives; bce: pointwise binary labels",
    )
    finetune: Literal["full", "lora"] = Field(
        "full",
        description="full: every weight trains (the paper's setting); lora: a LoRA adapter on the encoder "
        "with the new scoring head trained in full, saved as an adapter folder that a bundle can hold "
        "(package.include_crossencoder)",
    )
    lora: LoraSpec = Field(
        LoraSpec(r=8, alpha=16, dropout=0.1, target_modules="all-linear"),
        description="used when finetune is lora; target_modules name encoder layers (the head is saved in "
        "full); all-linear fits BERT (query/key/value) and MPNet (q/k/v) alike",
    )
    max_length: int = Field(512, ge=8, description="tokens per (request, item) input")
    rerank_top_k: int = Field(200, ge=1, description="first-stage candidates reranked at inference")
    fusion_weight: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="weight of the cross-encoder's score against the first stage's, both z-normalised "
        "over each request's candidates (1: the cross-encoder alone; null: the best of 0, 0.1, ..., 1 "
        "on the synthetic dev split, ties to the higher, or the cross-encoder alone where no dev request "
        "has a kept item among its candidates)",
    )
    training: TrainingSpec = TrainingSpec(batch_size=4)


class StudentsSection(Section):
    biencoder: BiEncoderSpec = BiEncoderSpec()
    negatives: NegativesSpec = NegativesSpec()
    crossencoder: CrossEncoderSpec = CrossEncoderSpec()

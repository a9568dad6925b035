"""`evaluation`: rankers compared on the test collection, metrics and significance."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Section


class RankerSpec(Section):
    name: str
    kind: Literal["bm25", "dense", "upr", "biencoder", "crossencoder"]
    model: str | None = Field(None, description="model reference for dense and upr rankers")
    first_stage: str | None = Field(None, description="ranker whose top-k this one reranks")
    top_k: int = 100


class EvaluationSection(Section):
    rankers: list[RankerSpec] = [
        RankerSpec(name="bm25", kind="bm25"),
        RankerSpec(name="zeroshot-minilm", kind="dense", model="embedded:all-minilm-l6-v2"),
        RankerSpec(name="zeroshot-mpnet", kind="dense", model="embedded:all-mpnet-base-v2"),
    ]
    reference: str = "zeroshot-mpnet"
    significance: Literal["randomization", "ttest"] = "randomization"
    alpha: float = 0.05
    batch_size: int = 32

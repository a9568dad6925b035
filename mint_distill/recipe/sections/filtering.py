"""`filter`: keep the items that best explain each synthetic request."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ...models.precision import Precision
from ...scoring import DEFAULT_PROMPT, ITEM_PLACEHOLDER
from .base import Section, Seed, check_embedded_kind


class FilterSection(Section):
    method: Literal["likelihood", "encoder", "random", "none"] = Field(
        "likelihood",
        description="likelihood: keep the items the LM finds most likely to have led to the request; "
        "encoder: keep the items a bi-encoder scores closest to the request (round-trip consistency, "
        "as in Promptagator); random: keep a seeded random subset of the same size (the paper's "
        "control); none: keep every item",
    )
    model: str = Field(
        "embedded:smollm2-135m-instruct",
        description="likelihood: a causal or seq2seq LM; encoder: a sentence-transformers bi-encoder "
        "(e.g. embedded:all-mpnet-base-v2, encoding at its own max_seq_length)",
    )
    model_type: Literal["auto", "causal", "seq2seq"] = "auto"
    quantization: Literal["none", "8bit", "4bit"] = Field("none", description="bitsandbytes loading of the filter LM")
    precision: Precision = Field(
        "float32",
        description="bfloat16: autocast, ~2x faster on CPUs with AVX512-BF16; "
        "auto: bfloat16 where the device computes it natively, else float32",
    )
    trust_remote_code: bool = False
    score: Literal["sum", "mean"] = Field("sum", description="summed (paper) or length-normalised log-likelihood")
    prompt: str = Field(DEFAULT_PROMPT, description=f"the conditioning text; {ITEM_PLACEHOLDER} becomes the item text")
    max_item_tokens: int = Field(480, ge=1, description="item text is cut after this many tokens")
    max_request_tokens: int = Field(512, ge=1, description="request tokens scored at most")
    keep_fraction: float = Field(0.5, gt=0.0, le=1.0, description="keep ceil(n * keep_fraction) of a request's n items")
    min_keep: int = Field(1, ge=1, description="keep at least this many items (or all, if fewer)")
    mint_compat: bool = Field(
        False, description="keep floor(n * keep_fraction) + 1 items, as the authors' code does (an off-by-one)"
    )
    batch_size: int = Field(16, ge=1, description="pairs per LM forward pass, or texts per encoder batch")
    seed: Seed = Field(0, description="seed of the random subsets of method `random`")

    @field_validator("prompt")
    @classmethod
    def _prompt_has_item(cls, prompt: str) -> str:
        if prompt.count(ITEM_PLACEHOLDER) != 1:
            raise ValueError(f"must contain {ITEM_PLACEHOLDER} exactly once, where the item text goes")
        return prompt

    @model_validator(mode="after")
    def _model_fits_method(self) -> FilterSection:
        needed = {"likelihood": "causal-lm", "encoder": "sentence-transformer"}.get(self.method)
        if needed:
            check_embedded_kind(self.model, needed, "filter.model", f"method `{self.method}`")
        return self

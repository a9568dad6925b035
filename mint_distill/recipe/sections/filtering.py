"""`filter`: keep the items that best explain each synthetic request."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Section


class FilterSection(Section):
    method: Literal["likelihood", "random", "none"] = "likelihood"
    model: str = "embedded:smollm2-135m-instruct"
    model_type: Literal["auto", "causal", "seq2seq"] = "auto"
    quantization: Literal["none", "8bit", "4bit"] = "none"
    trust_remote_code: bool = False
    score: Literal["sum", "mean"] = Field("sum", description="summed (paper) or length-normalised log-likelihood")
    keep_fraction: float = Field(0.5, gt=0.0, le=1.0)
    min_keep: int = Field(1, ge=1)
    mint_compat: bool = Field(False, description="keep one more item, as the authors' code does")
    batch_size: int = 16
    seed: int = 0

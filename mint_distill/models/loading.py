"""Load resolved models with the right classes, quantization and safety settings."""

from __future__ import annotations

import logging
import os
from typing import Literal

from .precision import native_bf16
from .resolver import ResolvedModel, resolve_model

log = logging.getLogger(__name__)

Quantization = Literal["none", "8bit", "4bit"]


def quantization_config(quantization: Quantization):
    """A bitsandbytes config for 8-bit (LLM.int8) or 4-bit NF4 loading, or None."""
    if quantization == "none":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.bfloat16 if native_bf16("cuda") else torch.float32
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute
    )


def _device_map(quantization: Quantization):
    """bitsandbytes needs an explicit device: this process's GPU under a multi-process launch."""
    import torch

    if quantization == "none":
        return None
    return {"": int(os.environ.get("LOCAL_RANK", 0))} if torch.cuda.is_available() else {"": "cpu"}


def model_type_of(model: ResolvedModel, trust_remote_code: bool = False) -> Literal["causal", "seq2seq"]:
    """`seq2seq` for encoder-decoder models (T5, BART, ...), `causal` otherwise."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model.location, trust_remote_code=trust_remote_code)
    return "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"


def load_tokenizer(reference: str | ResolvedModel, *, trust_remote_code: bool = False, padding_side: str = "left"):
    from transformers import AutoTokenizer

    model = reference if isinstance(reference, ResolvedModel) else resolve_model(reference)
    tokenizer = AutoTokenizer.from_pretrained(model.location, trust_remote_code=trust_remote_code)
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_language_model(
    reference: str | ResolvedModel,
    *,
    model_type: Literal["auto", "causal", "seq2seq"] = "auto",
    quantization: Quantization = "none",
    trust_remote_code: bool = False,
):
    """A causal or seq2seq LM in eval mode, optionally quantized with bitsandbytes."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    model = reference if isinstance(reference, ResolvedModel) else resolve_model(reference)
    if model_type == "auto":
        model_type = model_type_of(model, trust_remote_code)
    cls = AutoModelForSeq2SeqLM if model_type == "seq2seq" else AutoModelForCausalLM
    kwargs = {"trust_remote_code": trust_remote_code}
    if quantization != "none":
        kwargs.update(quantization_config=quantization_config(quantization), device_map=_device_map(quantization))
    log.info("loading %s (%s, quantization %s)", model.reference, model_type, quantization)
    network = cls.from_pretrained(model.location, **kwargs)
    network.eval()
    return network


def load_sentence_transformer(reference: str | ResolvedModel, *, trust_remote_code: bool = False, device: str | None = None):
    from sentence_transformers import SentenceTransformer

    model = reference if isinstance(reference, ResolvedModel) else resolve_model(reference)
    return SentenceTransformer(model.location, device=device or _default_device(), trust_remote_code=trust_remote_code)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

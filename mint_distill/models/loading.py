"""Load resolved models with the right classes, quantization and safety settings."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from ..errors import IntegrityError, MintError
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

    with damage_checked(model):
        config = AutoConfig.from_pretrained(model.location, trust_remote_code=trust_remote_code)
    return "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"


@contextlib.contextmanager
def damage_checked(model: ResolvedModel) -> Iterator[None]:
    """Turn a failure to load a pulled embedded model into an error saying how to repair it, when
    its files fail verification (checked only then: hashing the weights at every load is slow)."""
    try:
        yield
    except MintError:
        raise
    except Exception as error:
        if model.source != "embedded":
            raise
        from .pull import verify_folder

        name = Path(model.location).name
        problems = verify_folder(name, Path(model.location))
        if not problems:
            raise
        raise IntegrityError(
            f"embedded model `{model.reference}` failed to load ({type(error).__name__}): its files are damaged:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
            + f"\nPull it again with `mint-distill models pull --force {name}` "
            "(`mint-distill models verify` checks every pulled model)."
        ) from error


def load_tokenizer(reference: str | ResolvedModel, *, trust_remote_code: bool = False, padding_side: str = "left"):
    from transformers import AutoTokenizer

    model = reference if isinstance(reference, ResolvedModel) else resolve_model(reference)
    with damage_checked(model):
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
    with damage_checked(model):
        network = cls.from_pretrained(model.location, **kwargs)
    network.eval()
    return network


def load_sentence_transformer(reference: str | ResolvedModel, *, trust_remote_code: bool = False, device: str | None = None):
    from sentence_transformers import SentenceTransformer

    model = reference if isinstance(reference, ResolvedModel) else resolve_model(reference)
    with damage_checked(model):
        return SentenceTransformer(model.location, device=device or _default_device(), trust_remote_code=trust_remote_code)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

"""Terminal output: what the CLI's logging set-up lets through."""

from __future__ import annotations

import logging
import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor

import pytest

from mint_distill.console import is_quiet, setup_logging
from mint_distill.fresh_process import in_fresh_process

BITSANDBYTES_CPU = "bitsandbytes.backends.cpu.ops"
KERNEL_HINT = (
    "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you "
    "already `pip install kernels` and the kernels >= 0.11.1"
)


@pytest.fixture
def restored_logging():
    logger = logging.getLogger(BITSANDBYTES_CPU)
    filters = list(logger.filters)
    yield logger
    setup_logging()  # the CLI's defaults again (the debug test leaves DEBUG)
    logger.filters = filters


def test_bitsandbytes_missing_kernel_hint_is_dropped_other_warnings_kept(restored_logging, caplog):
    setup_logging()
    with caplog.at_level(logging.WARNING):
        restored_logging.warning(KERNEL_HINT, "No module named 'kernels'")
        restored_logging.warning("a 4-bit weight has an unexpected shape")
    assert [r.getMessage() for r in caplog.records] == ["a 4-bit weight has an unexpected shape"]


def test_debug_shows_the_missing_kernel_hint(restored_logging, caplog):
    setup_logging()
    setup_logging(debug=True)
    with caplog.at_level(logging.WARNING):
        restored_logging.warning(KERNEL_HINT, "No module named 'kernels'")
    assert [r.name for r in caplog.records] == [BITSANDBYTES_CPU]


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1,
    )
    return LlamaForCausalLM(config)


def wrap_in_lora():
    from peft import LoraConfig, get_peft_model

    get_peft_model(tiny_llama(), LoraConfig(r=2, target_modules=["q_proj"]))


def warn_as_peft_before_0_22():
    """What peft 0.20-0.21 (which pyproject allows) made transformers warn at each LoRA model."""
    warnings.warn(
        "`is_gradient_checkpointing` is deprecated and will be removed in v6. Use "
        "`is_activation_checkpointing` instead.",
        FutureWarning,
        stacklevel=1,
    )


def future_warnings(debug: bool, action) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        setup_logging(debug=debug)
        action()
        warnings.warn("a FutureWarning of our own", FutureWarning, stacklevel=1)
    return [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]


@pytest.mark.parametrize("action", [wrap_in_lora, warn_as_peft_before_0_22])
def test_peft_asking_for_the_deprecated_checkpointing_property_is_silenced(restored_logging, action):
    assert future_warnings(debug=False, action=action) == ["a FutureWarning of our own"]


def test_debug_shows_peft_asking_for_the_deprecated_checkpointing_property(restored_logging):
    shown = future_warnings(debug=True, action=warn_as_peft_before_0_22)
    assert any(message.startswith("`is_gradient_checkpointing` is deprecated") for message in shown)
    assert "a FutureWarning of our own" in shown


def test_a_fresh_process_sets_up_its_logging_like_this_process(restored_logging):
    setup_logging(quiet=True)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        assert pool.submit(is_quiet).result() is False  # Python's defaults, where the bench's hint showed
    assert in_fresh_process(is_quiet) is True

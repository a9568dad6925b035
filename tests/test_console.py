"""Terminal output: what the CLI's logging set-up lets through."""

from __future__ import annotations

import logging

import pytest

from mint_distill.console import setup_logging

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

"""bm25s is imported with JAX kept off the GPU, where JAX would reserve most of its memory."""

from __future__ import annotations

import importlib.util
import os

import pytest

from mint_distill.bm25 import import_bm25s


def test_importing_bm25s_keeps_jax_on_the_cpu(monkeypatch):
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    bm25s = import_bm25s()

    assert os.environ["JAX_PLATFORMS"] == "cpu"
    index = bm25s.BM25()
    index.index(bm25s.tokenize(["a quiet cafe", "a loud bar"], show_progress=False), show_progress=False)
    documents, _ = index.retrieve(bm25s.tokenize(["cafe"], show_progress=False), k=1, show_progress=False)
    assert documents.tolist() == [[0]]
    if importlib.util.find_spec("jax") is not None:
        import jax

        assert {device.platform for device in jax.devices()} == {"cpu"}


@pytest.mark.parametrize("chosen", ["cuda", "cpu,cuda"])
def test_a_platform_the_user_chose_is_kept(monkeypatch, chosen):
    monkeypatch.setenv("JAX_PLATFORMS", chosen)
    import_bm25s()

    assert os.environ["JAX_PLATFORMS"] == chosen

"""Candidate sampling draws from the distribution transformers' own warpers define, leaves one
finite logit per row, never draws a masked token, and refuses settings outside the warpers' ranges."""

from __future__ import annotations

import pytest
import torch
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from mint_distill.teacher.sampling import CandidateSampling

DRAWS = 40_000


def _warper_distribution(scores: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """What `generate(do_sample=True)` samples from: its warpers in their order, then softmax."""
    for warp in (TemperatureLogitsWarper(temperature), TopKLogitsWarper(top_k), TopPLogitsWarper(top_p)):
        scores = warp(None, scores)
    return torch.softmax(scores, dim=-1)


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(0.8, 50, 0.95), (1.3, 8, 0.6), (0.5, 200, 1.0)])
def test_draws_follow_the_warpers_distribution(temperature, top_k, top_p):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 300, generator=generator) * 2.5
    expected = _warper_distribution(logits.clone(), temperature, top_k, top_p)[0]

    torch.manual_seed(1)
    drawn = CandidateSampling(temperature, top_k, top_p)(None, logits.expand(DRAWS, -1).clone())
    assert torch.isfinite(drawn).sum(dim=-1).eq(1).all()  # one token left per row
    tokens = drawn.argmax(dim=-1)
    frequencies = torch.bincount(tokens, minlength=logits.shape[-1]).float() / DRAWS

    assert set(tokens.unique().tolist()) <= set(expected.nonzero().flatten().tolist())
    standard_error = (expected * (1 - expected) / DRAWS).sqrt()
    assert (frequencies - expected).abs().le(5 * standard_error + 1e-4).all()


def test_rows_with_few_finite_logits_draw_only_those():
    scores = torch.full((4, 100), float("-inf"))
    scores[:, 7] = 0.0
    scores[:, 42] = 0.5
    tokens = CandidateSampling(0.8, 50, 0.95)(None, scores).argmax(dim=-1)
    assert set(tokens.tolist()) <= {7, 42}


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(0.0, 50, 0.9), (0.8, 0, 0.9), (0.8, 50, 1.5)])
def test_bad_settings_are_refused(temperature, top_k, top_p):
    with pytest.raises(ValueError, match="top_k"):
        CandidateSampling(temperature, top_k, top_p)

"""Paired significance tests on crafted per-query scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mint_distill.evaluation.significance import compare, paired_ttest, randomization_test


def test_a_system_that_wins_every_query_is_significant_exactly():
    # 10 queries, every difference positive: of the 2^10 sign patterns only "all kept" and "all
    # flipped" reach the observed |mean difference|, so the exact two-sided p is 2 / 1024.
    reference = np.linspace(0.1, 0.5, 10)
    system = reference + np.linspace(0.05, 0.2, 10)
    assert randomization_test(system, reference, resamples=10_000) == 2 / 1024


def test_monte_carlo_randomization_when_enumeration_is_too_large():
    # 30 queries all won: the chance a random pattern reaches the observed mean is 2 / 2^30, so
    # (almost surely) no hit, and p = 1 / (resamples + 1).
    reference = np.zeros(30)
    system = np.full(30, 0.1) + np.arange(30) / 1000
    assert randomization_test(system, reference, resamples=2_000, seed=3) == 1 / 2_001


def test_identical_and_cancelling_systems_are_not_significant():
    scores = np.array([0.2, 0.4, 0.6, 0.8])
    assert randomization_test(scores, scores) == 1.0
    assert paired_ttest(scores, scores) == 1.0
    # differences +0.1, -0.1, +0.1, -0.1: mean 0; every sign pattern reaches |0|
    assert randomization_test(scores + [0.1, -0.1, 0.1, -0.1], scores) == 1.0


def test_ttest_matches_the_textbook_formula():
    from scipy import stats

    reference = np.array([0.30, 0.42, 0.51, 0.27, 0.66, 0.48, 0.35])
    system = np.array([0.41, 0.40, 0.62, 0.35, 0.70, 0.55, 0.33])
    differences = system - reference
    t = differences.mean() / (differences.std(ddof=1) / math.sqrt(len(differences)))
    expected = 2 * stats.t.sf(abs(t), df=len(differences) - 1)
    assert paired_ttest(system, reference) == pytest.approx(expected, rel=1e-12)


def test_compare_pairs_queries_by_id_and_reports_the_delta():
    reference = {"q1": 0.2, "q2": 0.4, "q3": 0.6}
    system = {"q3": 0.9, "q1": 0.3, "q2": 0.5}  # +0.1, +0.1, +0.3 in another order
    result = compare(system, reference)
    assert result.delta == pytest.approx(0.5 / 3)
    assert result.p_value == 2 / 8  # 3 queries: exact over the 8 sign patterns
    assert not result.significant(0.05)
    assert compare(system, reference, method="ttest").p_value < 1.0
    with pytest.raises(ValueError, match="same queries"):
        compare({"q1": 0.1}, reference)

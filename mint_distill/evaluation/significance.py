"""Paired significance tests of one system against a reference, over the same queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Method = Literal["randomization", "ttest"]


@dataclass(frozen=True)
class Comparison:
    """A system's mean difference from the reference on one measure, and its two-sided p-value."""

    delta: float
    p_value: float

    def significant(self, alpha: float) -> bool:
        return self.p_value < alpha


def randomization_test(a: np.ndarray, b: np.ndarray, resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired randomization (sign-flip permutation) test of mean(a - b) = 0.

    Each query's difference keeps or flips its sign with probability 1/2. With at most
    `resamples` sign patterns (2^n for n queries) every pattern is enumerated and the p-value is
    exact; otherwise `resamples` random patterns are drawn and p = (hits + 1) / (resamples + 1).
    """
    differences = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if differences.ndim != 1 or len(a) != len(b):
        raise ValueError("paired tests need two score vectors of the same length")
    if not differences.size or not np.any(differences):
        return 1.0
    observed = abs(differences.mean())
    tolerance = 1e-12 * max(1.0, observed)
    n = differences.size
    if n < 63 and 2**n <= resamples:
        patterns = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1
        hits = np.count_nonzero(np.abs(patterns @ differences) / n >= observed - tolerance)
        return float(hits / 2**n)
    generator = np.random.default_rng(seed)
    hits = 0
    for start in range(0, resamples, 4096):
        count = min(4096, resamples - start)
        signs = generator.integers(0, 2, size=(count, n), dtype=np.int8) * 2 - 1
        hits += int(np.count_nonzero(np.abs(signs @ differences) / n >= observed - tolerance))
    return (hits + 1) / (resamples + 1)


def paired_ttest(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired Student t-test p-value (1.0 when the two systems never differ)."""
    from scipy import stats

    differences = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if differences.size < 2 or not np.any(differences):
        return 1.0
    if np.all(differences == differences[0]):
        return 0.0  # a constant non-zero difference: the t statistic is infinite
    return float(stats.ttest_rel(a, b).pvalue)


def compare(
    system: dict[str, float],
    reference: dict[str, float],
    method: Method = "randomization",
    resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Mean difference `system - reference` over their queries and the paired test's p-value."""
    if set(system) != set(reference):
        missing = sorted(set(system) ^ set(reference))[:5]
        raise ValueError(f"paired tests need the same queries in both systems; differing: {missing}")
    qids = sorted(reference)
    a = np.array([system[qid] for qid in qids])
    b = np.array([reference[qid] for qid in qids])
    delta = float(a.mean() - b.mean()) if qids else 0.0
    if method == "ttest":
        return Comparison(delta, paired_ttest(a, b))
    return Comparison(delta, randomization_test(a, b, resamples=resamples, seed=seed))

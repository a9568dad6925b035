"""The quantization study: fresh processes per setting, agreement with the unquantized scores, the sample."""

from __future__ import annotations

import pytest
from fixtures.tiny_lm import save_tiny_llama

from mint_distill.filtering.bench import (
    BENCH_REQUESTS,
    format_table,
    quantization_study,
    yelp_items,
)
from mint_distill.fresh_process import in_fresh_process


def test_the_study_compares_8bit_with_unquantized_scores_of_the_same_pairs(tmp_path, monkeypatch):
    from scipy.stats import spearmanr

    from mint_distill.filtering import bench

    scores = {}

    def recording(function, model, quantization, *args):
        result = in_fresh_process(function, model, quantization, *args)
        scores[quantization] = result["scores"]
        return result

    monkeypatch.setattr(bench, "in_fresh_process", recording)
    model = save_tiny_llama(tmp_path / "llama")
    items = ["Neptune Oyster. Seafood. Lobster rolls.", "Jiffy Lube. Oil change.", "Wally's Cafe. Live jazz bar."]
    results = quantization_study(
        str(model), items, BENCH_REQUESTS[:2], quantizations=("none", "8bit"), batch_size=4, threads=1
    )
    same, eight = results
    assert sorted(scores) == ["8bit", "none"]  # the unquantized reference is scored once
    # unquantized against itself agrees on everything
    assert same.keep_agreement == 1.0
    assert same.spearman == pytest.approx(1.0) and same.spearman_within_request == pytest.approx(1.0)
    assert eight.quantization == "8bit" and eight.pairs == 6
    assert eight.spearman > 0.9  # summed scores of one model under int8 rounding; a broken pairing would not correlate
    # pairs are request-major; keep_fraction 0.5 keeps the best ceil(3 * 0.5) = 2 of each request's 3 items
    reference, quantized = scores["none"], scores["8bit"]
    requests = [slice(0, 3), slice(3, 6)]

    def kept(values):
        return [
            position in sorted(range(own.start, own.stop), key=lambda i: -values[i])[:2]
            for own in requests
            for position in range(own.start, own.stop)
        ]

    assert eight.keep_agreement == sum(a == b for a, b in zip(kept(reference), kept(quantized))) / 6
    assert eight.spearman == pytest.approx(spearmanr(reference, quantized).statistic)
    assert eight.spearman_within_request == pytest.approx(
        sum(spearmanr(reference[own], quantized[own]).statistic for own in requests) / 2
    )
    assert eight.pairs_per_second > 0 and eight.peak_rss_mib > eight.weights_mib > 0
    assert "| 8bit | 6 |" in format_table(results)


@pytest.mark.integration
def test_the_yelp_sample_is_fixed_by_its_seed(shared_data):
    first = yelp_items(shared_data, count=5, seed=0)
    assert first == yelp_items(shared_data, count=5, seed=0) != yelp_items(shared_data, count=5, seed=1)
    assert len(set(first)) == 5 and all(text.count(". ") >= 3 for text in first)  # name. categories. place. tips

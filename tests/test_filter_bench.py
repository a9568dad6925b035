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


def test_the_study_compares_8bit_with_unquantized_scores_of_the_same_pairs(tmp_path):
    model = save_tiny_llama(tmp_path / "llama")
    items = ["Neptune Oyster. Seafood. Lobster rolls.", "Jiffy Lube. Oil change.", "Wally's Cafe. Live jazz bar."]
    results = quantization_study(str(model), items, BENCH_REQUESTS[:2], quantizations=("8bit",), batch_size=4, threads=1)
    (eight,) = results
    assert eight.quantization == "8bit" and eight.pairs == 6
    assert eight.spearman > 0.9  # summed scores of one model under int8 rounding; a broken pairing would not correlate
    assert -1.0 <= eight.spearman_within_request <= 1.0 and 0.0 <= eight.keep_agreement <= 1.0
    assert eight.pairs_per_second > 0 and eight.peak_rss_mib > eight.weights_mib > 0
    assert "| 8bit | 6 |" in format_table(results)


@pytest.mark.integration
def test_the_yelp_sample_is_fixed_by_its_seed(shared_data):
    first = yelp_items(shared_data, count=5, seed=0)
    assert first == yelp_items(shared_data, count=5, seed=0) != yelp_items(shared_data, count=5, seed=1)
    assert len(set(first)) == 5 and all(text.count(". ") >= 3 for text in first)  # name. categories. place. tips

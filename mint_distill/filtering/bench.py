"""Quantization study of the filter LM: agreement with the unquantized model, speed and memory.

Each setting runs in a fresh process so that its peak memory is its own. The fixed sample is
every (item, request) pair of a seeded draw of Yelp Boston businesses (rendered with their
categories, neighbourhood and tips) and the hand-written requests below.
"""

from __future__ import annotations

import json
import random
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..fresh_process import in_fresh_process
from .keep import KeepRule

BENCH_REQUESTS: tuple[str, ...] = (
    (
        "Visiting Boston for a long weekend with my wife. We love fresh seafood, especially oysters and "
        "lobster rolls, and don't mind a wait if the food is worth it. Where should we eat?"
    ),
    (
        "I'm a grad student on a tight budget. Any cheap places near downtown for a quick lunch, like "
        "sandwiches, soup or a good slice of pizza?"
    ),
    "Looking for a cozy coffee shop where I can sit for a few hours with my laptop. Good pastries are a plus.",
    "My friends and I want a lively bar with good beer on tap and maybe live music on a Friday night. Suggestions?",
    (
        "Planning a romantic dinner for our anniversary. Italian or French, candle-lit, great wine list, "
        "and we are happy to splurge."
    ),
    (
        "We're vegetarian and always struggle to find places with more than one option. Any restaurants "
        "with a real vegetarian menu, maybe Indian or Thai?"
    ),
    "Need a spot for a big weekend brunch with friends: pancakes, eggs benedict and strong coffee.",
    "Craving authentic Chinese food, dumplings and noodles, the kind of place locals go to in Chinatown.",
)


def yelp_items(data_dir: Path, count: int = 16, seed: int = 0) -> list[str]:
    """Texts of `count` Yelp Boston businesses with two or more tips, drawn with `seed`."""
    folder = Path(data_dir) / "yelp_boston_tips"
    tips: dict[str, list[str]] = {}
    with open(folder / "yelp_academic_dataset_tip.json", encoding="utf-8") as handle:
        for line in handle:
            tip = json.loads(line)
            tips.setdefault(tip["business_id"], []).append(tip["text"].strip())
    businesses = []
    with open(folder / "yelp_academic_dataset_business.json", encoding="utf-8") as handle:
        for line in handle:
            business = json.loads(line)
            if len(tips.get(business["business_id"], ())) >= 2:
                businesses.append(business)
    businesses.sort(key=lambda business: business["business_id"])
    chosen = random.Random(seed).sample(businesses, count)
    return [_render(business, tips[business["business_id"]][:3]) for business in chosen]


def _render(business: dict, tips: list[str]) -> str:
    place = ", ".join([*business.get("neighborhoods", []), business["city"]])
    return f"{business['name']}. {', '.join(business['categories'])}. {place}. " + " ".join(tips)


@dataclass(frozen=True)
class QuantizationResult:
    """One quantization setting compared with the unquantized model on the same pairs."""

    quantization: str
    pairs: int
    spearman: float
    spearman_within_request: float
    keep_agreement: float
    pairs_per_second: float
    peak_rss_mib: float
    weights_mib: float


def quantization_study(
    model: str,
    items: Sequence[str],
    requests: Sequence[str],
    quantizations: Sequence[str] = ("none", "8bit", "4bit"),
    *,
    batch_size: int = 16,
    keep_fraction: float = 0.5,
    threads: int | None = None,
) -> list[QuantizationResult]:
    """Score every (item, request) pair under each quantization, each in a fresh process.

    `spearman` is the rank correlation of summed log-likelihoods with the unquantized run over
    all pairs; `spearman_within_request` its mean over requests, ranking each request's items
    (what the keep rule sees); `keep_agreement` the share of pairs whose keep decision (top `keep_fraction` of the items,
    per request) is the same as unquantized. `peak_rss_mib` is the process's peak resident memory.
    """
    from scipy.stats import spearmanr

    item_texts = [item for _ in requests for item in items]
    request_texts = [request for request in requests for _ in items]
    runs = {}
    for quantization in dict.fromkeys(["none", *quantizations]):
        runs[quantization] = in_fresh_process(
            _score_in_this_process, model, quantization, item_texts, request_texts, batch_size, threads
        )
    reference = runs["none"]["scores"]
    rule = KeepRule("likelihood", keep_fraction=keep_fraction)
    reference_kept = _kept(rule, reference, len(items))
    results = []
    for quantization in quantizations:
        run = runs[quantization]
        kept = _kept(rule, run["scores"], len(items))
        results.append(QuantizationResult(
            quantization=quantization,
            pairs=len(item_texts),
            spearman=float(spearmanr(reference, run["scores"]).statistic),
            spearman_within_request=sum(
                float(spearmanr(reference[start:start + len(items)], run["scores"][start:start + len(items)]).statistic)
                for start in range(0, len(reference), len(items))
            ) / len(requests),
            keep_agreement=sum(a == b for a, b in zip(kept, reference_kept)) / len(kept),
            pairs_per_second=len(item_texts) / run["seconds"],
            peak_rss_mib=run["peak_rss_mib"],
            weights_mib=run["weights_mib"],
        ))
    return results


def _kept(rule: KeepRule, scores: list[float], items_per_request: int) -> list[bool]:
    kept = []
    for start in range(0, len(scores), items_per_request):
        own = scores[start:start + items_per_request]
        kept.extend(decision.kept for decision in rule.decide(str(start), len(own), own))
    return kept


def _score_in_this_process(
    model: str, quantization: str, items: list[str], requests: list[str], batch_size: int, threads: int | None
) -> dict:
    import torch

    from ..scoring import LikelihoodScorer

    if threads:
        torch.set_num_threads(threads)
    scorer = LikelihoodScorer(model, quantization=quantization, batch_size=batch_size)
    scorer.score(items[:1], requests[:1])  # load, and let bitsandbytes repack its weights, before timing
    start = time.perf_counter()
    scores = scorer.score(items, requests)
    seconds = time.perf_counter() - start
    return {
        "scores": scores,
        "seconds": seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "weights_mib": scorer.model.get_memory_footprint() / 2**20,
    }


def format_table(results: Sequence[QuantizationResult]) -> str:
    """A Markdown table of the study."""
    lines = [
        (
            "| quantization | pairs | Spearman vs none | within request | keep agreement | pairs/s "
            "| peak RSS (MiB) | weights (MiB) |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        lines.append(
            f"| {result.quantization} | {result.pairs} | {result.spearman:.4f} | {result.spearman_within_request:.4f} "
            f"| {result.keep_agreement:.3f} "
            f"| {result.pairs_per_second:.2f} | {result.peak_rss_mib:.0f} | {result.weights_mib:.0f} |"
        )
    return "\n".join(lines)

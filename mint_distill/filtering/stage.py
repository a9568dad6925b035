"""The `filter` stage: `pairs.jsonl` (every shown item with its score, rank and decision) and `summary.json`.

Scores (method `likelihood`) and vectors (method `encoder`) live in the run folder's `.cache/`
rather than the stage folder: the runner clears a stale stage folder, and a changed keep rule must
not cost a second scoring pass. The caches commit every batch, so an interrupted stage resumes
where it stopped; the small outputs are then written atomically in one go.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import write_json_atomic, write_jsonl_atomic
from ..pipeline import RUN_CACHE, register_stage
from ..pipeline.registry import Stage
from .keep import KeepRule
from .pairs import filter_requests, pair_texts
from .records import CatalogItem, SyntheticRequest, check_items_known, read_items, read_requests

if TYPE_CHECKING:
    from ..pipeline import RunResult, StageContext
    from ..recipe import Recipe
    from ..recipe.sections.filtering import FilterSection
    from ..scoring import LikelihoodScorer
    from .encoder import EncoderScorer

log = logging.getLogger("mint_distill.filter")

FILTER = "filter"
SCORE_CACHE = Path(RUN_CACHE) / "likelihood-scores.sqlite"
EXAMPLES = 3


def build_scorer(section: FilterSection, run_root: Path) -> LikelihoodScorer:
    """The recipe's filter LM, caching into the run folder."""
    from ..scoring import LikelihoodScorer

    return LikelihoodScorer(
        section.model, model_type=section.model_type, quantization=section.quantization, score=section.score,
        batch_size=section.batch_size, trust_remote_code=section.trust_remote_code, prompt=section.prompt,
        cache=run_root / SCORE_CACHE, max_item_tokens=section.max_item_tokens,
        max_request_tokens=section.max_request_tokens, precision=section.precision,
    )


def build_encoder_scorer(section: FilterSection, run_root: Path) -> EncoderScorer:
    """The recipe's filter bi-encoder, caching its vectors in the run folder (`.cache/encodings/`)."""
    from .encoder import EncoderScorer

    return EncoderScorer(
        section.model, batch_size=section.batch_size, precision=section.precision, cache_dir=run_root / RUN_CACHE
    )


def load_inputs(generate_dir: Path, data_dir: Path) -> tuple[list[SyntheticRequest], dict[str, CatalogItem]]:
    """The requests of the `generate` stage and the catalog of the `data` stage, cross-checked."""
    requests_path = generate_dir / "requests.jsonl"
    items_path = data_dir / "items.jsonl"
    requests, items = read_requests(requests_path), read_items(items_path)
    check_items_known(requests, items, requests_path, items_path)
    return requests, items


def prefill_scores(recipe: Recipe, shard: tuple[int, int] = (0, 1)) -> int:
    """Score one process's share of the pairs into the run's score cache; return how many it scored."""
    from ..pipeline.runner import run_root_of

    run_root = run_root_of(recipe)
    requests, items = load_inputs(run_root / "generate", run_root / "data")
    scorer = build_scorer(recipe.filter, run_root)
    try:
        scored = scorer.precompute(*pair_texts(requests, items), shard=shard)
    finally:
        scorer.close()
    log.info("process %d of %d scored %d pairs", shard[0], shard[1], scored)
    return scored


def summarize(requests: list[SyntheticRequest], items: dict[str, CatalogItem], records: list[dict]) -> dict[str, Any]:
    """Pairs in and out, and the kept and dropped items of the first few requests that dropped any."""
    by_request: dict[str, list[dict]] = {}
    for record in records:
        by_request.setdefault(record["request_id"], []).append(record)
    examples = []
    for request in requests:
        ranked = sorted(by_request.get(request.request_id, []), key=lambda record: record["rank"])
        if len(examples) < EXAMPLES and not all(record["kept"] for record in ranked):
            examples.append({
                "request_id": request.request_id,
                "request": request.text,
                "kept": [_example_item(record, items) for record in ranked if record["kept"]],
                "dropped": [_example_item(record, items) for record in ranked if not record["kept"]],
            })
    kept = sum(record["kept"] for record in records)
    return {
        "requests": len(requests),
        "requests_without_items": sum(not request.item_ids for request in requests),
        "pairs_in": len(records),
        "pairs_kept": kept,
        "pairs_dropped": len(records) - kept,
        "examples": examples,
    }


def _example_item(record: dict, items: dict[str, CatalogItem]) -> dict:
    return {"item_id": record["item_id"], "name": items[record["item_id"]].name, "score": record["score"], "rank": record["rank"]}


# Pairs the processes of a launch scored into the cache just before the main process runs the
# stage (`run_filter_stage`), which then finds them cached: they count as scored by this run.
_PREFILLED: ContextVar[int] = ContextVar("pairs_prefilled", default=0)


def run_filter(ctx: StageContext) -> dict[str, Any]:
    section = ctx.recipe.filter
    requests, items = load_inputs(ctx.upstream("generate"), ctx.upstream("data"))
    rule = KeepRule.from_section(section)
    scorer: LikelihoodScorer | EncoderScorer | None = None
    scored_now = 0
    if rule.method == "likelihood":
        scorer = build_scorer(section, ctx.run_root)
        scored_now = _PREFILLED.get() + scorer.precompute(*pair_texts(requests, items))
    elif rule.method == "encoder":
        scorer = build_encoder_scorer(section, ctx.run_root)
    try:
        records = filter_requests(requests, items, rule, scorer)
    finally:
        if scorer is not None:
            scorer.close()
    write_jsonl_atomic(ctx.dir / "pairs.jsonl", records)
    summary = {"method": rule.method, **summarize(requests, items, records)}
    if rule.method == "likelihood":
        summary["pairs_scored_now"] = scored_now
        summary["pairs_from_cache"] = summary["pairs_in"] - scored_now
    elif rule.method == "encoder":
        summary["texts_encoded_now"] = scorer.encoded
    write_json_atomic(ctx.dir / "summary.json", summary)
    ctx.log.info("kept %d of %d pairs (%d requests)", summary["pairs_kept"], summary["pairs_in"], summary["requests"])
    return {key: value for key, value in summary.items() if key != "examples"}


_OPTIONS: dict[str, Any] = {
    "summary": "score each request's shown items (LM likelihood or bi-encoder similarity) and keep the ones that best explain it",
    "config_keys": (FILTER,),
    "reports": ("summary.json",),  # counts of pairs scored now or cached: a rerun from the cache changes them
    "after": ("data", "generate"),
}
FILTER_STAGE = Stage(name=FILTER, run=run_filter, **_OPTIONS)
register_stage(FILTER, **_OPTIONS)(run_filter)


def run_filter_stage(recipe: Recipe, *, force: bool = False, quiet: bool = False) -> RunResult | None:
    """Run the recipe's filter stage alone (skipped when fresh unless `force`).

    Under `accelerate launch` every process first scores its share of the pairs into the run's
    score cache (method `likelihood`; the `encoder` method runs on the main process alone), unless
    the stage is fresh or another run's finished filter stage will be reused; the main process
    then runs the stage, which finds every score cached. Returns the run result on the main
    process and None on the others.
    """
    from accelerate.utils import gather_object

    from ..pipeline import run_pipeline, stage_states
    from ..pipeline.runner import reusable_sibling, run_root_of
    from ..scoring import process_state

    state = process_state()
    prefilled = 0
    if state.num_processes > 1:
        (stage_state,) = stage_states(recipe, [FILTER_STAGE])
        reused = (
            not force
            and recipe.reuse_stages
            and reusable_sibling(FILTER_STAGE, stage_state, run_root_of(recipe)) is not None
        )
        state.wait_for_everyone()  # every process has read the stage's state before anything changes it
        if recipe.filter.method == "likelihood" and (force or stage_state.status != "fresh") and not reused:
            scored = prefill_scores(recipe, shard=(state.process_index, state.num_processes))
            prefilled = sum(gather_object([scored]))
        state.wait_for_everyone()
    if not state.is_main_process:
        return None
    token = _PREFILLED.set(prefilled)
    try:
        return run_pipeline(recipe, stages=[FILTER_STAGE], force=(FILTER,) if force else (), quiet=quiet)
    finally:
        _PREFILLED.reset(token)

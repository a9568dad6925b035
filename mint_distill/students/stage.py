"""Stages `train-biencoder`, `average-biencoder`, `mine-negatives` and `train-crossencoder`.

Training stages dispatch their job through `students.job`, so under `mint-distill train`
launched with `accelerate launch` every process trains while only the main process runs the
pipeline. Checkpoints live in each stage folder's `.checkpoints/`; an interrupted stage
resumes from the latest one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..io import sha256_json, write_jsonl_atomic
from ..pipeline import StageContext, register_stage
from ..pipeline.manifest import fingerprint
from ..pipeline.registry import Stage
from ..pipeline.runner import config_dump
from ..recipe import Recipe
from .data import (
    DEV_RANKINGS_FILE,
    ITEMS_FILE,
    MODEL_DIR,
    NEGATIVES_FILE,
    PAIRS_FILE,
    REQUESTS_FILE,
)

TRAIN_BIENCODER = "train-biencoder"
# The bi-encoder as later stages use it and serving gets it (`<run>/average-biencoder/model`).
AVERAGE_BIENCODER = "average-biencoder"
MINE_NEGATIVES = "mine-negatives"
TRAIN_CROSSENCODER = "train-crossencoder"
# Applied to the trained student by AVERAGE_BIENCODER: changing them does not retrain it.
SAVE_TIME_KEYS = ("students.biencoder.finetuned_weight", "students.biencoder.inference_max_seq_length")
TEXT_STAGES = ("data", "generate", "filter")


def seed_of(recipe: Recipe, training_seed: int | None) -> int:
    return recipe.seed if training_seed is None else training_seed


def provenance(ctx: StageContext) -> dict[str, Any]:
    """Recipe name, sha256 of the whole recipe, and this stage's config hash (as in its manifest)."""
    config = ctx.stage.config(config_dump(ctx.recipe))
    return {
        "recipe_name": ctx.recipe.name,
        "recipe_sha256": sha256_json(ctx.recipe.model_dump(mode="json")),
        "config_hash": fingerprint(config, ctx.stage.version, {}, {})["config_hash"],
        "stage": ctx.stage.name,
    }


def text_inputs(ctx: StageContext) -> dict[str, str]:
    return {
        "pairs": str(ctx.upstream("filter") / PAIRS_FILE),
        "requests": str(ctx.upstream("generate") / REQUESTS_FILE),
        "items": str(ctx.upstream("data") / ITEMS_FILE),
    }


def _stage(name: str, **options: Any) -> Callable[[Callable], Stage]:
    """Register the decorated function as stage `name` and return its `Stage` (for `mint-distill train`)."""

    def decorate(run: Callable) -> Stage:
        register_stage(name, **options)(run)
        return Stage(name=name, run=run, **options)

    return decorate


def _crossencoder_problems(recipe: Recipe) -> list[str]:
    if not recipe.students.biencoder.enabled:
        return [
            (
                "students.crossencoder.enabled needs students.biencoder.enabled: its negatives are mined "
                "with the trained bi-encoder"
            )
        ]
    return []


def _crossencoder_lora_problems(recipe: Recipe) -> list[str]:
    from ..models.lora_targets import lora_target_problem

    spec = recipe.students.crossencoder
    if spec.finetune != "lora":
        return []
    problem = lora_target_problem(
        spec.model,
        spec.lora,
        "students.crossencoder.lora",
        head="sequence-classification",
        trust_remote_code=spec.trust_remote_code,
    )
    return [problem] if problem else []


def _crossencoder_unused(recipe_dump: dict) -> tuple[str, ...]:
    """A fully fine-tuned cross-encoder reads neither key: its fingerprint stays the one it had
    before they existed."""
    if recipe_dump["students"]["crossencoder"]["finetune"] == "lora":
        return ()
    return ("students.crossencoder.finetune", "students.crossencoder.lora")


def _biencoder_problems(recipe: Recipe) -> list[str]:
    from ..models.lora_targets import lora_target_problem

    spec = recipe.students.biencoder
    problems = []
    if spec.training.select_by == "fused_mrr@10":
        problems.append(
            "students.biencoder.training.select_by: fused_mrr@10 measures the cross-encoder fused with "
            "the bi-encoder; the bi-encoder selects by mrr@10, recall@10 or loss"
        )
    if spec.finetune == "lora":
        problem = lora_target_problem(
            spec.model, spec.lora, "students.biencoder.lora", trust_remote_code=spec.trust_remote_code
        )
        if problem:
            problems.append(problem)
    return problems


@_stage(
    TRAIN_BIENCODER,
    summary="train the bi-encoder student (BiEnc-Mint) on the kept pairs; dev selection, checkpoints",
    config_keys=("seed", "students.biencoder"),
    config_excluded=SAVE_TIME_KEYS,
    version=3,  # 2: saves the trained weights at the training length; the next stage averages them;
    # 3: no in-batch negative is an item shown for the request
    after=TEXT_STAGES,
    enabled=lambda recipe: recipe.students.biencoder.enabled,
    check=_biencoder_problems,
)
def train_biencoder_stage(ctx: StageContext) -> dict[str, Any]:
    from .job import dispatch

    spec = ctx.recipe.students.biencoder
    return dispatch(
        {
            "kind": "biencoder",
            "arguments": {
                "spec": spec.model_dump(mode="json"),
                **text_inputs(ctx),
                "out_dir": str(ctx.dir),
                "seed": seed_of(ctx.recipe, spec.training.seed),
                "resume": ctx.resuming,
                "provenance": provenance(ctx),
            },
        }
    )


@_stage(
    AVERAGE_BIENCODER,
    summary="the trained bi-encoder averaged with its base (WiSE-FT) and set to its inference length",
    config_keys=("students.biencoder.model", "students.biencoder.trust_remote_code", *SAVE_TIME_KEYS),
    after=(TRAIN_BIENCODER,),
    enabled=lambda recipe: recipe.students.biencoder.enabled,
)
def average_biencoder_stage(ctx: StageContext) -> dict[str, Any]:
    from .averaging import save_averaged_student

    spec = ctx.recipe.students.biencoder
    saved = save_averaged_student(
        ctx.upstream(TRAIN_BIENCODER) / MODEL_DIR,
        ctx.dir / MODEL_DIR,
        base_model=spec.model,
        finetuned_weight=spec.finetuned_weight,
        inference_max_seq_length=spec.inference_max_seq_length,
        trust_remote_code=spec.trust_remote_code,
    )
    if saved.averaged_tensors:
        ctx.log.info(
            "averaged %d tensors with the base at weight %g", saved.averaged_tensors, spec.finetuned_weight
        )
    return {
        "finetuned_weight": spec.finetuned_weight,
        "inference_max_seq_length": saved.inference_max_length,
        "averaged_tensors": saved.averaged_tensors,
    }


@_stage(
    MINE_NEGATIVES,
    summary="rank the catalog with the trained bi-encoder; negatives for each kept pair from a rank window",
    config_keys=("seed", "students.negatives", "students.crossencoder.rerank_top_k"),
    version=2,  # 2: also writes the dev requests' scored rankings
    after=(*TEXT_STAGES, AVERAGE_BIENCODER),
    enabled=lambda recipe: recipe.students.crossencoder.enabled,
    check=_crossencoder_problems,
)
def mine_negatives_stage(ctx: StageContext) -> dict[str, Any]:
    from ..adapters.loading import load_encoder
    from ..models.precision import autocast
    from .data import load_student_data
    from .negatives import dense_rankings, effective_window, mine_negatives

    spec = ctx.recipe.students.negatives
    inputs = text_inputs(ctx)
    data = load_student_data(inputs["pairs"], inputs["requests"], inputs["items"])
    pairs = data.train + data.dev
    window = effective_window(spec.rank_start, spec.rank_end, len(data.items), spec.per_positive)
    model = load_encoder(ctx.upstream(AVERAGE_BIENCODER) / MODEL_DIR, merge=True)  # full or LoRA-tuned
    requests = {p.request_id: data.requests[p.request_id] for p in pairs}
    with autocast(spec.precision, model.device.type):
        scored = dense_rankings(
            model,
            requests,
            data.items,
            # deep enough for the window and for the candidates the cross-encoder's dev reranks
            depth=min(len(data.items), max(2 * window[1], ctx.recipe.students.crossencoder.rerank_top_k)),
            batch_size=spec.encode_batch_size,
            cache_dir=ctx.dir / ".embeddings",
        )
    records = mine_negatives(
        {request_id: [item for item, _ in ranking] for request_id, ranking in scored.items()},
        pairs,
        data.shown,
        window=window,
        per_positive=spec.per_positive,
        seed=ctx.recipe.seed,
    )
    write_jsonl_atomic(ctx.dir / NEGATIVES_FILE, records)
    write_jsonl_atomic(
        ctx.dir / DEV_RANKINGS_FILE,
        [
            {
                "request_id": request_id,
                "ranking": [item for item, _ in scored[request_id]],
                "scores": [score for _, score in scored[request_id]],
            }
            for request_id in dict.fromkeys(pair.request_id for pair in data.dev)
        ],
    )
    short = sum(len(r["negatives"]) < spec.per_positive for r in records)
    if short:
        ctx.log.warning(
            "%d of %d pairs got fewer than %d negatives (small catalog)",
            short,
            len(records),
            spec.per_positive,
        )
    ctx.log.info(
        "mined %d negatives per pair from ranks %d-%d of %d items",
        spec.per_positive,
        *window,
        len(data.items),
    )
    return {
        **data.counts(),
        "groups": len(records),
        "window_start": window[0],
        "window_end": window[1],
        "pairs_with_fewer_negatives": short,
    }


@_stage(
    TRAIN_CROSSENCODER,
    summary="train the cross-encoder student (CrEnc-Mint) on kept pairs and mined negatives",
    config_keys=("seed", "students.crossencoder"),
    config_unused=_crossencoder_unused,
    version=3,  # 2: dev MRR@10 / Recall@10 rerank the bi-encoder's top k; 3: saved to predict logits
    after=(*TEXT_STAGES, MINE_NEGATIVES),
    enabled=lambda recipe: recipe.students.crossencoder.enabled,
    check=_crossencoder_lora_problems,
)
def train_crossencoder_stage(ctx: StageContext) -> dict[str, Any]:
    from .job import dispatch

    spec = ctx.recipe.students.crossencoder
    return dispatch(
        {
            "kind": "crossencoder",
            "arguments": {
                "spec": spec.model_dump(mode="json"),
                **text_inputs(ctx),
                "negatives": str(ctx.upstream(MINE_NEGATIVES) / NEGATIVES_FILE),
                "dev_rankings": str(ctx.upstream(MINE_NEGATIVES) / DEV_RANKINGS_FILE),
                "out_dir": str(ctx.dir),
                "seed": seed_of(ctx.recipe, spec.training.seed),
                "resume": ctx.resuming,
                "provenance": provenance(ctx),
            },
        }
    )


STUDENT_STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        train_biencoder_stage,
        average_biencoder_stage,
        mine_negatives_stage,
        train_crossencoder_stage,
    )
}

"""The `tune-teacher` and `generate` pipeline stages."""

from __future__ import annotations

from pathlib import Path

from ..errors import MintError
from ..io import sha256_file, write_json_atomic, write_jsonl_atomic
from ..pipeline import StageContext, register_stage
from ..recipe import Recipe
from .distributed import process_state
from .gates import GateSettings
from .histories import History, load_seeds, load_users
from .prompts import PromptBuilder, PromptTemplate, load_template
from .tuning import ADAPTER, CHECKPOINTS

PROMPT_KEYS = ("teacher.kind", "teacher.model", "teacher.trust_remote_code", "teacher.prompt")


def uses_llm(recipe: Recipe) -> bool:
    """Whether the LLM teacher writes any request (for users, or for catalog pseudo-histories)."""
    return "llm" in recipe.teacher.kinds(recipe.data.catalog.enabled)


def seeds_file(recipe: Recipe) -> Path:
    return Path(recipe.teacher.tuning.seeds)


def prompt_template(recipe: Recipe) -> PromptTemplate:
    return (
        load_template(recipe.teacher.prompt.template)
        if recipe.teacher.prompt.template
        else PromptTemplate()
    )


def teacher_input_files(recipe: Recipe) -> list[Path]:
    if not uses_llm(recipe):
        return []
    files = [seeds_file(recipe)]
    if recipe.teacher.prompt.template:
        files.append(Path(recipe.teacher.prompt.template))
    return files


def teacher_problems(recipe: Recipe) -> list[str]:
    problems = []
    try:
        seeds = load_seeds(seeds_file(recipe))
        if not any(s.split == "train" for s in seeds):
            problems.append(f"teacher.tuning.seeds: {seeds_file(recipe)} has no train seeds")
        tuning = recipe.teacher.tuning
        if tuning.enabled and tuning.select_by == "dev_loss" and not any(s.split == "dev" for s in seeds):
            problems.append(f"teacher.tuning.select_by: dev_loss needs dev seeds; {seeds_file(recipe)} has none")
    except MintError as error:
        problems.append(f"teacher.tuning.seeds: {error}")
    try:
        prompt_template(recipe)
    except MintError as error:
        problems.append(str(error))
    return problems


def _check_tuning(recipe: Recipe) -> list[str]:
    from ..models.lora_targets import lora_target_problem

    teacher = recipe.teacher
    lora_problem = lora_target_problem(
        teacher.model,
        teacher.tuning.lora,
        "teacher.tuning.lora",
        head="causal-lm",
        trust_remote_code=teacher.trust_remote_code,
    )
    return [*teacher_problems(recipe), *([lora_problem] if lora_problem else [])]


def _check_generate(recipe: Recipe) -> list[str]:
    return teacher_problems(recipe) if uses_llm(recipe) else []


def _join_other_processes() -> None:
    """Under `accelerate launch`, wait until every process has entered the stage."""
    process_state().wait_for_everyone()


@register_stage(
    "tune-teacher",
    summary="LoRA-tune the teacher LLM on the seed pairs (loss on the request tokens)",
    config_keys=(*PROMPT_KEYS, "teacher.tuning"),
    input_files=teacher_input_files,
    enabled=lambda recipe: uses_llm(recipe) and recipe.teacher.tuning.enabled,
    check=_check_tuning,
    # timings, here and in the adapter's card; generate reads the adapter's weights
    reports=("summary.json", "log.json", f"{ADAPTER}/README.md"),
    scratch=(CHECKPOINTS,),
)
def run_tune_teacher(ctx: StageContext) -> dict:
    from .card import write_adapter_card
    from .tuning import tune_teacher

    _join_other_processes()
    teacher = ctx.recipe.teacher
    seeds = load_seeds(seeds_file(ctx.recipe))
    summary = tune_teacher(
        teacher.model,
        seeds,
        ctx.dir,
        tuning=teacher.tuning,
        prompt=teacher.prompt,
        template=prompt_template(ctx.recipe),
        trust_remote_code=teacher.trust_remote_code,
    ).summary
    if process_state().is_main_process:
        hyperparameters = {
            **{f"lora.{k}": v for k, v in teacher.tuning.lora.model_dump().items()},
            **teacher.tuning.model_dump(exclude={"lora", "seeds", "enabled"}),
            **{f"prompt.{k}": v for k, v in teacher.prompt.model_dump().items()},
        }
        seeds_path = seeds_file(ctx.recipe)
        write_adapter_card(
            ctx.dir / ADAPTER,
            summary=summary,
            hyperparameters=hyperparameters,
            seeds_file=seeds_path.as_posix(),
            seeds_sha256=sha256_file(seeds_path),
        )
        write_json_atomic(ctx.dir / "summary.json", summary)
    return summary


@register_stage(
    "generate",
    summary="write synthetic narrative requests for every user with the (tuned) teacher or the template",
    config_keys=(
        *PROMPT_KEYS,
        "teacher.catalog_kind",
        "teacher.request_prefix",
        "teacher.template",
        "teacher.tuning.enabled",
        "teacher.tuning.seeds",
        "teacher.generation",
    ),
    after=("data", "tune-teacher"),
    input_files=teacher_input_files,
    check=_check_generate,
    # timings; the filter and the students read requests.jsonl
    reports=("summary.json",),
)
def run_generate(ctx: StageContext) -> dict:
    _join_other_processes()
    users = generated_users(ctx)
    by_llm = written_by(ctx.recipe, "llm", users)
    by_template = written_by(ctx.recipe, "template", users)
    if not by_llm:
        return _generate_from_template(ctx, users) if process_state().is_main_process else {}
    summary = _generate_with_llm(ctx, by_llm)
    if by_template and process_state().is_main_process:
        summary = _add_template_requests(ctx, users, by_template, summary)
    return summary


def _add_template_requests(
    ctx: StageContext, users: list[History], by_template: list[History], llm_summary: dict
) -> dict:
    """Add the template teacher's requests for `by_template` to the LLM's, in the order of `users`."""
    from ..io import read_jsonl
    from .synthesis import REQUESTS, origin_counts, work_units
    from .template_teacher import template_records

    teacher = ctx.recipe.teacher
    units = work_units(users, teacher.generation.requests_per_user)
    records = list(read_jsonl(ctx.dir / REQUESTS)) + template_records(
        work_units(by_template, teacher.generation.requests_per_user),
        spec=teacher.template,
        request_prefix=teacher.request_prefix,
        seed=teacher.generation.seed,
    )
    order = {unit.request_id: position for position, unit in enumerate(units)}
    records.sort(key=lambda record: order[record["request_id"]])
    history_counts = _history_counts(users, units, teacher.request_prefix)
    summary = {
        **llm_summary,
        "teacher_by_origin": {
            origin: teacher.kind_for(origin) for origin in history_counts["users_by_origin"]
        },
        **history_counts,
        "requests": write_jsonl_atomic(ctx.dir / REQUESTS, records),
        "requests_by_origin": origin_counts(record["origin"] for record in records),
        "template_requests": len(records) - llm_summary["requests"],
    }
    write_json_atomic(ctx.dir / "summary.json", summary)
    return summary


def _generate_from_template(ctx: StageContext, users: list[History]) -> dict:
    from .synthesis import work_units
    from .template_teacher import write_template_requests

    teacher = ctx.recipe.teacher
    units = work_units(users, teacher.generation.requests_per_user)
    counts = write_template_requests(
        units,
        ctx.dir,
        spec=teacher.template,
        request_prefix=teacher.request_prefix,
        seed=teacher.generation.seed,
    )
    summary = {
        "teacher": "template",
        **_history_counts(users, units, teacher.request_prefix),
        **counts,
        "rejected": 0,
    }
    write_json_atomic(ctx.dir / "summary.json", summary)
    return summary


def _history_counts(users: list[History], units: list, request_prefix: str | None) -> dict:
    """What every generate summary says about the histories it was given."""
    from .synthesis import origin_counts

    return {
        "users": len(users),
        "users_by_origin": origin_counts(user.origin for user in users),
        "requests_wanted": len(units),
        "users_without_prefix": _without_prefix(request_prefix, users),
    }


def _without_prefix(request_prefix: str | None, users: list[History]) -> int:
    """Histories whose requests go without the prefix because a field it needs is unknown."""
    from .prefix import render_prefix

    if request_prefix is None:
        return 0
    return sum(1 for user in users if render_prefix(request_prefix, user) is None)


def _generate_with_llm(ctx: StageContext, users: list[History]) -> dict:
    from ..io import read_jsonl
    from .generation import load_teacher
    from .synthesis import REQUESTS, merge_shards, origin_counts, synthesize, work_units

    state = process_state()
    teacher, generation = ctx.recipe.teacher, ctx.recipe.teacher.generation
    adapter = tuned_adapter(ctx)
    model, tokenizer = load_teacher(
        teacher.model,
        adapter,
        trust_remote_code=teacher.trust_remote_code,
        precision=generation.precision,
    )
    builder = prompt_builder(ctx.recipe, tokenizer, teacher.prompt.num_examples)
    sampler = request_sampler(ctx.recipe, model, tokenizer, builder)
    units = work_units(users, generation.requests_per_user)
    settings = {
        "teacher": teacher.model,
        "adapter": adapter is not None,
        **generation.model_dump(
            include={"temperature", "top_k", "top_p", "repetition_penalty", "max_new_tokens", "do_sample", "precision"}
        ),
    }
    run_counts = synthesize(
        units,
        ctx.dir,
        builder=builder,
        sampler=sampler,
        gates=gate_settings(ctx.recipe),
        batch_size=generation.batch_size,
        max_retries=generation.max_retries,
        seed=generation.seed,
        prompt_seed=teacher.prompt.seed,
        settings=settings,
        request_prefix=teacher.request_prefix,
        rank=state.process_index,
        world=state.num_processes,
    )
    run_counts = _sum_over_processes(run_counts)
    if not state.is_main_process:
        return {}
    merged = merge_shards(ctx.dir, units)
    summary = {
        "teacher": "llm",
        **_history_counts(users, units, teacher.request_prefix),
        **merged,
        "requests_by_origin": origin_counts(r["origin"] for r in read_jsonl(ctx.dir / REQUESTS)),
        **run_counts,
        "processes": state.num_processes,
        "tokens_per_second_this_run": _rate(
            run_counts["tokens_this_run"], run_counts["seconds_this_run"]
        ),
        "requests_per_second_this_run": _rate(
            run_counts["finished_this_run"], run_counts["seconds_this_run"]
        ),
    }
    write_json_atomic(ctx.dir / "summary.json", summary)
    return summary


def generated_users(ctx: StageContext) -> list[History]:
    """The histories generate writes requests for: the data stage's, up to `teacher.generation.max_users`."""
    return load_users(ctx.upstream("data") / "users.jsonl")[: ctx.recipe.teacher.generation.max_users]


def written_by(recipe: Recipe, kind: str, users: list[History]) -> list[History]:
    """The histories of `users` whose requests the `kind` teacher ("llm", "template") writes."""
    return [user for user in users if recipe.teacher.kind_for(user.origin) == kind]


def tuned_adapter(ctx: StageContext) -> Path | None:
    """The tune-teacher stage's adapter folder; None where the teacher is not tuned."""
    if not ctx.recipe.teacher.tuning.enabled:
        return None
    adapter = ctx.upstream("tune-teacher") / ADAPTER
    if not (adapter / "adapter_config.json").is_file():
        raise MintError(
            f"{adapter}: no adapter; run `mint-distill tune-teacher` first (or set teacher.tuning.enabled: false)"
        )
    return adapter


def prompt_builder(recipe: Recipe, tokenizer, num_examples: int) -> PromptBuilder:
    """Prompts with up to `num_examples` few-shot examples drawn from the train seeds."""
    teacher = recipe.teacher
    return PromptBuilder(
        tokenizer,
        [s for s in load_seeds(seeds_file(recipe)) if s.split == "train"],
        template=prompt_template(recipe),
        num_examples=num_examples,
        max_tokens=teacher.prompt.max_tokens,
        chat=teacher.prompt.chat,
    )


def request_sampler(recipe: Recipe, network, tokenizer, builder: PromptBuilder):
    """A `RequestSampler` with the recipe's `teacher.generation` sampling settings."""
    from .generation import RequestSampler

    options = recipe.teacher.generation.model_dump(
        include={"max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "repetition_penalty", "stop"}
    )
    return RequestSampler(network, tokenizer, add_special_tokens=builder.add_special_tokens, **options)


def gate_settings(recipe: Recipe) -> GateSettings:
    generation = recipe.teacher.generation
    return GateSettings(
        min_words=generation.min_words,
        max_words=generation.max_words,
        max_repetition=generation.max_repetition,
        copy_span=generation.copy_span,
        check_item_names=generation.check_item_names,
    )


def _sum_over_processes(counts: dict) -> dict:
    """Every process's counts added up (seconds: the slowest process); waits for all processes."""
    from accelerate.utils import gather_object

    everyone = gather_object([counts]) if process_state().num_processes > 1 else [counts]
    return {
        k: max(c[k] for c in everyone)
        if k == "seconds_this_run"
        else round(sum(c[k] for c in everyone), 2)
        for k in counts
    }


def _rate(count: float, seconds: float) -> float | None:
    return round(count / seconds, 2) if seconds else None

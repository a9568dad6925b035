"""The `teacher-report` pipeline stage: how the tuned teacher compares with the untuned one.

A stage of its own, after generate, so that changing a `teacher.report` key reruns only the
report and never regenerates the requests.
"""

from __future__ import annotations

from ..io import write_json_atomic, write_jsonl_atomic, write_text_atomic
from ..pipeline import StageContext, register_stage
from ..recipe import Recipe
from .distributed import process_state
from .gates import GateSettings
from .histories import ORIGINS, History, Seed, load_seeds
from .report import REPORT_FILE, SAMPLES_FILE
from .stage import (
    PROMPT_KEYS,
    gate_settings,
    generated_users,
    prompt_builder,
    prompt_template,
    request_sampler,
    seeds_file,
    teacher_input_files,
    tuned_adapter,
    uses_llm,
    written_by,
)

_ROW_ORDER = ("untuned teacher", "tuned teacher", "teacher, no adapter", "seed requests")
_ORIGIN_NAMES = {"history": "all users' histories", "catalog": "all catalog pseudo-histories"}


def report_enabled(recipe: Recipe) -> bool:
    return uses_llm(recipe) and recipe.teacher.report.enabled


@register_stage(
    "teacher-report",
    summary="sample the untuned and the tuned teacher on the dev seeds and the first users; "
    "round-trip retrievability and diversity of theirs, the seeds' and the generated requests",
    config_keys=(
        *PROMPT_KEYS,
        "teacher.catalog_kind",
        "teacher.tuning.enabled",
        "teacher.tuning.seeds",
        "teacher.generation",
        "teacher.report",
    ),
    after=("data", "tune-teacher", "generate"),
    input_files=teacher_input_files,
    enabled=report_enabled,
    # 2: the generated requests are measured without their structured prefix; 3: the report's
    # prompts follow teacher.prompt.seed
    version=3,
)
def run_teacher_report(ctx: StageContext) -> dict:
    if not process_state().is_main_process:
        return {}  # a few hundred samples: the main process writes the report alone
    from .generation import load_teacher

    recipe = ctx.recipe
    teacher, report = recipe.teacher, recipe.teacher.report
    seeds = load_seeds(seeds_file(recipe))
    users = generated_users(ctx)
    groups = _report_groups(report.users, seeds, written_by(recipe, "llm", users))
    adapter = tuned_adapter(ctx)
    model, tokenizer = load_teacher(
        teacher.model,
        adapter,
        trust_remote_code=teacher.trust_remote_code,
        merge=False,
        precision=teacher.generation.precision,
    )
    tuned_examples = teacher.prompt.num_examples
    untuned_examples = tuned_examples if report.untuned_examples is None else report.untuned_examples
    gates = gate_settings(recipe)
    samples: dict[str, list[dict]] = {}
    if report.untuned and adapter is not None:
        with model.disable_adapter():
            builder = prompt_builder(recipe, tokenizer, untuned_examples)
            samples |= _sample_groups(ctx, "untuned teacher", groups, builder, model, tokenizer, gates)
    if adapter is not None:
        model = model.merge_and_unload()
    builder = prompt_builder(recipe, tokenizer, tuned_examples)
    label = "tuned teacher" if adapter is not None else "teacher, no adapter"
    samples |= _sample_groups(ctx, label, groups, builder, model, tokenizer, gates)
    few_shot = {"untuned": untuned_examples, "tuned": tuned_examples}
    summary = _measure(ctx, seeds, samples, gates, few_shot, users)
    write_json_atomic(ctx.dir / "summary.json", summary)
    return summary


def _report_groups(first_users: int, seeds: list[Seed], users: list[History]) -> dict[str, list[History]]:
    """The users both teachers are sampled on: the dev seeds, then the first `first_users` users."""
    groups = {"dev seeds": [s.history for s in seeds if s.split == "dev"]}
    if first_users:
        groups[f"{min(first_users, len(users))} users"] = users[:first_users]
    return {name: histories for name, histories in groups.items() if histories}


def _sample_groups(
    ctx: StageContext, label: str, groups: dict, builder, model, tokenizer, gates: GateSettings
) -> dict:
    from .report import sample_once

    generation = ctx.recipe.teacher.generation
    sampler = request_sampler(ctx.recipe, model, tokenizer, builder)
    return {
        f"{label} ({group})": sample_once(
            histories,
            builder=builder,
            sampler=sampler,
            gates=gates,
            prompt_seed=ctx.recipe.teacher.prompt.seed,
            seed=generation.seed,
            batch_size=generation.batch_size,
        )
        for group, histories in groups.items()
    }


def _generated_row(ctx: StageContext, users: list[History], catalog, k: int) -> dict:
    """The row of generate's output: every request the LLM wrote, without the structured prefix
    generate puts in front (the other rows have none, and naming the city and category would
    lift its round trip). With `teacher.catalog_kind` unlike `teacher.kind`, the template wrote
    the requests of the other origin, which are left out."""
    from ..io import read_jsonl
    from .prefix import render_prefix, without_prefix
    from .report import measure_row
    from .synthesis import REQUESTS

    teacher = ctx.recipe.teacher
    records = list(read_jsonl(ctx.upstream("generate") / REQUESTS))
    written = [r for r in records if teacher.kind_for(r["origin"]) == "llm"]
    by_llm = [_ORIGIN_NAMES[origin] for origin in ORIGINS if teacher.kind_for(origin) == "llm"]
    group = "all users" if len(written) == len(records) else " and ".join(by_llm)
    prefixes = {user.user_id: render_prefix(teacher.request_prefix, user) for user in users}
    generated = [
        {"request": without_prefix(prefixes.get(r["user_id"]), r["request"]), "items": [{"item_id": i} for i in r["item_ids"]]}
        for r in written
    ]
    return measure_row(f"generated requests ({group})", generated, catalog, k)


def _measure(
    ctx: StageContext,
    seeds: list[Seed],
    samples: dict[str, list[dict]],
    gates: GateSettings,
    few_shot_examples: dict[str, int],
    users: list[History],
) -> dict:
    """Measure every sampled group, the dev seeds' own requests and generate's output (for
    `users`); write the table."""
    from ..io import read_jsonl
    from ..models.loading import load_sentence_transformer
    from .gates import check_request
    from .metrics import Catalog
    from .report import format_table, measure_row

    spec = ctx.recipe.teacher.report
    items = list(read_jsonl(ctx.upstream("data") / "items.jsonl"))
    encoder = load_sentence_transformer(spec.encoder)
    catalog = Catalog(encoder, items, cache_dir=ctx.dir / ".cache", encoder_name=spec.encoder)
    scaffold = prompt_template(ctx.recipe).scaffold_phrases()
    references = {
        "seed requests (dev seeds)": [
            {
                "user_id": s.history.user_id,
                "request": s.request,
                "reasons": check_request(
                    s.request,
                    prompt_text="",
                    items=s.history.items,
                    scaffold=scaffold,
                    settings=gates,
                ),
                "items": [
                    {"item_id": i.item_id, "name": i.name, "city": i.city} for i in s.history.items
                ],
            }
            for s in seeds
            if s.split == "dev"
        ]
    }
    measured = {**samples, **references}
    groups = dict.fromkeys(name.split(" (", 1)[1] for name in measured)  # "dev seeds)", "32 users)"
    ordered = [
        f"{kind} ({group}"
        for group in groups
        for kind in _ROW_ORDER
        if f"{kind} ({group}" in measured
    ]
    rows = [measure_row(name, measured[name], catalog, spec.k) for name in ordered]
    rows.append(_generated_row(ctx, users, catalog, spec.k))
    write_jsonl_atomic(
        ctx.dir / SAMPLES_FILE,
        [{"teacher": name, **record} for name, records in samples.items() for record in records],
    )
    report = {
        "k": spec.k,
        "encoder": spec.encoder,
        "catalog_items": len(items),
        "few_shot_examples": few_shot_examples,
        "rows": rows,
    }
    write_text_atomic(ctx.dir / REPORT_FILE, "# Teacher report\n\n" + format_table(report))
    return report

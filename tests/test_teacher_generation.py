"""Generation with a tiny random Llama: left-padded batches, stop strings, gates and retries, resume
after an interruption (no duplicate, none lost), the two stages, and two processes under accelerate."""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import (
    accelerate_on_two_cpu_processes,
    embedded_or_skip,
    run_on_cpu,
)
from fixtures.teacher.tiny_teacher import ITEMS, SEEDS, USERS, save_tiny_teacher

from mint_distill.cli import cli
from mint_distill.errors import CannotRunError
from mint_distill.io import read_jsonl, sha256_tree, write_json_atomic
from mint_distill.pipeline import all_stages, run_pipeline, stage_states
from mint_distill.pipeline.registry import stage_problems
from mint_distill.recipe import load_recipe
from mint_distill.teacher.gates import GateSettings
from mint_distill.teacher.generation import RequestSampler, load_teacher
from mint_distill.teacher.histories import load_seeds, load_users
from mint_distill.teacher.prompts import PromptBuilder, prompt_rng
from mint_distill.teacher.synthesis import (
    REJECTED,
    REQUESTS,
    SHARDS,
    failed_attempts,
    finished_ids,
    merge_shards,
    synthesize,
    work_units,
)

LENIENT = GateSettings(
    min_words=0, max_words=1000, max_repetition=1.0, copy_span=1000, check_item_names=False
)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return save_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher") / "model")


@pytest.fixture(scope="module")
def loaded(teacher_dir):
    return load_teacher(str(teacher_dir))


@pytest.fixture(scope="module")
def builder(loaded):
    _, tokenizer = loaded
    return PromptBuilder(
        tokenizer,
        [s for s in load_seeds(SEEDS) if s.split == "train"],
        num_examples=1,
        max_tokens=400,
    )


def test_left_padded_batch_matches_one_by_one(loaded, builder):
    model, tokenizer = loaded
    users = load_users(USERS)[:3]
    prompts = [builder.build(u, prompt_rng(0, u.user_id)).text for u in users]
    prompts[1] = prompts[1][: len(prompts[1]) // 2]  # rows of different lengths need padding
    sampler = RequestSampler(model, tokenizer, max_new_tokens=8, do_sample=False, stop=())
    batched = sampler.sample(prompts, seed=0)
    alone = [sampler.sample([p], seed=0)[0] for p in prompts]
    assert [b.text for b in batched] == [a.text for a in alone]
    assert all(0 < b.new_tokens <= 8 for b in batched)


def test_bfloat16_teacher_samples_in_bfloat16(teacher_dir, builder):
    model, tokenizer = load_teacher(str(teacher_dir), precision="bfloat16")
    assert {parameter.dtype for parameter in model.parameters()} == {torch.bfloat16}
    prompts = [builder.build(u, prompt_rng(0, u.user_id)).text for u in load_users(USERS)[:2]]
    dtypes = []
    hook = model.lm_head.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    try:
        samples = RequestSampler(model, tokenizer, max_new_tokens=4, min_new_tokens=4, stop=()).sample(prompts, seed=0)
    finally:
        hook.remove()
    assert set(dtypes) == {torch.bfloat16}
    assert [sample.new_tokens for sample in samples] == [4, 4]


def test_min_new_tokens_hold_across_chunks_without_transformers_length_warnings(loaded, builder):
    model, tokenizer = loaded
    prompts = [builder.build(u, prompt_rng(0, u.user_id)).text for u in load_users(USERS)[:3]]
    settings = {"max_new_tokens": 12, "min_new_tokens": 12, "do_sample": False, "stop": ()}
    whole = RequestSampler(model, tokenizer, chunk_tokens=12, **settings).sample(prompts, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chunked_sampler = RequestSampler(model, tokenizer, chunk_tokens=5, **settings)
        chunked = chunked_sampler.sample(prompts, seed=0)
    assert [sample.new_tokens for sample in chunked] == [12, 12, 12]
    assert [sample.text for sample in chunked] == [sample.text for sample in whole]
    assert not [str(w.message) for w in caught if "length constraints" in str(w.message)]


def test_output_stops_at_stop_strings(loaded, builder):
    model, tokenizer = loaded
    prompts = [builder.build(u, prompt_rng(0, u.user_id)).text for u in load_users(USERS)[:4]]
    free = RequestSampler(model, tokenizer, max_new_tokens=24, stop=()).sample(prompts, seed=3)
    stopped = RequestSampler(model, tokenizer, max_new_tokens=24, stop=["e"]).sample(
        prompts, seed=3
    )
    assert any("e" in f.text for f in free)
    for full, cut in zip(free, stopped):
        assert cut.finished  # ended by the stop string
        assert full.finished == (full.new_tokens < 24)  # still writing at the limit: cut off
        assert "e" not in cut.text
        assert full.text.startswith(cut.text)  # same sample, cut at the stop string
        assert cut.new_tokens <= full.new_tokens


def test_rows_that_ended_leave_the_batch_without_changing_any_row(loaded, builder, monkeypatch):
    model, tokenizer = loaded
    prompts = [builder.build(u, prompt_rng(0, u.user_id)).text for u in load_users(USERS)[:6]]
    settings = {"max_new_tokens": 20, "do_sample": False, "stop": ["e", "a"]}
    whole = RequestSampler(model, tokenizer, chunk_tokens=20, **settings).sample(prompts, seed=0)
    batch_rows = []
    generate = model.generate

    def recording(*args, **kwargs):
        batch_rows.append(kwargs["input_ids"].shape[0])
        return generate(*args, **kwargs)

    monkeypatch.setattr(model, "generate", recording)
    chunked = RequestSampler(model, tokenizer, chunk_tokens=2, **settings).sample(prompts, seed=0)
    # Greedy: the same text and finish for every row. The token count may differ by one: a row
    # whose stop string ends a chunk leaves before the pad token a longer batch appends (and counts).
    assert [(c.text, c.finished) for c in chunked] == [(w.text, w.finished) for w in whole]
    assert all(w.new_tokens - 1 <= c.new_tokens <= w.new_tokens for c, w in zip(chunked, whole))
    assert len({sample.new_tokens for sample in whole}) > 1, "rows should end at different steps"
    assert batch_rows[0] == len(prompts) and batch_rows == sorted(batch_rows, reverse=True)
    assert batch_rows[-1] < len(prompts), "ended rows left the batch"


class _KilledAfter:
    """The real sampler, interrupted (as by Ctrl-C or SIGTERM) when call `n` starts."""

    def __init__(self, sampler: RequestSampler, n: int):
        self.sampler, self.n, self.calls = sampler, n, 0

    def sample(self, prompts, seed):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return self.sampler.sample(prompts, seed)


def test_resume_after_interruption_loses_nothing_and_duplicates_nothing(loaded, builder, tmp_path):
    model, tokenizer = loaded
    units = work_units(load_users(USERS), requests_per_user=2)
    sampler = RequestSampler(
        model, tokenizer, max_new_tokens=12, stop=["e"]
    )  # random text: "e" ends it
    options = {"builder": builder, "gates": LENIENT, "batch_size": 4, "max_retries": 1, "seed": 5}
    with pytest.raises(KeyboardInterrupt):
        synthesize(units, tmp_path, sampler=_KilledAfter(sampler, 3), **options)
    first = {r["request_id"]: r for r in read_jsonl(tmp_path / SHARDS / "requests-0.jsonl")}
    assert 0 < len(first) < len(units)
    with open(tmp_path / SHARDS / "requests-0.jsonl", "a") as handle:
        handle.write(
            '{"request_id": "u9#0", "request": "torn by the ki'
        )  # a write cut short by the kill

    counts = synthesize(units, tmp_path, sampler=sampler, **options)
    merged = merge_shards(tmp_path, units)
    accepted = list(read_jsonl(tmp_path / REQUESTS))
    rejected = list(read_jsonl(tmp_path / REJECTED))
    ids = [r["request_id"] for r in accepted + rejected]
    assert sorted(ids) == sorted(
        u.request_id for u in units
    )  # every request once: none lost, none twice
    assert merged["duplicates_dropped"] == 0
    assert counts["finished_this_run"] == len(units) - len(first)
    for record in accepted:
        if record["request_id"] in first:
            assert (
                record == first[record["request_id"]]
            )  # the first run's output is kept as written
    assert [r["request_id"] for r in accepted] == [
        u.request_id for u in units if u.request_id in {r["request_id"] for r in accepted}
    ]
    record = accepted[0]
    assert set(record) == {
        "request_id",
        "user_id",
        "split",
        "origin",
        "request",
        "item_ids",
        "sentences",
        "attempts",
        "settings",
    }
    assert record["origin"] == "history"
    user = next(u for u in load_users(USERS) if u.user_id == record["user_id"])
    assert record["item_ids"] == [i.item_id for i in user.items]
    assert record["sentences"] == [i.sentence for i in user.items]


def test_the_generation_seed_decides_what_is_sampled(loaded, builder, tmp_path):
    model, tokenizer = loaded
    units = work_units(load_users(USERS), requests_per_user=1)
    sampler = RequestSampler(model, tokenizer, max_new_tokens=12, stop=())

    def requests(seed: int, folder: str) -> list[str]:
        options = {"builder": builder, "gates": LENIENT, "batch_size": 4, "max_retries": 0, "seed": seed}
        synthesize(units, tmp_path / folder, sampler=sampler, **options)
        merge_shards(tmp_path / folder, units)  # a cut-off sample is rejected: both files hold samples
        records = [*read_jsonl(tmp_path / folder / REQUESTS), *read_jsonl(tmp_path / folder / REJECTED)]
        return [record["request"] for record in sorted(records, key=lambda record: record["request_id"])]

    first = requests(5, "first")
    assert len(first) == len(units)
    assert requests(5, "again") == first
    assert requests(6, "other") != first


def test_rejected_requests_are_retried_then_recorded(loaded, builder, tmp_path):
    model, tokenizer = loaded
    units = work_units(load_users(USERS)[:3], requests_per_user=1)
    # Never 25 words: too short, or empty where the random model wrote no word at all.
    sampler = RequestSampler(model, tokenizer, max_new_tokens=6)
    counts = synthesize(
        units,
        tmp_path,
        builder=builder,
        sampler=sampler,
        gates=GateSettings(),
        batch_size=2,
        max_retries=2,
    )
    merged = merge_shards(tmp_path, units)
    rejected = list(read_jsonl(tmp_path / REJECTED))
    assert merged["requests"] == 0 and merged["rejected"] == 3
    assert all(r["attempts"] == 3 and {"too_short", "empty"} & set(r["reasons"]) for r in rejected)
    assert merged["rejected_attempts"] == 9  # 3 users x (1 + 2 retries), each counted
    by_reason = merged["rejected_attempts_by_reason"]
    assert by_reason.get("too_short", 0) + by_reason.get("empty", 0) == 9
    assert counts["generated_this_run"] == 9
    assert finished_ids(tmp_path) == {u.request_id for u in units}
    again = synthesize(
        units,
        tmp_path,
        builder=builder,
        sampler=sampler,
        gates=GateSettings(),
        batch_size=2,
        max_retries=2,
    )
    assert again["generated_this_run"] == 0  # given-up requests are finished too


def test_a_resumed_request_goes_on_from_its_next_attempt(loaded, builder, tmp_path):
    model, tokenizer = loaded
    units = work_units(load_users(USERS)[:3], requests_per_user=1)
    sampler = RequestSampler(model, tokenizer, max_new_tokens=6)  # never the 25 words the gates want
    options = {"builder": builder, "gates": GateSettings(), "batch_size": 3, "max_retries": 2}
    with pytest.raises(KeyboardInterrupt):  # every first attempt fails; the second call is killed
        synthesize(units, tmp_path, sampler=_KilledAfter(sampler, 2), **options)
    assert set(failed_attempts(tmp_path).values()) == {1}
    synthesize(units, tmp_path, sampler=sampler, **options)
    merged = merge_shards(tmp_path, units)
    assert merged["rejected"] == 3 and merged["rejected_attempts"] == 9  # 3 attempts each, in all
    assert [r["attempts"] for r in read_jsonl(tmp_path / REJECTED)] == [3, 3, 3]


def _recipe(tmp_path: Path, teacher_dir: Path, **teacher) -> Path:
    document = {
        "name": "tiny",
        "run_dir": str(tmp_path / "runs"),
        "data": {"source": {"format": "yelp_academic", "path": str(tmp_path / "no-source")}},
        "teacher": {
            "model": str(teacher_dir),
            "prompt": {"num_examples": 1, "max_tokens": 400},
            "tuning": {
                "seeds": str(SEEDS),
                "epochs": 1,
                "batch_size": 2,
                "gradient_accumulation": 1,
                "learning_rate": 0.01,
                "checkpoint_every": 1,
            },
            "generation": {
                "stop": ["e"],  # a random model rarely ends a text; "e" does it early
                "max_new_tokens": 12,
                "min_words": 0,
                "max_repetition": 1.0,
                "batch_size": 4,
                "max_retries": 1,
            },
            "report": {"enabled": False},
            **teacher,
        },
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps(document))
    return path


def _fresh_data(recipe) -> None:
    """Put the fixture users and items where the data stage writes them, with a matching manifest."""
    folder = Path(recipe.run_dir) / recipe.name / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for source in (USERS, ITEMS):
        shutil.copy(source, folder / source.name)
    data = next(s for s in all_stages() if s.name == "data")
    expected = stage_states(recipe, [data])[0].expected
    write_json_atomic(
        folder / "manifest.json",
        {
            "stage": "data",
            **expected,
            "output_hash": sha256_tree(folder, exclude=("manifest.json",)),
        },
    )


def _teacher_stages():
    return [s for s in all_stages() if s.name in ("tune-teacher", "generate", "teacher-report")]


def test_teacher_lora_targets_that_name_no_layer_stop_the_run_before_it_starts(teacher_dir, tmp_path):
    recipe = load_recipe(_recipe(tmp_path, teacher_dir), ["teacher.tuning.lora.target_modules=[q,v]"])
    _fresh_data(recipe)
    with pytest.raises(CannotRunError) as refused:
        run_pipeline(recipe, stages=_teacher_stages(), quiet=True)
    message = str(refused.value)
    assert "stage tune-teacher: teacher.tuning.lora.target_modules ['q', 'v'] names no layer" in message
    assert "q_proj" in message and "lm_head" in message  # the causal LM's own layers, its head included
    assert not (tmp_path / "runs" / "tiny" / "tune-teacher").exists()

    head_only = load_recipe(_recipe(tmp_path, teacher_dir), ["teacher.tuning.lora.target_modules=[lm_head]"])
    assert stage_problems(head_only, _teacher_stages()) == []


def test_tune_generate_and_report_stages(teacher_dir, tmp_path, monkeypatch):
    encoder = embedded_or_skip("all-minilm-l6-v2")
    recipe_path = _recipe(
        tmp_path,
        teacher_dir,
        prompt={"num_examples": 0, "max_tokens": 400},  # the tuned teacher needs no examples
        report={"enabled": True, "encoder": encoder, "users": 4, "untuned_examples": 1},
    )
    recipe = load_recipe(recipe_path)
    _fresh_data(recipe)
    calls = {"n": 0}
    real_sample = RequestSampler.sample

    def killed_on_third_batch(self, prompts, seed):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_sample(self, prompts, seed)

    monkeypatch.setattr(RequestSampler, "sample", killed_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(recipe, stages=_teacher_stages(), quiet=True)
    monkeypatch.setattr(RequestSampler, "sample", real_sample)
    run_root = tmp_path / "runs" / "tiny"
    assert (run_root / "tune-teacher" / "manifest.json").is_file()
    assert not (run_root / "tune-teacher" / ".checkpoints").exists()  # removed after the manifest
    assert stage_states(recipe, _teacher_stages())[1].status == "partial"

    result = run_pipeline(recipe, stages=_teacher_stages(), quiet=True)
    assert result.ran == ["generate", "teacher-report"] and result.skipped == ["tune-teacher"]
    generate = result.summaries["generate"]
    assert generate["requests"] + generate["rejected"] == generate["requests_wanted"] == 10
    ids = [r["request_id"] for r in read_jsonl(run_root / "generate" / REQUESTS)]
    assert len(ids) == len(set(ids))

    card = (run_root / "tune-teacher" / "adapter" / "README.md").read_text()
    from mint_distill.models import resolve_model

    assert resolve_model(str(teacher_dir)).weights_sha256() in card
    assert "dev loss (request tokens): before tuning" in card and str(SEEDS.name) in card
    assert "at the end of epoch 1.0: " in card
    report = result.summaries["teacher-report"]
    assert [row["teacher"] for row in report["rows"]] == [
        "untuned teacher (dev seeds)",
        "tuned teacher (dev seeds)",
        "seed requests (dev seeds)",
        "untuned teacher (4 users)",
        "tuned teacher (4 users)",
        "generated requests (all users)",
    ]
    assert report["rows"][2]["retrieval_queries"] == 2 and report["rows"][2]["pass_rate"] == 1.0
    assert report["rows"][3]["requests"] == report["rows"][4]["requests"] == 4
    assert report["rows"][5]["requests"] == generate["requests"]
    samples = list(read_jsonl(run_root / "teacher-report" / "report_samples.jsonl"))
    untuned = [r["user_id"] for r in samples if r["teacher"] == "untuned teacher (4 users)"]
    tuned = [r["user_id"] for r in samples if r["teacher"] == "tuned teacher (4 users)"]
    assert untuned == tuned == ["u1", "u2", "u3", "u4"]  # paired: the same users
    shown = {r["teacher"].split(" (")[0]: len(r["examples"]) for r in samples}
    assert shown == {"untuned teacher": 1, "tuned teacher": 0}
    assert report["few_shot_examples"] == {"untuned": 1, "tuned": 0}
    assert "| teacher |" in (run_root / "teacher-report" / "teacher_report.md").read_text()
    again = run_pipeline(recipe, stages=_teacher_stages(), quiet=True)
    assert again.ran == []

    # A report setting reruns the report alone: the requests are kept.
    requests = (run_root / "generate" / REQUESTS).read_bytes()
    more_users = load_recipe(recipe_path, ["teacher.report.users=6"])
    rerun = run_pipeline(more_users, stages=_teacher_stages(), quiet=True)
    assert rerun.ran == ["teacher-report"] and (run_root / "generate" / REQUESTS).read_bytes() == requests
    assert rerun.summaries["teacher-report"]["rows"][3]["teacher"] == "untuned teacher (6 users)"
    printed = CliRunner().invoke(cli, ["teacher-report", str(recipe_path), "teacher.report.users=6"])
    assert printed.exit_code == 0, printed.output
    assert "teacher-report was fresh" in printed.output and "| untuned teacher (6 users) |" in printed.output


def test_two_processes_under_accelerate_share_the_users(teacher_dir, tmp_path):
    recipe_path = _recipe(tmp_path, teacher_dir, tuning={"enabled": False, "seeds": str(SEEDS)})
    recipe = load_recipe(recipe_path)
    _fresh_data(recipe)
    command = accelerate_on_two_cpu_processes(
        str(Path(sys.executable).with_name("mint-distill")), "-q", "generate", str(recipe_path)
    )
    done = run_on_cpu(command, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "runs" / "tiny" / "generate"
    shards = {
        p.name: [r["request_id"] for r in read_jsonl(p)]
        for p in (out / SHARDS).glob("requests-*.jsonl")
    }
    assert set(shards) == {"requests-0.jsonl", "requests-1.jsonl"} and all(
        shards.values()
    )  # both processes worked
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2
    merged = [r["request_id"] for r in read_jsonl(out / REQUESTS)] + [
        r["request_id"] for r in read_jsonl(out / REJECTED)
    ]
    assert sorted(merged) == sorted(f"u{k}#0" for k in range(1, 11))
    assert json.loads((out / "manifest.json").read_text())["summary"]["requests_wanted"] == 10


def test_two_processes_skip_a_generate_stage_the_main_process_reuses_from_a_sibling_run(teacher_dir, tmp_path):
    first_path = _recipe(tmp_path, teacher_dir, kind="template", tuning={"enabled": False, "seeds": str(SEEDS)})
    second_path = tmp_path / "second.yaml"  # the same teacher, in a run of another name beside it
    second_path.write_text(first_path.read_text().replace('"name": "tiny"', '"name": "second"'))
    first, second = load_recipe(first_path), load_recipe(second_path)
    _fresh_data(first)
    _fresh_data(second)
    run_pipeline(first, stages=[s for s in all_stages() if s.name == "generate"], quiet=True)
    command = accelerate_on_two_cpu_processes(
        str(Path(sys.executable).with_name("mint-distill")), "generate", str(second_path)
    )
    done = run_on_cpu(command, timeout=400)
    # the other process used to enter the stage, whose barrier met the main process's exit barrier
    assert done.returncode == 0, done.stderr[-3000:]
    assert "generate reused from another run" in " ".join(done.stderr.split())
    manifest = json.loads((tmp_path / "runs" / "second" / "generate" / "manifest.json").read_text())
    assert manifest["reused_from"] == str(tmp_path / "runs" / "tiny" / "generate")
    assert not (tmp_path / "runs" / "second" / "generate" / SHARDS).exists()


def test_two_processes_tune_the_teacher_on_its_schedule_once_the_earlier_stages_have_finished(
    teacher_dir, tmp_path
):
    tuning = {"seeds": str(SEEDS), "epochs": 4, "batch_size": 2, "gradient_accumulation": 1,
              "learning_rate": 0.01, "warmup_ratio": 0.0, "checkpoint_every": 100}
    recipe_path = _recipe(tmp_path, teacher_dir, tuning=tuning)
    mint_distill = str(Path(sys.executable).with_name("mint-distill"))

    # The main process cannot tune the teacher alone while the other one waits.
    refused = run_on_cpu(accelerate_on_two_cpu_processes(mint_distill, "generate", str(recipe_path)), timeout=400)
    assert refused.returncode != 0
    assert "data, tune-teacher are not finished: run `mint-distill run RECIPE --until tune-teacher`" in refused.stderr
    assert not (tmp_path / "runs" / "tiny" / "tune-teacher").exists()

    _fresh_data(load_recipe(recipe_path))
    done = run_on_cpu(accelerate_on_two_cpu_processes(mint_distill, "-q", "tune-teacher", str(recipe_path)), timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "runs" / "tiny" / "tune-teacher"
    summary = json.loads((folder / "summary.json").read_text())
    # 6 train seeds in batches of 2 on 2 processes: one batch per process and epoch.
    assert (summary["processes"], summary["steps"]) == (2, 4)
    log = json.loads((folder / "log.json").read_text())
    # The linear schedule spans the run's own steps, as with one process.
    assert [entry["lr"] for entry in log] == pytest.approx([0.01 * (4 - step) / 4 for step in (1, 2, 3, 4)])

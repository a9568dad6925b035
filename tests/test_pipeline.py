"""Stage runner: skip when fresh, rerun what a change affects, resume, lock, atomic writes."""

from __future__ import annotations

import json
import multiprocessing
import textwrap

import pytest

from mint_distill.errors import DataError, MintError, RunLockedError
from mint_distill.io import JsonlAppender, atomic_path, read_jsonl, write_json_atomic
from mint_distill.pipeline import all_stages, run_pipeline, stage_states
from mint_distill.pipeline.registry import StageRegistry
from mint_distill.recipe import load_recipe


class Calls:
    """Counts how often each stage body ran."""

    def __init__(self):
        self.counts: dict[str, int] = {}

    def hit(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1


def make_stages(calls: Calls, interrupt_after: dict | None = None):
    """Three real stages: words -> counts -> total, each writing files the next one reads."""
    registry = StageRegistry()

    @registry.register("words", summary="write words", config_keys=("data.selection.min_liked",))
    def words(ctx):
        calls.hit("words")
        n = ctx.recipe.data.selection.min_liked
        write_json_atomic(ctx.dir / "words.json", [f"w{i}" for i in range(n)])
        return {"words": n}

    @registry.register("lengths", summary="incremental", config_keys=("filter.keep_fraction",), after=("words",))
    def lengths(ctx):
        calls.hit("lengths")
        words = json.loads((ctx.upstream("words") / "words.json").read_text())
        done = {r["word"] for r in read_jsonl(ctx.dir / "lengths.jsonl")} if ctx.resuming else set()
        with JsonlAppender(ctx.dir / "lengths.jsonl") as out:
            for index, word in enumerate(words):
                if word in done:
                    continue
                if interrupt_after is not None and index == interrupt_after.get("index"):
                    interrupt_after.pop("index")
                    raise KeyboardInterrupt
                out.write_batch([{"word": word, "length": len(word) * ctx.recipe.filter.keep_fraction}])
        return {"written": len(words) - len(done)}

    @registry.register("total", summary="sum", config_keys=("teacher.generation.seed",), after=("lengths",))
    def total(ctx):
        calls.hit("total")
        rows = list(read_jsonl(ctx.upstream("lengths") / "lengths.jsonl"))
        write_json_atomic(ctx.dir / "total.json", sum(r["length"] for r in rows))
        return {"rows": len(rows)}

    return registry.ordered()


@pytest.fixture()
def recipe_file(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            name: toy
            run_dir: {tmp_path / 'runs'}
            data:
              source: {{format: yelp_academic, path: x}}
              selection: {{min_liked: 4}}
            """
        )
    )
    return path


def test_second_run_skips_everything(recipe_file):
    calls = Calls()
    stages = make_stages(calls)
    first = run_pipeline(load_recipe(recipe_file), stages=stages)
    assert first.ran == ["words", "lengths", "total"]
    second = run_pipeline(load_recipe(recipe_file), stages=stages)
    assert second.ran == [] and second.skipped == ["words", "lengths", "total"]
    assert calls.counts == {"words": 1, "lengths": 1, "total": 1}
    manifest = json.loads((first.run_root / "lengths" / "manifest.json").read_text())
    assert manifest["summary"] == {"written": 4}
    assert manifest["upstream"]["words"] == json.loads((first.run_root / "words" / "manifest.json").read_text())["output_hash"]
    assert "torch" in manifest["versions"]


def test_a_damaged_file_hash_cache_is_rebuilt(recipe_file):
    stages = make_stages(Calls())
    recipe = load_recipe(recipe_file)
    run_pipeline(recipe, stages=stages)
    (recipe_file.parent / "runs" / "toy" / ".file-hashes.json").write_text('{"torn": ')
    assert [s.status for s in stage_states(recipe, stages)] == ["fresh", "fresh", "fresh"]


def test_changed_key_reruns_that_stage_and_later_only(recipe_file):
    calls = Calls()
    stages = make_stages(calls)
    run_pipeline(load_recipe(recipe_file), stages=stages)
    result = run_pipeline(load_recipe(recipe_file, ["filter.keep_fraction=0.25"]), stages=stages)
    assert result.ran == ["lengths", "total"] and result.skipped == ["words"]
    assert json.loads((result.run_root / "total" / "total.json").read_text()) == pytest.approx(4 * 2 * 0.25)


def test_key_read_only_by_last_stage_reruns_only_it(recipe_file):
    calls = Calls()
    stages = make_stages(calls)
    run_pipeline(load_recipe(recipe_file), stages=stages)
    result = run_pipeline(load_recipe(recipe_file, ["teacher.generation.seed=5"]), stages=stages)
    assert result.ran == ["total"]


def test_a_key_a_stage_excludes_from_its_section_leaves_it_fresh(recipe_file):
    calls = Calls()
    registry = StageRegistry()

    @registry.register(
        "section", summary="reads data.selection but min_liked", config_keys=("data.selection",),
        config_excluded=("data.selection.min_liked",),
    )
    def section(ctx):
        calls.hit("section")
        return {}

    stages = registry.ordered()
    run_pipeline(load_recipe(recipe_file), stages=stages)
    assert run_pipeline(load_recipe(recipe_file, ["data.selection.min_liked=7"]), stages=stages).ran == []
    assert run_pipeline(load_recipe(recipe_file, ["data.selection.max_liked=9"]), stages=stages).ran == ["section"]
    manifest = json.loads((recipe_file.parent / "runs" / "toy" / "section" / "manifest.json").read_text())
    assert "min_liked" not in manifest["config"]["data.selection"] and manifest["config"]["data.selection"]["max_liked"] == 9
    assert calls.counts == {"section": 2}


def test_a_changed_report_alone_leaves_later_stages_fresh(recipe_file):
    calls = Calls()
    registry = StageRegistry()

    @registry.register(
        "words", summary="words and a report of what was left out",
        config_keys=("data.selection",), reports=("report.json",),
    )
    def words(ctx):
        calls.hit("words")
        selection = ctx.recipe.data.selection
        write_json_atomic(ctx.dir / "words.json", [f"w{i}" for i in range(selection.min_liked)])
        write_json_atomic(ctx.dir / "report.json", {"max_liked": selection.max_liked})
        return {}

    @registry.register("count", summary="count words", config_keys=(), after=("words",))
    def count(ctx):
        calls.hit("count")
        words = json.loads((ctx.upstream("words") / "words.json").read_text())
        write_json_atomic(ctx.dir / "count.json", len(words))
        return {}

    stages = registry.ordered()
    run_pipeline(load_recipe(recipe_file), stages=stages)
    first = json.loads((recipe_file.parent / "runs" / "toy" / "words" / "manifest.json").read_text())
    rerun = run_pipeline(load_recipe(recipe_file, ["data.selection.max_liked=9"]), stages=stages)
    assert rerun.ran == ["words"] and rerun.skipped == ["count"]
    report = json.loads((rerun.run_root / "words" / "report.json").read_text())
    assert report == {"max_liked": 9}
    second = json.loads((rerun.run_root / "words" / "manifest.json").read_text())
    assert second["output_hash"] == first["output_hash"] and second["config_hash"] != first["config_hash"]
    changed = run_pipeline(load_recipe(recipe_file, ["data.selection.min_liked=6"]), stages=stages)
    assert changed.ran == ["words", "count"]
    assert json.loads((changed.run_root / "count" / "count.json").read_text()) == 6
    assert calls.counts == {"words": 3, "count": 2}


def test_an_excluded_key_outside_the_stage_keys_is_refused():
    from mint_distill.pipeline.manifest import select_config

    with pytest.raises(ValueError, match="teacher.kind"):
        select_config({"data": {}, "teacher": {"kind": "llm"}}, ("data",), ("teacher.kind",))


def test_stages_that_read_nothing_of_each_other_keep_their_modules_order_whatever_was_imported_first():
    registry = StageRegistry(modules=("textwrap", "json"))  # harmless to import

    def second(ctx):
        return {}

    def first(ctx):
        return {}

    second.__module__, first.__module__ = "json", "textwrap"
    registry.register("second", summary="", config_keys=())(second)
    registry.register("first", summary="", config_keys=())(first)
    assert [stage.name for stage in registry.ordered()] == ["first", "second"]


def test_force_from_and_until(recipe_file):
    calls = Calls()
    stages = make_stages(calls)
    recipe = load_recipe(recipe_file)
    assert run_pipeline(recipe, stages=stages, until="lengths").ran == ["words", "lengths"]
    assert [s.status for s in stage_states(recipe, stages)] == ["fresh", "fresh", "missing"]
    # words reruns with identical output, so lengths stays fresh; total was never run
    assert run_pipeline(recipe, stages=stages, force=("words",)).ran == ["words", "total"]
    assert run_pipeline(recipe, stages=stages, from_stage="lengths").ran == ["lengths", "total"]
    with pytest.raises(MintError, match="unknown or disabled stage `nope`"):
        run_pipeline(recipe, stages=stages, force=("nope",))
    with pytest.raises(MintError, match="--from total comes after --until lengths"):
        run_pipeline(recipe, stages=stages, from_stage="total", until="lengths")
    with pytest.raises(MintError, match="--force total: after --until lengths"):
        run_pipeline(recipe, stages=stages, until="lengths", force=("total",))
    with pytest.raises(MintError, match="--force words: before --from lengths"):
        run_pipeline(recipe, stages=stages, from_stage="lengths", force=("words",))


def test_a_run_folder_that_cannot_be_made_is_an_error_naming_run_dir(recipe_file, tmp_path):
    (tmp_path / "a-file").write_text("")
    recipe = load_recipe(recipe_file, [f"run_dir={tmp_path / 'a-file'}"])
    with pytest.raises(MintError, match="run_dir: cannot create the run folder .*a-file"):
        run_pipeline(recipe, stages=make_stages(Calls()))


def test_from_requires_earlier_stages_to_have_run(recipe_file):
    stages = make_stages(Calls())
    with pytest.raises(MintError, match="earlier stage `words` has not finished"):
        run_pipeline(load_recipe(recipe_file), stages=stages, from_stage="lengths")


def test_a_problem_of_a_stage_that_would_run_stops_the_run_before_any_stage(recipe_file):
    calls, problems = Calls(), []
    registry = StageRegistry()

    @registry.register("words", summary="", config_keys=("data.selection.min_liked",))
    def words(ctx):
        calls.hit("words")
        write_json_atomic(ctx.dir / "words.json", ["w"] * ctx.recipe.data.selection.min_liked)

    @registry.register("late", summary="", config_keys=(), after=("words",), check=lambda recipe: list(problems))
    def late(ctx):
        calls.hit("late")

    stages = registry.ordered()
    recipe = load_recipe(recipe_file)
    run_pipeline(recipe, stages=stages)
    problems.append("`teacher.x` is wrong")
    assert run_pipeline(recipe, stages=stages).skipped == ["words", "late"]  # nothing to run, nothing checked
    with pytest.raises(MintError, match=r"cannot run here yet:\n  - stage late: `teacher.x` is wrong"):
        run_pipeline(load_recipe(recipe_file, ["data.selection.min_liked=5"]), stages=stages)
    with pytest.raises(MintError, match="stage late"):
        run_pipeline(recipe, stages=stages, force=("words",))
    assert calls.counts == {"words": 1, "late": 1}
    assert run_pipeline(recipe, stages=stages, until="words", force=("words",)).ran == ["words"]


def test_a_missing_model_that_a_stage_would_read_stops_the_run_before_any_stage(recipe_file, tmp_path):
    calls, ranker_model = Calls(), tmp_path / "ranker"
    ranker_model.mkdir()
    (ranker_model / "config.json").write_text("{}")
    with recipe_file.open("a") as recipe_yaml:
        recipe_yaml.write(
            textwrap.dedent(
                f"""
                students: {{biencoder: {{model: {tmp_path / 'no-such-student'}}}}}
                evaluation: {{reference: dense, rankers: [{{name: dense, kind: dense, model: {ranker_model}}}]}}
                """
            )
        )
    registry = StageRegistry()

    @registry.register("words", summary="", config_keys=("data.selection.min_liked",))
    def words(ctx):
        calls.hit("words")
        write_json_atomic(ctx.dir / "words.json", ["w"] * ctx.recipe.data.selection.min_liked)

    @registry.register("rank", summary="", config_keys=("evaluation",), after=("words",))
    def rank(ctx):
        calls.hit("rank")

    stages = registry.ordered()
    # The student's model is missing too, but no stage here reads it.
    assert run_pipeline(load_recipe(recipe_file), stages=stages).ran == ["words", "rank"]
    (ranker_model / "config.json").unlink()  # the ranker's stage is stale: its model's files changed
    assert run_pipeline(load_recipe(recipe_file), stages=stages[:1]).skipped == ["words"]
    with pytest.raises(MintError, match=r"cannot run here yet:\n  - evaluation.rankers.0.model: `.*ranker` exists") as refused:
        run_pipeline(load_recipe(recipe_file, ["data.selection.min_liked=5"]), stages=stages)
    assert "no-such-student" not in str(refused.value)
    assert calls.counts == {"words": 1, "rank": 1}


@pytest.mark.parametrize("damaged", ["[]", '{"stage": "wo', "\udcff"])
def test_a_damaged_manifest_counts_as_no_finished_stage_and_the_stage_reruns(recipe_file, caplog, damaged):
    calls = Calls()
    stages = make_stages(calls)
    recipe = load_recipe(recipe_file)
    run_pipeline(recipe, stages=stages)
    manifest = recipe_file.parent / "runs" / "toy" / "words" / "manifest.json"
    manifest.write_bytes(damaged.encode("utf-8", "surrogateescape"))
    (manifest.parent / ".in_progress.json").write_text("[]")
    assert [s.status for s in stage_states(recipe, stages)] == ["missing", "stale", "fresh"]
    assert run_pipeline(recipe, stages=stages).ran == ["words"]  # its outputs are the same: the others stay fresh
    assert f"ignoring {manifest}" in caplog.text and json.loads(manifest.read_text())["stage"] == "words"


def test_interrupted_stage_resumes_without_duplicates(recipe_file):
    calls = Calls()
    interrupt = {"index": 2}
    stages = make_stages(calls, interrupt_after=interrupt)
    recipe = load_recipe(recipe_file)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(recipe, stages=stages)
    run_root = recipe_file.parent / "runs" / "toy"
    assert not (run_root / "lengths" / "manifest.json").exists()
    assert [s.status for s in stage_states(recipe, stages)] == ["fresh", "partial", "missing"]
    assert len(list(read_jsonl(run_root / "lengths" / "lengths.jsonl"))) == 2

    result = run_pipeline(recipe, stages=stages)
    assert result.ran == ["lengths", "total"]
    assert result.summaries["lengths"] == {"written": 2}  # only the rest
    words = [r["word"] for r in read_jsonl(run_root / "lengths" / "lengths.jsonl")]
    assert words == ["w0", "w1", "w2", "w3"]


def test_the_same_forced_command_after_an_interrupt_resumes_where_it_was(recipe_file):
    interrupt = {}
    stages = make_stages(Calls(), interrupt_after=interrupt)
    recipe = load_recipe(recipe_file)
    run_pipeline(recipe, stages=stages)
    interrupt["index"] = 2
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(recipe, stages=stages, from_stage="words")

    result = run_pipeline(recipe, stages=stages, from_stage="words")
    assert result.skipped == ["words"]  # redone before the interrupt
    assert result.ran == ["lengths", "total"]
    assert result.summaries["lengths"] == {"written": 2}  # resumed, not forced over again
    # a finished forced run leaves nothing behind: the command forces every stage again
    assert run_pipeline(recipe, stages=stages, from_stage="words").ran == ["words", "lengths", "total"]


def test_a_stage_that_fetches_its_own_input_is_fresh_on_the_next_run(recipe_file, tmp_path):
    dataset = tmp_path / "downloads" / "reviews.json"
    registry = StageRegistry()

    @registry.register("data", summary="fetch, then read", config_keys=(), input_files=lambda recipe: [dataset])
    def data(ctx):
        dataset.parent.mkdir(exist_ok=True)
        dataset.write_text('["a review"]')  # as a download inside the stage would
        write_json_atomic(ctx.dir / "reviews.json", json.loads(dataset.read_text()))

    stages = registry.ordered()
    recipe = load_recipe(recipe_file)
    assert run_pipeline(recipe, stages=stages).ran == ["data"]
    assert [s.status for s in stage_states(recipe, stages)] == ["fresh"]
    dataset.write_text('["another review"]')  # a changed input still makes it stale
    assert [s.status for s in stage_states(recipe, stages)] == ["stale"]


def test_retrained_weights_or_a_new_tokenizer_of_a_local_model_make_the_stages_that_load_it_stale(recipe_file, tmp_path):
    model = tmp_path / "my-encoder"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights v1")
    registry = StageRegistry()

    @registry.register("evaluate", summary="reads evaluation.*", config_keys=("evaluation",))
    def evaluate(ctx):
        write_json_atomic(ctx.dir / "metrics.json", {"ndcg": 0.5})

    stages = registry.ordered()
    ranker = f"evaluation.rankers=[{{name: mine, kind: dense, model: {model}}}]"
    recipe = load_recipe(recipe_file, [ranker, "evaluation.reference=mine"])
    run_pipeline(recipe, stages=stages)
    assert [s.status for s in stage_states(recipe, stages)] == ["fresh"]
    (model / "model.safetensors").write_bytes(b"weights v2")
    assert [s.status for s in stage_states(recipe, stages)] == ["stale"]
    run_pipeline(recipe, stages=stages)
    (model / "README.md").write_text("a card")
    (model / "onnx").mkdir()
    (model / "onnx" / "model.onnx").write_bytes(b"an export the loaders do not read")
    assert [s.status for s in stage_states(recipe, stages)] == ["fresh"]
    (model / "tokenizer_config.json").write_text('{"do_lower_case": false}')  # no new weights
    assert [s.status for s in stage_states(recipe, stages)] == ["stale"]


def test_partial_stage_with_changed_config_starts_over(recipe_file):
    calls = Calls()
    stages = make_stages(calls, interrupt_after={"index": 2})
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(load_recipe(recipe_file), stages=stages)
    result = run_pipeline(load_recipe(recipe_file, ["filter.keep_fraction=0.2"]), stages=stages)
    assert result.summaries["lengths"] == {"written": 4}


def _hold_lock(run_root, ready, release):
    from mint_distill.pipeline.runner import RunLock

    run_root.mkdir(parents=True, exist_ok=True)
    with RunLock(run_root):
        ready.set()
        release.wait(20)


def test_second_run_on_locked_folder_refuses(recipe_file):
    run_root = recipe_file.parent / "runs" / "toy"
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(run_root, ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(RunLockedError, match=rf"in use by pid {holder.pid}"):
            run_pipeline(load_recipe(recipe_file), stages=make_stages(Calls()))
    finally:
        release.set()
        holder.join(30)
    assert run_pipeline(load_recipe(recipe_file), stages=make_stages(Calls())).ran


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.json"
    write_json_atomic(target, {"old": True})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"new": tru')
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_write_gives_the_umask_mode_without_touching_the_umask(tmp_path, monkeypatch):
    import os

    previous = os.umask(0o027)
    try:
        # Another thread creating a file while the umask is briefly 0 would get 0o666.
        monkeypatch.setattr(os, "umask", lambda mask: pytest.fail("atomic_path changed the umask"))
        write_json_atomic(tmp_path / "shared.json", {"a": 1})
        with atomic_path(tmp_path / "weights.safetensors") as tmp:  # a writer that replaces its file
            tmp.unlink()
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600))
    finally:
        monkeypatch.undo()
        os.umask(previous)
    assert (tmp_path / "shared.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "weights.safetensors").stat().st_mode & 0o777 == 0o640


def test_a_malformed_json_file_is_an_error_naming_it_and_the_line(tmp_path):
    from mint_distill.io import read_json

    path = tmp_path / "mint-student.json"
    path.write_text('{\n  "fusion_weight": 0.3,\n  "rerank_top_k": \n}\n')
    with pytest.raises(DataError, match=r"mint-student\.json:4: not valid JSON"):
        read_json(path)


def test_appender_drops_torn_tail(tmp_path):
    path = tmp_path / "rows.jsonl"
    with JsonlAppender(path) as out:
        out.write_batch([{"i": 0}, {"i": 1}])
    with open(path, "a") as handle:
        handle.write('{"i": 2, "torn')
    assert [r["i"] for r in read_jsonl(path)] == [0, 1]
    with JsonlAppender(path) as out:
        out.write_batch([{"i": 2}])
    assert [r["i"] for r in read_jsonl(path)] == [0, 1, 2]

    path.write_text('{"i": 0}\n{"i": 1, \n{"i": 2}\n')  # a damaged line inside is no torn tail
    with pytest.raises(DataError, match=r"rows\.jsonl:2: not valid JSON"):
        list(read_jsonl(path))


def test_sigterm_interrupts_and_resume_works(recipe_file, tmp_path):
    """A real `mint-distill`-like process killed with SIGTERM mid-stage resumes on the next run."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "slow.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            from mint_distill.io import JsonlAppender, read_jsonl
            from mint_distill.pipeline import run_pipeline
            from mint_distill.pipeline.registry import StageRegistry
            from mint_distill.recipe import load_recipe
            registry = StageRegistry()

            @registry.register("slow", summary="slow", config_keys=())
            def slow(ctx):
                done = len(list(read_jsonl(ctx.dir / "rows.jsonl"))) if ctx.resuming else 0
                with JsonlAppender(ctx.dir / "rows.jsonl") as out:
                    for i in range(done, 6):
                        out.write_batch([{{"i": i}}])
                        print("row", i, flush=True)
                        time.sleep(float(sys.argv[1]))
                return {{"from": done}}

            try:
                run_pipeline(load_recipe({str(recipe_file)!r}), stages=registry.ordered())
            except KeyboardInterrupt:
                sys.exit(130)
            """
        )
    )
    process = subprocess.Popen([sys.executable, str(script), "5"], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().startswith("row 0")
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 130
    finished = subprocess.run([sys.executable, str(script), "0"], capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    rows = [r["i"] for r in read_jsonl(recipe_file.parent / "runs" / "toy" / "slow" / "rows.jsonl")]
    assert rows == list(range(6))
    manifest = json.loads((recipe_file.parent / "runs" / "toy" / "slow" / "manifest.json").read_text())
    assert manifest["summary"] == {"from": 1}


def test_sibling_run_reuses_stages_with_the_same_fingerprint(recipe_file):
    calls = Calls()
    stages = make_stages(calls)
    run_pipeline(load_recipe(recipe_file), stages=stages)
    sibling = run_pipeline(load_recipe(recipe_file, ["name=variant", "teacher.generation.seed=7"]), stages=stages)
    assert sibling.reused == ["words", "lengths"] and sibling.ran == ["total"]
    assert calls.counts == {"words": 1, "lengths": 1, "total": 2}
    reused = json.loads((sibling.run_root / "lengths" / "manifest.json").read_text())
    assert reused["reused_from"].endswith("toy/lengths")
    assert (sibling.run_root / "lengths" / "lengths.jsonl").read_text().count("\n") == 4
    # the copy is a fresh stage of the sibling run from now on
    assert run_pipeline(load_recipe(recipe_file, ["name=variant", "teacher.generation.seed=7"]), stages=stages).ran == []
    isolated = run_pipeline(load_recipe(recipe_file, ["name=isolated", "reuse_stages=false"]), stages=stages)
    assert isolated.ran == ["words", "lengths", "total"]


def test_registering_the_builtin_stages_does_not_import_torch():
    # `mint-distill validate` and every run list the stages first; importing torch costs seconds.
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from mint_distill.pipeline import all_stages\n"
        "names = [stage.name for stage in all_stages()]\n"
        "print(','.join(names), 'torch' in sys.modules)\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert finished.returncode == 0, finished.stderr
    names, torch_loaded = finished.stdout.split()
    assert {"train-biencoder", "evaluate", "package"} <= set(names.split(","))
    assert torch_loaded == "False"


def test_a_local_report_encoder_is_an_input_of_the_teacher_report(recipe_file, tmp_path):
    from mint_distill.pipeline.runner import _local_model_files
    from mint_distill.validation import model_references

    encoder = tmp_path / "report-encoder"
    encoder.mkdir()
    (encoder / "config.json").write_text("{}")
    (encoder / "model.safetensors").write_bytes(b"weights")
    report = next(stage for stage in all_stages() if stage.name == "teacher-report")
    recipe = load_recipe(recipe_file, [f"teacher.report.encoder={encoder}"])
    assert model_references(recipe)["teacher.report.encoder"] == str(encoder)
    assert sorted(path.name for path in _local_model_files(report, recipe)) == ["config.json", "model.safetensors"]
    assert "teacher.report.encoder" not in model_references(load_recipe(recipe_file, ["teacher.report.enabled=false"]))

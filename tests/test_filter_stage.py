"""The filter stage and `mint-distill filter`: records, summary, cache reuse, resume, bad data, two processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import accelerate_on_two_cpu_processes, run_on_cpu
from fixtures.evaluation.tiny_encoders import save_tiny_sentence_transformer
from fixtures.tiny_lm import save_tiny_llama

from mint_distill.cli import cli
from mint_distill.errors import DataError, RecipeError
from mint_distill.filtering import KeepRule
from mint_distill.filtering.stage import SCORE_CACHE, run_filter_stage
from mint_distill.io import read_json, read_jsonl
from mint_distill.recipe import load_recipe
from mint_distill.scoring import LikelihoodScorer

ITEMS = {
    "b1": (
        "Neptune Oyster",
        "Neptune Oyster. Seafood. North End, Boston. The lobster roll is worth the wait.",
    ),
    "b2": ("Jiffy Lube", "Jiffy Lube. Oil Change Stations. Boston. In and out in ten minutes."),
    "b3": (
        "Wally's Cafe",
        "Wally's Cafe. Jazz & Blues, Bars. South End, Boston. Live jazz every night.",
    ),
    "b4": ("Taqueria", "El Pelon Taqueria. Mexican. Fenway, Boston. Cheap fish tacos."),
    "b5": ("Library", "Boston Public Library. Libraries. Back Bay, Boston. Quiet reading rooms."),
}
REQUESTS = [
    (
        "u1#0",
        "u1",
        "train",
        "Looking for seafood and live jazz in Boston this weekend.",
        ["b1", "b3", "b5"],
    ),
    (
        "u2#0",
        "u2",
        "dev",
        "Cheap tacos near Fenway, and a quick oil change on the way.",
        ["b2", "b4"],
    ),
    (
        "u3#0",
        "u3",
        "train",
        "Something quiet to read in, then oysters.",
        ["b5", "b1", "b2", "b3", "b4"],
    ),
    ("u4#0", "u4", "train", "Anything fun.", []),
]


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    return save_tiny_sentence_transformer(tmp_path_factory.mktemp("encoder") / "model")


def write_run(root: Path, model: Path | str, **filter_keys) -> Path:
    """A recipe and the upstream outputs the filter reads, written by hand in the documented formats."""
    keys = {"model": str(model), "batch_size": 2, **filter_keys}
    root.mkdir(parents=True, exist_ok=True)
    recipe = root / "recipe.yaml"
    recipe.write_text(
        textwrap.dedent(f"""
        name: toy
        run_dir: {root / "runs"}
        data:
          source: {{format: yelp_academic, path: x}}
        filter: {json.dumps(keys)}
    """)
    )
    (root / "runs/toy/data").mkdir(parents=True)
    (root / "runs/toy/generate").mkdir(parents=True)
    (root / "runs/toy/data/items.jsonl").write_text(
        "".join(
            json.dumps(
                {"item_id": item_id, "name": name, "categories": [], "city": "Boston", "text": text}
            )
            + "\n"
            for item_id, (name, text) in ITEMS.items()
        )
    )
    (root / "runs/toy/generate/requests.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "request_id": rid,
                    "user_id": uid,
                    "split": split,
                    "request": text,
                    "item_ids": ids,
                    "sentences": [],
                    "attempts": 1,
                    "settings": {},
                }
            )
            + "\n"
            for rid, uid, split, text, ids in REQUESTS
        )
    )
    return recipe


def outputs(recipe: Path) -> tuple[list[dict], dict]:
    folder = recipe.parent / "runs/toy/filter"
    return list(read_jsonl(folder / "pairs.jsonl")), read_json(folder / "summary.json")


def test_pairs_hold_every_shown_item_with_its_score_rank_and_decision(tmp_path, tiny_llama):
    recipe = write_run(tmp_path, tiny_llama)
    run_filter_stage(load_recipe(recipe), quiet=True)
    pairs, summary = outputs(recipe)

    shown = [(rid, item_id) for rid, _, _, _, ids in REQUESTS for item_id in ids]
    assert [(p["request_id"], p["item_id"]) for p in pairs] == shown
    requests = {rid: (uid, split, text) for rid, uid, split, text, _ in REQUESTS}
    independent = LikelihoodScorer(str(tiny_llama), batch_size=1).score(
        [ITEMS[p["item_id"]][1] for p in pairs], [requests[p["request_id"]][2] for p in pairs]
    )
    rule = KeepRule(keep_fraction=0.5)
    for rid, uid, split, _, ids in REQUESTS[:3]:
        own = [p for p in pairs if p["request_id"] == rid]
        assert all(p["user_id"] == uid and p["split"] == split for p in own)
        assert sum(p["kept"] for p in own) == rule.keep_count(len(ids))
        best_first = sorted(own, key=lambda p: p["rank"])
        assert [p["score"] for p in best_first] == sorted((p["score"] for p in own), reverse=True)
        assert all(p["kept"] == (p["rank"] <= rule.keep_count(len(ids))) for p in own)
    assert [p["score"] for p in pairs] == pytest.approx(independent, abs=1e-4)

    assert summary["pairs_in"] == 10 and summary["pairs_kept"] == 2 + 1 + 3
    assert summary["requests"] == 4 and summary["requests_without_items"] == 1
    assert summary["pairs_scored_now"] == 10 and summary["pairs_from_cache"] == 0
    example = summary["examples"][0]
    assert example["request_id"] == "u1#0" and example["request"] == REQUESTS[0][3]
    assert len(example["kept"]) == 2 and len(example["dropped"]) == 1
    assert example["kept"][0]["name"] in {name for name, _ in ITEMS.values()}
    assert (recipe.parent / "runs/toy" / SCORE_CACHE).is_file()


def test_a_rerun_from_cached_scores_leaves_the_students_fresh(tmp_path, tiny_llama):
    recipe = write_run(tmp_path, tiny_llama)
    run_filter_stage(load_recipe(recipe), quiet=True)
    manifest = tmp_path / "runs/toy/filter/manifest.json"
    first = read_json(manifest)
    assert run_filter_stage(load_recipe(recipe), force=True, quiet=True).ran == ["filter"]
    again = read_json(manifest)
    # summary.json now counts every pair as cached, but later stages read the same pairs
    assert (first["summary"]["pairs_from_cache"], again["summary"]["pairs_from_cache"]) == (0, 10)
    assert again["output_hash"] == first["output_hash"]


def test_a_new_keep_rule_reruns_the_stage_from_cached_scores(tmp_path, tiny_llama):
    recipe = write_run(tmp_path, tiny_llama)
    run_filter_stage(load_recipe(recipe), quiet=True)
    scores = [p["score"] for p in outputs(recipe)[0]]

    result = run_filter_stage(
        load_recipe(recipe, ["filter.keep_fraction=0.3", "filter.mint_compat=true"]), quiet=True
    )
    pairs, summary = outputs(recipe)
    assert result.ran == ["filter"]
    assert summary["pairs_scored_now"] == 0 and summary["pairs_from_cache"] == 10
    assert [p["score"] for p in pairs] == scores
    assert summary["pairs_kept"] == sum(
        KeepRule(keep_fraction=0.3, mint_compat=True).keep_count(n) for n in (3, 2, 5)
    )

    again = run_filter_stage(
        load_recipe(recipe, ["filter.keep_fraction=0.3", "filter.mint_compat=true"]), quiet=True
    )
    assert again.skipped == ["filter"]


@pytest.mark.parametrize("method", ["random", "none"])
def test_random_and_none_never_load_a_model(tmp_path, method):
    recipe = write_run(tmp_path, tmp_path / "no-such-model", method=method, seed=5)
    run_filter_stage(load_recipe(recipe), quiet=True)
    pairs, summary = outputs(recipe)
    assert all(p["score"] is None for p in pairs)
    rule = KeepRule(method, keep_fraction=0.5, seed=5)
    for rid, _, _, _, ids in REQUESTS:
        decisions = rule.decide(rid, len(ids))
        own = [p for p in pairs if p["request_id"] == rid]
        assert [(p["rank"], p["kept"]) for p in own] == [(d.rank, d.kept) for d in decisions]
    assert summary["pairs_kept"] == (10 if method == "none" else 6)
    assert "pairs_scored_now" not in summary


def test_the_encoder_method_keeps_the_items_the_bi_encoder_finds_closest(tmp_path, tiny_encoder):
    from sentence_transformers import SentenceTransformer

    recipe = write_run(tmp_path, tiny_encoder, method="encoder")
    run_filter_stage(load_recipe(recipe), quiet=True)
    pairs, summary = outputs(recipe)

    model = SentenceTransformer(str(tiny_encoder), device="cpu")
    rule = KeepRule("encoder", keep_fraction=0.5)
    for rid, _, _, text, ids in REQUESTS[:3]:
        own = [p for p in pairs if p["request_id"] == rid]
        documents = model.encode_document([ITEMS[item_id][1] for item_id in ids])
        expected = model.similarity(model.encode_query([text]), documents)[0].tolist()
        assert [p["score"] for p in own] == pytest.approx(expected, abs=1e-5)
        closest = sorted(range(len(ids)), key=lambda i: -expected[i])[: rule.keep_count(len(ids))]
        assert {p["item_id"] for p in own if p["kept"]} == {ids[i] for i in closest}
    assert summary["method"] == "encoder" and summary["pairs_kept"] == 2 + 1 + 3
    assert summary["texts_encoded_now"] == len(ITEMS) + 3  # each distinct item and request once

    rerun = run_filter_stage(load_recipe(recipe, ["filter.keep_fraction=0.3"]), quiet=True)
    assert rerun.ran == ["filter"]
    assert outputs(recipe)[1]["texts_encoded_now"] == 0
    assert [p["score"] for p in outputs(recipe)[0]] == [p["score"] for p in pairs]


@pytest.mark.parametrize(
    ("method", "model", "needed"),
    [("encoder", "embedded:smollm2-135m-instruct", "sentence-transformer"),
     ("likelihood", "embedded:all-mpnet-base-v2", "causal-lm")],
)
def test_a_filter_model_of_the_wrong_kind_is_refused_with_its_key(tmp_path, method, model, needed):
    recipe = write_run(tmp_path, model, method=method)
    with pytest.raises(RecipeError, match=rf"filter(.|\n)*`{model}`(.|\n)*needs a {needed}"):
        load_recipe(recipe)


def test_an_interrupted_stage_resumes_from_the_scores_it_committed(tmp_path, tiny_llama):
    recipe = write_run(tmp_path, tiny_llama)
    calls = []

    def interrupt_third_batch(module, args, output):
        if type(module).__name__ == "LlamaForCausalLM":
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt

    handle = torch.nn.modules.module.register_module_forward_hook(interrupt_third_batch)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_filter_stage(load_recipe(recipe), quiet=True)
    finally:
        handle.remove()
    assert not (recipe.parent / "runs/toy/filter/pairs.jsonl").exists()

    run_filter_stage(load_recipe(recipe), quiet=True)
    pairs, summary = outputs(recipe)
    assert (
        summary["pairs_from_cache"] == 4 and summary["pairs_scored_now"] == 6
    )  # two batches of two were committed

    fresh = write_run(tmp_path / "fresh", tiny_llama)
    run_filter_stage(load_recipe(fresh), quiet=True)
    assert outputs(fresh)[0] == pairs


def test_bad_upstream_records_name_the_file_and_line(tmp_path, tiny_llama):
    recipe = write_run(tmp_path, tiny_llama)
    requests = recipe.parent / "runs/toy/generate/requests.jsonl"
    lines = requests.read_text().splitlines(keepends=True)
    requests.write_text(lines[0] + lines[1].replace('"b4"', '"b404"') + "".join(lines[2:]))
    with pytest.raises(DataError, match=r"requests\.jsonl:2: item `b404` is not in .*items\.jsonl"):
        run_filter_stage(load_recipe(recipe), quiet=True)
    requests.write_text(lines[0] + "{not json\n")
    with pytest.raises(DataError, match=r"requests\.jsonl:2: not valid JSON"):
        run_filter_stage(load_recipe(recipe), quiet=True)
    requests.write_text(lines[0] + lines[0])
    with pytest.raises(DataError, match=r"requests\.jsonl:2: request_id `u1#0` repeats line 1"):
        run_filter_stage(load_recipe(recipe), quiet=True)
    (recipe.parent / "runs/toy/generate/requests.jsonl").unlink()
    with pytest.raises(DataError, match=r"requests\.jsonl not found"):
        run_filter_stage(load_recipe(recipe), quiet=True)


def test_the_cli_runs_the_stage_and_reports_bad_data_with_exit_code_2(tmp_path, tiny_llama):
    recipe = write_run(tmp_path, tiny_llama)
    result = CliRunner().invoke(cli, ["--quiet", "filter", str(recipe), "filter.method=random"])
    assert result.exit_code == 0, result.output
    assert "kept 6 of 10 pairs from 4 requests (method random)" in result.output
    result = CliRunner().invoke(cli, ["--quiet", "filter", str(recipe), "filter.method=random"])
    assert "filter is fresh" in result.output
    (recipe.parent / "runs/toy/data/items.jsonl").write_text("{}\n")
    result = CliRunner().invoke(cli, ["--quiet", "filter", str(recipe), "filter.keep_fraction=0.2"])
    assert result.exit_code == 2 and "items.jsonl:1: field `item_id`" in result.output


def test_two_processes_write_exactly_what_one_process_writes(tmp_path, tiny_llama):
    def filter_in_subprocess(*launcher: str, recipe: Path) -> subprocess.CompletedProcess:
        # Both runs in the same CPU-only environment, so their scores can be compared byte for byte.
        return run_on_cpu([*launcher, "-m", "mint_distill", "filter", str(recipe)], timeout=300)

    single = write_run(tmp_path / "single", tiny_llama)
    alone = filter_in_subprocess(sys.executable, recipe=single)
    assert alone.returncode == 0, alone.stderr[-3000:]
    double = write_run(tmp_path / "double", tiny_llama)
    done = filter_in_subprocess(*accelerate_on_two_cpu_processes(), recipe=double)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "process 0 of 2 scored" in done.stderr and "process 1 of 2 scored" in done.stderr
    _, summary = outputs(double)
    # scored by both processes before the main one ran the stage: scored by this run all the same
    assert summary["pairs_scored_now"] == 10 and summary["pairs_from_cache"] == 0
    assert (double.parent / "runs/toy/filter/pairs.jsonl").read_bytes() == (
        single.parent / "runs/toy/filter/pairs.jsonl"
    ).read_bytes()


def test_two_processes_score_nothing_where_another_runs_filter_stage_is_reused(tmp_path, tiny_llama):
    first = write_run(tmp_path, tiny_llama)
    run_filter_stage(load_recipe(first), quiet=True)
    second = tmp_path / "second.yaml"  # the same filter, in a run of another name beside it
    second.write_text(first.read_text().replace("name: toy\n", "name: toy2\n"))
    for stage in ("data", "generate"):
        shutil.copytree(tmp_path / "runs/toy" / stage, tmp_path / "runs/toy2" / stage)
    done = run_on_cpu([*accelerate_on_two_cpu_processes(), "-m", "mint_distill", "filter", str(second)], timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "of 2 scored" not in done.stderr
    assert read_json(tmp_path / "runs/toy2/filter/manifest.json")["reused_from"] == str(tmp_path / "runs/toy/filter")
    assert not (tmp_path / "runs/toy2" / SCORE_CACHE).exists()

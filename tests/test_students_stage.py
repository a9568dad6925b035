"""`mint-distill train`: the student stages on a run folder, freshness, errors, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from fixtures.students.toy import save_tiny_encoder, write_toy_world

from mint_distill.cli import cli
from mint_distill.pipeline import all_stages, stage_states
from mint_distill.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
TRAINING = {
    "learning_rate": 3e-3,
    "batch_size": 4,
    "warmup_ratio": 0.0,
    "checkpoint_every": 2,
    "early_stopping_patience": None,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run_folder(
    tmp_path: Path, *, epochs: float = 1, eval_every: int = 5, finetune: str = "full"
) -> Path:
    """A recipe whose data, generate and filter stages have finished (toy outputs, manifests)."""
    encoder = save_tiny_encoder(tmp_path / "encoder", dropout=0.0)
    run_root = tmp_path / "runs" / "toy"
    world = write_toy_world(tmp_path / "world")
    for stage, source in (("data", "items"), ("generate", "requests"), ("filter", "pairs")):
        (run_root / stage).mkdir(parents=True)
        (run_root / stage / world[source].name).write_bytes(world[source].read_bytes())
    training = {**TRAINING, "epochs": epochs, "eval_every": eval_every}
    recipe = {
        "name": "toy",
        "run_dir": str(tmp_path / "runs"),
        "seed": 0,
        "data": {"source": {"format": "yelp_academic", "path": "unused"}},
        "students": {
            "biencoder": {
                "model": str(encoder),
                "finetune": finetune,
                "max_seq_length": 32,
                "dev_catalog": None,
                "training": training,
            },
            "negatives": {"rank_start": 4, "rank_end": 24, "per_positive": 2},
            "crossencoder": {
                "model": str(encoder),
                "max_length": 48,
                "training": {**training, "epochs": 0.5},
            },
        },
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    _finished(load_recipe(path), ("data", "tune-teacher", "generate", "filter"))
    return path


def _finished(recipe, names: tuple[str, ...]) -> None:
    """Manifests that make the named stages fresh for `recipe`, in pipeline order (toy outputs)."""
    run_root = Path(recipe.run_dir) / recipe.name
    for stage in [s for s in all_stages() if s.name in names]:
        (run_root / stage.name).mkdir(parents=True, exist_ok=True)
        expected = stage_states(recipe, [stage])[0].expected
        manifest = {"stage": stage.name, **expected, "output_hash": f"{stage.name}-v1"}
        (run_root / stage.name / "manifest.json").write_text(json.dumps(manifest))


def _manifest(run_root: Path, stage: str) -> dict:
    return json.loads((run_root / stage / "manifest.json").read_text())


def test_train_runs_the_student_stages_then_finds_them_fresh(tmp_path):
    recipe = _run_folder(tmp_path)
    run_root = tmp_path / "runs" / "toy"
    result = CliRunner().invoke(cli, ["--quiet", "train", str(recipe)])
    assert result.exit_code == 0, result.output
    assert (
        "done train-biencoder" in result.output and "done train-crossencoder" in result.output
    )

    biencoder = _manifest(run_root, "train-biencoder")
    card = json.loads((run_root / "train-biencoder" / "model" / "mint-student.json").read_text())
    assert card["provenance"]["config_hash"] == biencoder["config_hash"]
    assert biencoder["summary"]["train_pairs"] == 40 and biencoder["summary"]["processes"] == 1

    pairs = [
        json.loads(line) for line in (run_root / "filter" / "pairs.jsonl").read_text().splitlines()
    ]
    shown = {}
    for pair in pairs:
        shown.setdefault(pair["user_id"], set()).add(pair["item_id"])
    user_of = {pair["request_id"]: pair["user_id"] for pair in pairs}
    groups = [
        json.loads(line)
        for line in (run_root / "mine-negatives" / "negatives.jsonl").read_text().splitlines()
    ]
    assert len(groups) == sum(pair["kept"] for pair in pairs)
    for group in groups:
        assert len(group["negatives"]) == 2
        assert not set(group["negatives"]) & shown[user_of[group["request_id"]]]
    dev_requests = {pair["request_id"] for pair in pairs if pair["kept"] and pair["split"] == "dev"}
    rankings = [
        json.loads(line)
        for line in (run_root / "mine-negatives" / "dev_rankings.jsonl").read_text().splitlines()
    ]
    assert dev_requests and {ranking["request_id"] for ranking in rankings} == dev_requests
    assert (run_root / "train-crossencoder" / "model" / "config.json").is_file()
    crossencoder = _manifest(run_root, "train-crossencoder")["summary"]
    assert crossencoder["dev_reranked_requests"] >= 1 and "dev_mrr@10_first_stage" in crossencoder

    again = CliRunner().invoke(cli, ["--quiet", "train", str(recipe)])
    assert again.exit_code == 0, again.output
    skipped = "fresh, skipped: train-biencoder, average-biencoder, mine-negatives, train-crossencoder"
    assert skipped in " ".join(again.output.split())


def test_dev_rankings_reach_the_depth_the_crossencoder_reranks(tmp_path):
    recipe = _run_folder(tmp_path, epochs=0.5)
    document = yaml.safe_load(recipe.read_text())
    document["students"]["negatives"] = {"rank_start": 2, "rank_end": 6, "per_positive": 1}
    document["students"]["crossencoder"]["rerank_top_k"] = 20
    recipe.write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(cli, ["--quiet", "train", str(recipe)])
    assert result.exit_code == 0, result.output
    path = tmp_path / "runs" / "toy" / "mine-negatives" / "dev_rankings.jsonl"
    rankings = [json.loads(line)["ranking"] for line in path.read_text().splitlines()]
    # 20 of the 32 items, not the 12 the negatives' window alone would rank
    assert rankings and {len(ranking) for ranking in rankings} == {20}


def test_the_biencoder_cannot_select_by_a_fused_measure(tmp_path):
    recipe = _run_folder(tmp_path)
    override = "students.biencoder.training.select_by=fused_mrr@10"
    result = CliRunner().invoke(cli, ["--quiet", "train", str(recipe), override])
    assert result.exit_code == 2
    assert "fused_mrr@10 measures the cross-encoder fused with the bi-encoder" in " ".join(result.output.split())
    assert not (tmp_path / "runs" / "toy" / "train-biencoder").exists()


def test_evaluate_refuses_students_their_settings_made_stale_but_not_missing_ones(tmp_path):
    recipe = _run_folder(tmp_path)
    trained = CliRunner().invoke(cli, ["--quiet", "train", str(recipe), "--only", "biencoder"])
    assert trained.exit_code == 0, trained.output
    result = CliRunner().invoke(cli, ["evaluate", str(recipe), "students.biencoder.training.learning_rate=0.01"])
    assert result.exit_code == 2, result.output
    assert "train-biencoder (stale)" in result.output and "train-crossencoder" not in result.output
    # an interrupted student is ranked without, as one that never ran
    (tmp_path / "runs" / "toy" / "train-crossencoder").mkdir()
    (tmp_path / "runs" / "toy" / "train-crossencoder" / ".in_progress.json").write_text("{}")
    from mint_distill.evaluation.stage import EVALUATE_STAGE
    from mint_distill.pipeline.runner import refuse_unfinished_upstream

    refuse_unfinished_upstream(load_recipe(recipe), [EVALUATE_STAGE], unfinished_ok=True)


def test_negatives_are_mined_with_a_lora_biencoder(tmp_path):
    recipe = _run_folder(tmp_path, epochs=0.5, finetune="lora")
    run_root = tmp_path / "runs" / "toy"
    result = CliRunner().invoke(cli, ["--quiet", "train", str(recipe)])
    assert result.exit_code == 0, result.output
    assert (run_root / "train-biencoder" / "model" / "adapter_config.json").is_file()
    assert not (run_root / "train-biencoder" / "model" / "config.json").is_file()
    groups = (run_root / "mine-negatives" / "negatives.jsonl").read_text().splitlines()
    assert groups and all(len(json.loads(line)["negatives"]) == 2 for line in groups)
    assert (run_root / "train-crossencoder" / "model" / "config.json").is_file()


def test_lora_targets_that_name_no_layer_stop_the_run_before_it_starts(tmp_path):
    recipe = _run_folder(tmp_path, finetune="lora")
    run_root = tmp_path / "runs" / "toy"
    # The tiny encoder is a BERT: its attention projections are query/key/value, not MPNet's q/k/v.
    wrong = "students.biencoder.lora.target_modules=[q,v]"
    result = CliRunner().invoke(cli, ["--quiet", "train", str(recipe), wrong])
    assert result.exit_code != 0
    message = " ".join(result.output.split())
    assert "stage train-biencoder: students.biencoder.lora.target_modules ['q', 'v'] names no layer" in message
    assert "query" in message and "value" in message
    assert not (run_root / "train-biencoder").exists()

    right = "students.biencoder.lora.target_modules=[query,value]"
    validated = CliRunner().invoke(cli, ["validate", str(recipe), right])
    assert "train-biencoder" not in validated.output, validated.output


def test_cross_encoder_lora_targets_that_name_no_layer_stop_the_run_before_it_starts(tmp_path):
    recipe = _run_folder(tmp_path)
    run_root = tmp_path / "runs" / "toy"
    lora = "students.crossencoder.finetune=lora"
    # q/v are MPNet's names; the head (classifier) is trained in full, not adapted
    for targets, shown in (("[q,v]", "['q', 'v']"), ("[classifier]", "['classifier']")):
        wrong = f"students.crossencoder.lora.target_modules={targets}"
        result = CliRunner().invoke(cli, ["--quiet", "train", str(recipe), lora, wrong])
        assert result.exit_code != 0
        message = " ".join(result.output.split())
        assert f"stage train-crossencoder: students.crossencoder.lora.target_modules {shown} names no layer" in message
        assert "query" in message and "value" in message
        assert not (run_root / "train-biencoder").exists()

    right = "students.crossencoder.lora.target_modules=[query,value]"
    validated = CliRunner().invoke(cli, ["validate", str(recipe), lora, right])
    assert "train-crossencoder" not in validated.output, validated.output


def test_a_fully_fine_tuned_cross_encoder_keeps_the_fingerprint_it_had_before_its_lora_keys(tmp_path):
    from mint_distill.pipeline.runner import config_dump
    from mint_distill.students.stage import train_crossencoder_stage

    recipe = load_recipe(_run_folder(tmp_path))
    section = config_dump(recipe)["students"]["crossencoder"]
    before = {key: value for key, value in section.items() if key not in ("finetune", "lora")}
    assert train_crossencoder_stage.config(config_dump(recipe))["students.crossencoder"] == before
    recipe.students.crossencoder.lora.r = 32  # unused while fully fine-tuned
    assert train_crossencoder_stage.config(config_dump(recipe))["students.crossencoder"] == before
    recipe.students.crossencoder.finetune = "lora"
    with_lora = train_crossencoder_stage.config(config_dump(recipe))["students.crossencoder"]
    assert with_lora["finetune"] == "lora" and with_lora["lora"]["r"] == 32
    recipe.students.crossencoder.lora.r = 8
    assert train_crossencoder_stage.config(config_dump(recipe))["students.crossencoder"]["lora"]["r"] == 8


def test_train_names_the_unfinished_upstream_stage(tmp_path):
    recipe = _run_folder(tmp_path)
    (tmp_path / "runs" / "toy" / "filter" / "manifest.json").unlink()
    result = CliRunner().invoke(cli, ["train", str(recipe), "--only", "biencoder"])
    assert result.exit_code == 2
    assert "filter (missing)" in result.output and "--until filter" in " ".join(result.output.split())


def test_train_refuses_an_upstream_stage_its_settings_made_stale(tmp_path):
    recipe = _run_folder(tmp_path)
    # a filter setting: the students would be "fresh" on the old pairs, or retrained on them
    result = CliRunner().invoke(cli, ["train", str(recipe), "filter.keep_fraction=0.3"])
    assert result.exit_code == 2 and "filter (stale)" in result.output
    assert not (tmp_path / "runs" / "toy" / "train-biencoder").exists()


def test_a_killed_training_resumes_from_its_last_checkpoint(tmp_path):
    recipe = _run_folder(tmp_path, epochs=3, eval_every=0)
    stage_dir = tmp_path / "runs" / "toy" / "train-biencoder"
    command = [
        str(Path(sys.executable).with_name("mint-distill")),
        "--quiet",
        "train",
        str(recipe),
        "--only",
        "biencoder",
    ]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
    }
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    while (
        not list((stage_dir / ".checkpoints").glob("step-*"))
        and process.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "training ended before it could be killed"
    assert not (stage_dir / "manifest.json").exists()

    result = CliRunner().invoke(cli, ["--quiet", "train", str(recipe), "--only", "biencoder"])
    assert result.exit_code == 0, result.output
    summary = _manifest(tmp_path / "runs" / "toy", "train-biencoder")["summary"]
    assert summary["resumed_from_step"] >= 2
    records = [json.loads(line) for line in (stage_dir / "log.jsonl").read_text().splitlines()]
    steps = [record["step"] for record in records if "dev" not in record]
    assert steps == list(range(1, summary["steps"] + 1))


@pytest.mark.parametrize("only", ["biencoder", "crossencoder"])
def test_train_refuses_a_disabled_student(tmp_path, only):
    recipe = _run_folder(tmp_path)
    result = CliRunner().invoke(
        cli, ["train", str(recipe), f"students.{only}.enabled=false", "--only", only]
    )
    assert result.exit_code == 2
    assert "disables" in result.output


def test_a_new_weight_or_length_resaves_the_student_without_training_it_again(tmp_path):
    from safetensors.torch import load_file

    recipe = _run_folder(tmp_path, epochs=0.5, finetune="lora")
    run_root = tmp_path / "runs" / "toy"
    first = CliRunner().invoke(cli, ["--quiet", "train", str(recipe), "--only", "biencoder"])
    assert first.exit_code == 0, first.output
    trained = load_file(run_root / "train-biencoder" / "model" / "adapter_model.safetensors")
    checkpoint_hash = _manifest(run_root, "train-biencoder")["output_hash"]

    overrides = ["students.biencoder.finetuned_weight=0.5", "students.biencoder.inference_max_seq_length=40"]
    second = CliRunner().invoke(cli, ["--quiet", "train", str(recipe), "--only", "biencoder", *overrides])
    assert second.exit_code == 0, second.output
    output = " ".join(second.output.split())
    assert "fresh, skipped: train-biencoder" in output and "done average-biencoder" in output
    assert _manifest(run_root, "train-biencoder")["output_hash"] == checkpoint_hash
    averaged = load_file(run_root / "average-biencoder" / "model" / "adapter_model.safetensors")
    assert averaged.keys() == trained.keys()
    for name, weights in trained.items():
        assert torch.equal(averaged[name], 0.5 * weights if "lora_B" in name else weights), name
    summary = _manifest(run_root, "average-biencoder")["summary"]
    assert summary == {"finetuned_weight": 0.5, "inference_max_seq_length": 40, "averaged_tensors": summary["averaged_tensors"]}
    assert summary["averaged_tensors"] == sum("lora_B" in name for name in trained) > 0

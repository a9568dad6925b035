"""LoRA tuning on a tiny random Llama: the request loss goes down, the adapter reloads to the same
outputs, an interrupted run resumes to the same weights, `select_by: dev_loss` keeps the best
epoch's adapter (also across a resumption), and QLoRA runs the same path on the CPU."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import REPO_ROOT
from fixtures.teacher.tiny_teacher import SEEDS, save_tiny_teacher

from mint_distill.errors import DataError
from mint_distill.recipe.sections.base import LoraSpec
from mint_distill.recipe.sections.teacher import PromptSpec, TuningSpec
from mint_distill.teacher import tuning as tuning_module
from mint_distill.teacher.card import write_adapter_card
from mint_distill.teacher.histories import load_seeds
from mint_distill.teacher.prompts import PromptBuilder
from mint_distill.teacher.tuning import build_examples, collate, request_loss, tune_teacher

SPEC = TuningSpec(
    epochs=4,
    batch_size=2,
    gradient_accumulation=1,
    learning_rate=5e-2,
    warmup_ratio=0.0,
    checkpoint_every=2,
    max_length=512,
    lora=LoraSpec(r=8, alpha=16, dropout=0.1, target_modules="all-linear"),
)
PROMPT = PromptSpec(num_examples=1, max_tokens=400)
# CUDA kernels are not bitwise reproducible: on an H100 a resumed run ends ~1e-6 away.
RESUME_ATOL = 1e-4 if torch.cuda.is_available() else 1e-6


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return save_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher") / "model")


@pytest.fixture(scope="module")
def seeds():
    return load_seeds(SEEDS)


@pytest.fixture(scope="module")
def tuned(teacher_dir, seeds, tmp_path_factory):
    out = tmp_path_factory.mktemp("tuned")
    result = tune_teacher(str(teacher_dir), seeds, out, tuning=SPEC, prompt=PROMPT)
    result.model.cpu()  # trained on a GPU where there is one; compared here with CPU models
    return out, result


def _train_batch(tokenizer, seeds):
    builder = PromptBuilder(
        tokenizer, [s for s in seeds if s.split == "train"], num_examples=1, max_tokens=400
    )
    examples = build_examples(
        builder, [s for s in seeds if s.split == "train"], seed=0, prompt_seed=0, epoch=0, max_length=512
    )
    return collate(examples, tokenizer.pad_token_id)


def test_the_prompt_seed_draws_the_examples_and_the_tuning_seed_the_order(tuned, seeds):
    train = [s for s in seeds if s.split == "train"]
    builder = PromptBuilder(tuned[1].tokenizer, train, num_examples=1, max_tokens=400)

    def built(seed, prompt_seed):
        return build_examples(builder, train, seed=seed, prompt_seed=prompt_seed, epoch=0, max_length=512)

    def targets(examples):
        return [e.input_ids[-e.target_length :] for e in examples]

    base = built(0, 0)
    other_examples, other_order = built(0, 1), built(1, 0)
    assert targets(other_examples) == targets(base) and other_examples != base
    assert sorted(targets(other_order)) == sorted(targets(base)) and targets(other_order) != targets(base)


def test_a_prompt_too_long_for_max_length_drops_whole_examples_not_its_start(tuned, seeds):
    train = [s for s in seeds if s.split == "train"]
    tokenizer = tuned[1].tokenizer
    builder = PromptBuilder(tokenizer, train, num_examples=3, max_tokens=None)  # as pointrec-paper.yaml
    full = build_examples(builder, train, seed=0, prompt_seed=0, epoch=0, max_length=4096)
    limit = min(len(e.input_ids) for e in full) - 5  # every example over it
    fitted = build_examples(builder, train, seed=0, prompt_seed=0, epoch=0, max_length=limit)
    for example, untouched in zip(fitted, full, strict=True):
        assert len(example.input_ids) <= limit
        assert example.input_ids[-example.target_length :] == untouched.input_ids[-untouched.target_length :]
        # cut from the left, a prompt would open mid-example, unlike any prompt generation writes
        assert tokenizer.decode(example.input_ids[:8]) == tokenizer.decode(untouched.input_ids[:8])


def _lora_weights(folder):
    from safetensors.torch import load_file

    return load_file(folder / "adapter" / "adapter_model.safetensors")


def test_request_loss_goes_down(tuned, teacher_dir, seeds):
    from transformers import AutoModelForCausalLM

    out, result = tuned
    batch = _train_batch(result.tokenizer, seeds)
    base = AutoModelForCausalLM.from_pretrained(teacher_dir).eval()
    result.model.eval()
    with torch.no_grad():
        before, after = request_loss(base, batch).item(), request_loss(result.model, batch).item()
    assert after < before - 0.5  # nats per request token
    summary = result.summary
    assert summary["steps"] == 12  # 6 train seeds / batch 2 = 3 steps per epoch, 4 epochs
    assert summary["train_loss_last"] < summary["train_loss_first"]
    assert summary["dev_loss_after"] < summary["dev_loss_before"]
    log = json.loads((out / "log.json").read_text())
    assert [entry["step"] for entry in log] == list(range(1, 13))
    # the finished state stays for a resumption until the stage's manifest is written
    assert [p.name for p in (out / ".checkpoints").glob("step-*")] == ["step-0000012"]


def test_a_finished_tuning_run_again_resumes_at_its_end(tuned, teacher_dir, seeds, tmp_path, monkeypatch):
    out, finished = tuned
    shutil.copytree(out / ".checkpoints", tmp_path / ".checkpoints")
    real_loss = tuning_module.request_loss

    def scored_only(model, batch, reduction="mean"):
        assert reduction == "sum", "a finished run trained a batch again"  # dev scoring sums
        return real_loss(model, batch, reduction)

    monkeypatch.setattr(tuning_module, "request_loss", scored_only)
    again = tune_teacher(str(teacher_dir), seeds, tmp_path, tuning=SPEC, prompt=PROMPT)
    assert (again.summary["resumed_from_step"], again.summary["steps"]) == (12, 12)
    assert again.summary["dev_loss_by_epoch"] == finished.summary["dev_loss_by_epoch"]
    assert _same_weights(_lora_weights(tmp_path), _lora_weights(out))


def test_dev_seeds_are_scored_at_each_epoch_end_without_changing_the_training(tuned, teacher_dir, seeds, tmp_path):
    out, result = tuned
    log = json.loads((out / "log.json").read_text())
    assert [entry["step"] for entry in log if "dev_loss" in entry] == [3, 6, 9, 12]  # 3 steps an epoch
    by_epoch = result.summary["dev_loss_by_epoch"]
    assert list(by_epoch) == ["1.0", "2.0", "3.0", "4.0"]
    assert by_epoch["4.0"] == result.summary["dev_loss_after"]
    assert by_epoch["1.0"] < result.summary["dev_loss_before"]

    train_only = tune_teacher(
        str(teacher_dir), [s for s in seeds if s.split == "train"], tmp_path, tuning=SPEC, prompt=PROMPT
    )
    assert train_only.summary["dev_loss_by_epoch"] == {} and train_only.summary["dev_loss_after"] is None
    scored, unscored = _lora_weights(out), _lora_weights(tmp_path)
    assert all(torch.equal(scored[name], unscored[name]) for name in scored)


def test_loss_is_on_request_tokens_only(tuned, seeds):
    _, result = tuned
    batch = _train_batch(result.tokenizer, seeds)
    target_tokens = int((batch["labels"] != -100).sum())
    expected = sum(
        len(result.tokenizer(" " + s.request)["input_ids"]) + 1 for s in seeds if s.split == "train"
    )
    assert target_tokens == expected  # the request and its EOS, never the prompt
    assert (
        batch["attention_mask"][:, -1] == 1
    ).all()  # left padding: every target ends at the last position


def test_adapter_reloads_to_the_same_outputs(tuned, teacher_dir, seeds):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from mint_distill.teacher.generation import load_teacher

    out, result = tuned
    assert (out / "adapter" / "adapter_config.json").is_file()
    batch = _train_batch(result.tokenizer, seeds)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids")}
    reloaded = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(teacher_dir), out / "adapter"
    ).eval()
    merged, _ = load_teacher(str(teacher_dir), out / "adapter")
    merged.cpu()
    result.model.eval()
    with torch.no_grad():
        trained = result.model(**inputs).logits
        assert torch.allclose(reloaded(**inputs).logits, trained, atol=1e-5)
        assert torch.allclose(merged(**inputs).logits, trained, atol=1e-4)


def _interrupt_at_training_batch(number: int, monkeypatch):
    """Make the `number`th training batch's loss raise KeyboardInterrupt (dev scoring, which sums
    its losses, is not counted); return the real loss function, to put back for the resumption."""
    real_loss = tuning_module.request_loss
    batches = {"n": 0}

    def interrupted(model, batch, reduction="mean"):
        if reduction == "mean":
            batches["n"] += 1
            if batches["n"] == number:
                raise KeyboardInterrupt
        return real_loss(model, batch, reduction)

    monkeypatch.setattr(tuning_module, "request_loss", interrupted)
    return real_loss


def test_interrupted_tuning_resumes_to_the_same_weights(
    tuned, teacher_dir, seeds, tmp_path, monkeypatch
):
    out, uninterrupted_run = tuned
    real_loss = _interrupt_at_training_batch(8, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        tune_teacher(str(teacher_dir), seeds, tmp_path, tuning=SPEC, prompt=PROMPT)
    checkpoints = sorted(p.name for p in (tmp_path / ".checkpoints").iterdir())
    assert checkpoints == ["step-0000006"]  # only the last one is kept
    monkeypatch.setattr(tuning_module, "request_loss", real_loss)

    resumed = tune_teacher(str(teacher_dir), seeds, tmp_path, tuning=SPEC, prompt=PROMPT)
    assert resumed.summary["resumed_from_step"] == 6
    assert resumed.summary["steps"] == 12
    uninterrupted, again = _lora_weights(out), _lora_weights(tmp_path)
    assert uninterrupted.keys() == again.keys()
    for name in uninterrupted:
        assert torch.allclose(uninterrupted[name], again[name], atol=RESUME_ATOL), name
    log = json.loads((tmp_path / "log.json").read_text())
    assert [entry["step"] for entry in log] == list(range(1, 13))
    # the epochs scored before the interruption are kept, the later ones scored once each
    assert resumed.summary["dev_loss_by_epoch"] == pytest.approx(uninterrupted_run.summary["dev_loss_by_epoch"], abs=1e-3)


SELECT_BY_DEV_LOSS = SPEC.model_copy(update={"select_by": "dev_loss"})
# Dev losses answered in turn: before tuning, then at the end of epochs 1-4; epoch 2 is the best.
SCRIPTED_DEV_LOSSES = (3.0, 2.0, 1.5, 1.8, 1.9)


def _script_dev_losses(monkeypatch, losses=SCRIPTED_DEV_LOSSES) -> list[dict]:
    """Make `_dev_loss` answer `losses` in turn; return the LoRA weights it was asked about, one
    copy per call (calls of an interrupted run and its resumption count together)."""
    from peft import get_peft_model_state_dict

    asked: list[dict] = []

    def scripted(accelerator, model, *args):
        weights = get_peft_model_state_dict(accelerator.unwrap_model(model))
        asked.append({name: tensor.detach().cpu().clone() for name, tensor in weights.items()})
        return losses[len(asked) - 1]

    monkeypatch.setattr(tuning_module, "_dev_loss", scripted)
    return asked


@pytest.fixture(scope="module")
def selected(teacher_dir, seeds, tmp_path_factory):
    out = tmp_path_factory.mktemp("selected")
    with pytest.MonkeyPatch.context() as monkeypatch:
        asked = _script_dev_losses(monkeypatch)
        result = tune_teacher(str(teacher_dir), seeds, out, tuning=SELECT_BY_DEV_LOSS, prompt=PROMPT)
    return out, result, asked


def _same_weights(left: dict, right: dict) -> bool:
    return left.keys() == right.keys() and all(torch.equal(left[name], right[name]) for name in left)


def test_select_by_dev_loss_keeps_the_adapter_of_the_best_epoch(selected):
    from peft import get_peft_model_state_dict

    out, result, asked = selected
    summary = result.summary
    assert summary["dev_loss_by_epoch"] == {"1.0": 2.0, "2.0": 1.5, "3.0": 1.8, "4.0": 1.9}
    assert (summary["kept_step"], summary["kept_epoch"], summary["dev_loss_after"]) == (6, 2.0, 1.5)
    epoch_two, last = asked[2], asked[4]
    assert not _same_weights(epoch_two, last)  # training went on after the kept epoch
    assert _same_weights(_lora_weights(out), epoch_two)
    in_memory = get_peft_model_state_dict(result.model)
    assert _same_weights({name: tensor.cpu() for name, tensor in in_memory.items()}, epoch_two)
    card = write_adapter_card(out / "adapter", summary=summary, hyperparameters={}, seeds_file="seeds.jsonl", seeds_sha256="0")
    assert "kept: the adapter of step 6 (epoch 2.0; `select_by: dev_loss`)" in card.read_text()


def test_select_by_last_keeps_the_last_step_whatever_the_dev_loss(teacher_dir, seeds, tmp_path, monkeypatch):
    asked = _script_dev_losses(monkeypatch)
    result = tune_teacher(str(teacher_dir), seeds, tmp_path, tuning=SPEC, prompt=PROMPT)
    assert (result.summary["kept_step"], result.summary["dev_loss_after"]) == (12, 1.9)
    assert _same_weights(_lora_weights(tmp_path), asked[4])


def test_an_interrupted_selection_resumes_to_the_same_kept_adapter(selected, teacher_dir, seeds, tmp_path, monkeypatch):
    out, _, _ = selected
    asked = _script_dev_losses(monkeypatch)
    real_loss = _interrupt_at_training_batch(8, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        tune_teacher(str(teacher_dir), seeds, tmp_path, tuning=SELECT_BY_DEV_LOSS, prompt=PROMPT)
    assert len(asked) == 3  # before tuning, epochs 1 and 2: the best is on disk before the interruption
    monkeypatch.setattr(tuning_module, "request_loss", real_loss)

    resumed = tune_teacher(str(teacher_dir), seeds, tmp_path, tuning=SELECT_BY_DEV_LOSS, prompt=PROMPT)
    assert resumed.summary["resumed_from_step"] == 6
    assert (resumed.summary["kept_step"], resumed.summary["dev_loss_after"]) == (6, 1.5)
    kept, expected = _lora_weights(tmp_path), _lora_weights(out)
    assert kept.keys() == expected.keys()
    for name in kept:
        assert torch.allclose(kept[name], expected[name], atol=RESUME_ATOL), name


def test_a_best_newer_than_the_resumed_checkpoint_is_kept_with_its_own_record(
    teacher_dir, seeds, tmp_path, monkeypatch
):
    # Checkpoints at steps 4 and 8, epoch ends at 3, 6, 9 and 12: interrupted after step 7, the
    # run resumes from step 4 and replays epoch 2, which scores worse this time (as GPU kernels
    # may); the best stays the first epoch 2, its weights and its dev loss together.
    asked = _script_dev_losses(monkeypatch, losses=(3.0, 2.0, 1.5, 2.1, 1.8, 1.9))
    spec = SELECT_BY_DEV_LOSS.model_copy(update={"checkpoint_every": 4})
    real_loss = _interrupt_at_training_batch(8, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        tune_teacher(str(teacher_dir), seeds, tmp_path, tuning=spec, prompt=PROMPT)
    monkeypatch.setattr(tuning_module, "request_loss", real_loss)

    resumed = tune_teacher(str(teacher_dir), seeds, tmp_path, tuning=spec, prompt=PROMPT)
    assert resumed.summary["resumed_from_step"] == 4
    assert resumed.summary["dev_loss_by_epoch"] == {"1.0": 2.0, "2.0": 2.1, "3.0": 1.8, "4.0": 1.9}
    assert (resumed.summary["kept_step"], resumed.summary["dev_loss_after"]) == (6, 1.5)
    assert _same_weights(_lora_weights(tmp_path), asked[2])


def test_select_by_dev_loss_without_dev_seeds_is_refused(teacher_dir, seeds, tmp_path):
    train_only = [s for s in seeds if s.split == "train"]
    with pytest.raises(DataError, match="teacher.tuning.select_by"):
        tune_teacher(str(teacher_dir), train_only, tmp_path, tuning=SELECT_BY_DEV_LOSS, prompt=PROMPT)


def test_qlora_runs_on_the_cpu(seeds, tmp_path):
    pytest.importorskip("bitsandbytes")
    wide = save_tiny_teacher(
        tmp_path / "model", hidden=64
    )  # bitsandbytes' CPU 4-bit kernels need 64-wide rows
    spec = SPEC.model_copy(update={"qlora": True, "epochs": 1.0})
    result = tune_teacher(str(wide), seeds, tmp_path / "tuned", tuning=spec, prompt=PROMPT)
    assert result.summary["quantization"] == "4bit"
    assert result.summary["steps"] == 3
    assert torch.isfinite(torch.tensor(result.summary["train_loss_last"]))
    quantized = [m for m in result.model.modules() if type(m).__name__ == "Linear4bit"]
    assert quantized  # the frozen base really is 4-bit
    config = json.loads((tmp_path / "tuned" / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["peft_type"] == "LORA"


def test_validate_names_select_by_dev_loss_when_the_seed_file_has_no_dev_seeds(tmp_path):
    from mint_distill.pipeline import all_stages
    from mint_distill.recipe import load_recipe

    (stage,) = [stage for stage in all_stages() if stage.name == "tune-teacher"]
    lines = SEEDS.read_text(encoding="utf-8").splitlines()
    train_only = tmp_path / "train-only.jsonl"
    train_only.write_text("".join(f"{line}\n" for line in lines if json.loads(line)["split"] == "train"))

    def selection_problems(seeds_file):
        recipe = load_recipe(
            REPO_ROOT / "recipes" / "smoke.yaml",
            [f"teacher.tuning.seeds={seeds_file}", "teacher.tuning.select_by=dev_loss"],
        )
        return [problem for problem in stage.check(recipe) if "select_by" in problem]

    assert selection_problems(SEEDS) == []
    assert selection_problems(train_only) == [
        f"teacher.tuning.select_by: dev_loss needs dev seeds; {train_only} has none"
    ]

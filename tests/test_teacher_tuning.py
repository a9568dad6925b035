"""LoRA tuning on a tiny random Llama: the request loss goes down, the adapter reloads to the same
outputs, an interrupted run resumes to the same weights, and QLoRA runs the same path on the CPU."""

from __future__ import annotations

import json

import pytest
import torch
from fixtures.teacher.tiny_teacher import SEEDS, save_tiny_teacher

from mint_distill.recipe.sections.base import LoraSpec
from mint_distill.recipe.sections.teacher import PromptSpec, TuningSpec
from mint_distill.teacher import tuning as tuning_module
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
        builder, [s for s in seeds if s.split == "train"], seed=0, epoch=0, max_length=512
    )
    return collate(examples, tokenizer.pad_token_id)


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
    assert not (out / ".checkpoints").exists()  # scratch removed once the adapter is saved


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


def test_interrupted_tuning_resumes_to_the_same_weights(
    tuned, teacher_dir, seeds, tmp_path, monkeypatch
):
    out, uninterrupted_run = tuned
    calls = {"n": 0}
    real_loss = tuning_module.request_loss

    def killed_after_seven_training_batches(model, batch, reduction="mean"):
        if reduction == "mean":
            calls["n"] += 1
            if calls["n"] == 8:
                raise KeyboardInterrupt
        return real_loss(model, batch, reduction)

    monkeypatch.setattr(tuning_module, "request_loss", killed_after_seven_training_batches)
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

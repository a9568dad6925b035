"""The `average-biencoder` step: the trained student averaged with its base (WiSE-FT), set to its inference length."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fixtures.students.toy import save_tiny_encoder, tiny_spec, write_toy_world

from mint_distill.students import train_biencoder
from mint_distill.students.averaging import save_averaged_student

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LONG_TEXT = " ".join(["coffee"] * 200)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A full and a LoRA student trained at 32 tokens from a tiny encoder whose own length is 48."""
    root = tmp_path_factory.mktemp("averaging")
    world = write_toy_world(root / "world")
    encoder = save_tiny_encoder(root / "encoder")
    students = {}
    variants = {"full": {"finetune": "full"}, "lora": {"finetune": "lora"}}
    # peft keeps an embedding's update in lora_embedding_A/B, not lora_A/B
    variants["lora-embeddings"] = {"finetune": "lora", "lora": {"target_modules": ["word_embeddings", "query"]}}
    for name, settings in variants.items():
        spec = {**tiny_spec(encoder, epochs=1, eval_every=0), **settings}
        inputs = {key: world[key] for key in ("pairs", "requests", "items")}
        train_biencoder(spec, **inputs, out_dir=root / name, seed=0)
        students[name] = root / name / "model"
    return {"encoder": encoder, **students}


def _load(folder: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu")


def _info(folder: Path) -> dict:
    return json.loads((folder / "mint-student.json").read_text())


@pytest.mark.parametrize(
    ("finetune", "inference_length", "expected"), [("full", None, 32), ("full", 40, 40), ("lora", 48, 48)]
)
def test_the_saved_student_encodes_at_its_inference_length(
    trained, tmp_path, finetune, inference_length, expected
):
    assert _load(trained[finetune]).tokenize([LONG_TEXT])["input_ids"].shape[1] == 32
    out = tmp_path / "model"
    saved = save_averaged_student(
        trained[finetune],
        out,
        base_model=str(trained["encoder"]),
        finetuned_weight=1.0,
        inference_max_seq_length=inference_length,
    )
    assert saved == (0, expected)
    assert _load(out).tokenize([LONG_TEXT])["input_ids"].shape[1] == expected
    info = _info(out)
    assert (info["max_length"], info["inference_max_length"]) == (32, expected)
    assert f"| max sequence length (inference) | {expected} |" in (out / "README.md").read_text()
    assert _load(trained[finetune]).tokenize([LONG_TEXT])["input_ids"].shape[1] == 32, "the trained copy is untouched"


# LoRA averages its update (B) and keeps the rest; a full student averages every weight with its base.
@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_a_student_saved_at_weight_one_half_lies_halfway_between_its_base_and_its_trained_self(
    trained, tmp_path, finetune
):
    saved = {}
    for finetuned_weight in (1.0, 0.5):
        out = tmp_path / str(finetuned_weight)
        save_averaged_student(
            trained[finetune], out, base_model=str(trained["encoder"]), finetuned_weight=finetuned_weight
        )
        saved[finetuned_weight] = _load(out).state_dict()
        assert _info(out)["finetuned_weight"] == finetuned_weight
        card = (out / "README.md").read_text()
        assert f"| weight of the fine-tuned model (WiSE-FT) | {finetuned_weight:.4g} |" in card
    base = _load(trained["encoder"]).state_dict()
    as_trained = _load(trained[finetune]).state_dict()
    assert saved[1.0].keys() == as_trained.keys() == saved[0.5].keys()
    changed = 0
    for name, value in as_trained.items():
        assert torch.equal(saved[1.0][name], value), name
        if finetune == "lora":
            expected = 0.5 * value if "lora_B" in name else value
        else:
            expected = 0.5 * (base[name] + value) if value.is_floating_point() else value
        torch.testing.assert_close(saved[0.5][name], expected, msg=name)
        changed += not torch.equal(saved[0.5][name], value)
    assert changed > 0


@pytest.mark.parametrize("student", ["lora", "lora-embeddings"])
def test_a_lora_student_at_weight_one_half_merges_halfway_whatever_modules_it_adapts(trained, tmp_path, student):
    from mint_distill.adapters.loading import load_adapted_model

    out = tmp_path / "half"
    save_averaged_student(trained[student], out, base_model=str(trained["encoder"]), finetuned_weight=0.5)
    base = _load(trained["encoder"])[0].auto_model.state_dict()
    full = load_adapted_model(trained[student], str(trained["encoder"]), merge=True)[0].auto_model.state_dict()
    half = load_adapted_model(out, str(trained["encoder"]), merge=True)[0].auto_model.state_dict()
    moved = [name for name in base if not torch.equal(base[name], full[name])]
    assert moved and (student == "lora" or "embeddings.word_embeddings.weight" in moved)
    for name in moved:
        torch.testing.assert_close(half[name], 0.5 * (base[name] + full[name]), msg=name)


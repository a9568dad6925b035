"""The students on the embedded encoders (skipped where they are not pulled)."""

from __future__ import annotations

import pytest
import torch
from conftest import embedded_or_skip
from fixtures.students.toy import tiny_spec, write_toy_world

from mint_distill.students import load_biencoder, load_crossencoder, train_biencoder

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]


def test_minilm_lora_student_trains_and_reloads_from_its_adapter_folder(tmp_path):
    from sentence_transformers import SentenceTransformer

    reference = embedded_or_skip("all-minilm-l6-v2")
    paths = write_toy_world(tmp_path / "world")
    spec = tiny_spec(reference, epochs=1, learning_rate=1e-3, eval_every=0)
    spec.update(finetune="lora", dev_catalog=None)
    summary = train_biencoder(
        spec, **{k: paths[k] for k in ("pairs", "requests", "items")}, out_dir=tmp_path / "out", seed=0
    )
    folder = tmp_path / "out" / "model"
    assert (folder / "adapter_config.json").is_file() and not (folder / "model.safetensors").exists()
    texts = ["we love jazz and saxophone", "alpha jazz live band place"]
    reloaded = SentenceTransformer(str(folder), device="cpu").encode(texts, convert_to_tensor=True)
    base = load_biencoder(reference, device="cpu").encode(texts, convert_to_tensor=True)
    assert summary["best_step"] > 0, summary  # the toy pairs are easy to learn: a trained step is kept
    assert reloaded.shape == base.shape and (reloaded - base).abs().max() > 1e-4


def test_mpnet_lora_covers_attention_and_feed_forward_and_the_cross_encoder_gets_one_logit():
    from mint_distill.recipe.sections.students import BiEncoderSpec
    from mint_distill.students import add_lora

    reference = embedded_or_skip("all-mpnet-base-v2")
    model = load_biencoder(reference, device="cpu")
    add_lora(model, BiEncoderSpec().lora)
    adapted = {
        name.split(".lora_A")[0].rsplit(".", 1)[-1]
        for name, _ in model.named_parameters()
        if "lora_A" in name
    }
    assert {"q", "k", "v", "o", "dense"} <= adapted
    crossencoder = load_crossencoder(reference, max_length=64, device="cpu")
    assert crossencoder.num_labels == 1
    scores = crossencoder.predict([("a quiet wine bar", "Wine bar in Boston")], activation_fn=torch.nn.Identity())
    assert scores.shape == (1,)


def test_mpnet_lora_cross_encoder_adapts_the_encoder_and_trains_the_whole_head():
    from peft.utils import ModulesToSaveWrapper

    from mint_distill.recipe.sections.students import CrossEncoderSpec
    from mint_distill.students import add_crossencoder_lora

    reference = embedded_or_skip("all-mpnet-base-v2")
    model = load_crossencoder(reference, max_length=64, device="cpu")
    add_crossencoder_lora(model, CrossEncoderSpec().lora)
    network = model[0].model.base_model.model
    # MPNet's head is classifier.dense + classifier.out_proj: saved whole, not LoRA-adapted
    assert isinstance(network.classifier, ModulesToSaveWrapper)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert {name.split(".classifier.modules_to_save.default.")[1] for name in trainable if ".classifier." in name} == {
        "dense.weight", "dense.bias", "out_proj.weight", "out_proj.bias"
    }
    adapted = {name.split(".lora_A")[0].rsplit(".", 1)[-1] for name in trainable if "lora_A" in name}
    assert {"q", "k", "v", "o", "dense"} <= adapted
    assert all(".mpnet." in name for name in trainable if "lora_" in name)

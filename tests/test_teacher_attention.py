"""The CPU decoding attention gives what SDPA gives, and the teacher loader switches to it."""

from __future__ import annotations

import pytest
import torch
from fixtures.teacher.tiny_teacher import save_tiny_teacher
from transformers import AutoModelForCausalLM, AutoTokenizer

from mint_distill.teacher.attention import DECODE_ATTENTION, use_decode_attention
from mint_distill.teacher.generation import load_teacher

PROMPTS = ["a user likes pizza and quiet bars in the north end", "ramen", "brunch with friends on a sunday"]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return save_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher") / "model")


def _greedy(model, tokenizer, steps: int = 12):
    encoded = tokenizer(PROMPTS, return_tensors="pt", padding=True)  # rows of different lengths: left padding
    with torch.no_grad():
        return model.generate(
            **encoded,
            max_new_tokens=steps,
            min_new_tokens=steps,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            output_scores=True,
            return_dict_in_generate=True,
        )


def _sdpa_calls(monkeypatch) -> list[int]:
    calls = []
    original = torch.nn.functional.scaled_dot_product_attention

    def counted(query, *args, **kwargs):
        calls.append(query.shape[-2])
        return original(query, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counted)
    return calls


def test_decode_attention_matches_sdpa_on_a_padded_batch(teacher_dir, monkeypatch):
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(teacher_dir, attn_implementation="sdpa").eval()
    calls = _sdpa_calls(monkeypatch)
    reference = _greedy(model, tokenizer)
    sdpa_calls = len(calls)

    assert use_decode_attention(model)
    assert model.config._attn_implementation == DECODE_ATTENTION
    calls.clear()
    decoded = _greedy(model, tokenizer)

    layers = model.config.num_hidden_layers
    assert sdpa_calls == 12 * layers
    assert len(calls) == layers and min(calls) > 1, "only prompt processing should reach SDPA"
    assert torch.equal(decoded.sequences, reference.sequences)
    for step, (ours, theirs) in enumerate(zip(decoded.scores, reference.scores, strict=True)):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5, msg=f"logits differ at step {step}")


def test_eager_models_are_left_alone(teacher_dir):
    model = AutoModelForCausalLM.from_pretrained(teacher_dir, attn_implementation="eager")
    assert not use_decode_attention(model)
    assert model.config._attn_implementation == "eager"


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_teacher_loader_decodes_with_it_on_the_cpu_only(teacher_dir, precision):
    model, _ = load_teacher(str(teacher_dir), precision=precision)
    on_cpu = model.device.type == "cpu"  # the loader takes the GPU where there is one
    assert model.config._attn_implementation == (DECODE_ATTENTION if on_cpu else "sdpa")

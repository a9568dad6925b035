"""Precision `auto`: bfloat16 only where the device computes it natively, float32 elsewhere."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml

from mint_distill.models import precision as precision_module
from mint_distill.models.precision import (
    autocast,
    resolve_mixed_precision,
    resolve_precision,
    warn_if_emulated,
)
from mint_distill.pipeline.runner import stage_states
from mint_distill.recipe import load_recipe
from mint_distill.recipe.precision import precision_settings
from mint_distill.validation import validate_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.fixture(params=[True, False], ids=["native-bf16-cpu", "avx2-only-cpu"])
def native(request, monkeypatch):
    """Pretend models load on a CPU that has (or lacks) AVX512-BF16/AMX; warnings may fire again."""
    monkeypatch.setattr(precision_module, "_cpu_has_native_bf16", lambda: request.param)
    monkeypatch.setattr(precision_module, "default_device_type", lambda: "cpu")
    precision_module._warn_emulated.cache_clear()
    return request.param


def test_auto_is_bfloat16_only_on_a_cpu_that_computes_it_natively(native):
    assert resolve_precision("auto", "cpu") == ("bfloat16" if native else "float32")
    assert resolve_mixed_precision("auto", use_cpu=True) == ("bf16" if native else "no")
    layer = torch.nn.Linear(4, 4)
    with autocast("auto", "cpu"):
        out = layer(torch.ones(1, 4))
    assert out.dtype == (torch.bfloat16 if native else torch.float32)


def test_explicit_precisions_are_kept_and_emulated_bfloat16_is_warned_once(native, caplog):
    assert resolve_precision("bfloat16", "cpu") == "bfloat16"
    assert resolve_precision("float32", "cpu") == "float32"
    assert resolve_mixed_precision("bf16", use_cpu=True) == "bf16"
    with caplog.at_level(logging.WARNING, logger=precision_module.__name__):
        for _ in range(3):
            with autocast("bfloat16", "cpu"):
                torch.nn.Linear(2, 2)(torch.ones(1, 2))
        warn_if_emulated("bf16", "cpu")
        warn_if_emulated("float32", "cpu")
    emulated = [r for r in caplog.records if "emulates" in r.getMessage()]
    assert len(emulated) == (0 if native else 1)
    if emulated:
        assert "AVX512-BF16" in emulated[0].getMessage() and "auto" in emulated[0].getMessage()


def test_auto_on_a_gpu_that_only_emulates_bfloat16_is_float32_and_fp16_training(monkeypatch, caplog):
    from mint_distill.models.loading import quantization_config

    # A pre-Ampere GPU: torch says yes to bfloat16 unless asked about native support.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    precision_module._warn_emulated.cache_clear()
    assert resolve_precision("auto", "cuda") == "float32"
    assert resolve_mixed_precision("auto", use_cpu=False) == "fp16"
    assert quantization_config("4bit").bnb_4bit_compute_dtype == torch.float32
    with caplog.at_level(logging.WARNING, logger=precision_module.__name__):
        warn_if_emulated("bfloat16", "cuda")
    assert "GPU predates Ampere" in caplog.text


def test_fp16_training_on_the_cpu_falls_back_to_float32(caplog):
    with caplog.at_level(logging.WARNING, logger=precision_module.__name__):
        assert resolve_mixed_precision("fp16", use_cpu=True) == "no"
    assert "needs a GPU" in caplog.text


def test_dense_ranker_at_auto_shares_float32_vectors_only_where_it_resolves_to_float32(native, tmp_path):
    from fixtures.evaluation.tiny_encoders import (
        load_fixture_collection,
        save_tiny_sentence_transformer,
    )

    from mint_distill.evaluation import DenseRanker

    collection = load_fixture_collection()
    model = str(save_tiny_sentence_transformer(tmp_path / "biencoder"))
    DenseRanker(model, cache_dir=tmp_path / "cache", device="cpu").rank(collection, depth=200)
    ranker = DenseRanker(model, cache_dir=tmp_path / "cache", device="cpu", precision="auto")
    ranker.rank(collection, depth=200)
    assert ranker.precision == ("bfloat16" if native else "float32")
    assert ranker.counters["items_encoded"] == (7 if native else 0)


def test_unquoted_no_in_a_recipe_means_no_mixed_precision(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(f"extends: {RECIPES / 'smoke.yaml'}\nteacher:\n  tuning:\n    mixed_precision: no\n", encoding="utf-8")
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["teacher"]["tuning"]["mixed_precision"] is False
    loaded = load_recipe(path, ("students.biencoder.training.mixed_precision=no",))
    assert loaded.teacher.tuning.mixed_precision == "no"
    assert loaded.students.biencoder.training.mixed_precision == "no"


def test_validate_names_each_key_whose_bfloat16_would_be_emulated(native):
    recipe = load_recipe(
        RECIPES / "smoke.yaml",
        ("evaluation.precision=bfloat16", "students.crossencoder.training.mixed_precision=bf16"),
    )
    report = validate_recipe(recipe)
    assert set(report.precisions) == set(precision_settings(recipe.model_dump(mode="json")))
    assert report.precisions["filter.precision"] == f"auto -> {'bfloat16' if native else 'float32'} on this CPU"
    warned = sorted(warning.split(":")[0] for warning in report.warnings)
    assert warned == ([] if native else ["evaluation.precision", "students.crossencoder.training.mixed_precision"])


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.yaml")), ids=lambda path: path.name)
def test_shipped_recipes_never_ask_for_bfloat16_outright(recipe):
    """A shipped recipe must run at full speed on any CPU: bfloat16 only through `auto`."""
    settings = precision_settings(load_recipe(recipe).model_dump(mode="json"))
    assert not {key for key, value in settings.items() if value in ("bf16", "bfloat16")}


def test_a_stage_at_auto_is_fresh_exactly_where_auto_runs_what_it_ran_at(native, tmp_path):
    """Fingerprints follow the arithmetic: explicit bf16 and `auto` match only on a native-bf16 CPU."""
    common = (f"run_dir={tmp_path}",)
    explicit = {
        name: load_recipe(RECIPES / "smoke.yaml", (*common, *overrides))
        for name, overrides in {
            "bf16": ("evaluation.precision=bfloat16", "students.biencoder.training.mixed_precision=bf16"),
            "float32": ("evaluation.precision=float32", 'students.biencoder.training.mixed_precision="no"'),
        }.items()
    }
    auto = load_recipe(RECIPES / "smoke.yaml", (*common, "students.biencoder.training.mixed_precision=auto"))

    def fingerprints(recipe):
        return {state.stage.name: state.expected["config_hash"] for state in stage_states(recipe) if state.expected}

    same_as = explicit["bf16"] if native else explicit["float32"]
    other = explicit["float32"] if native else explicit["bf16"]
    assert fingerprints(auto)["evaluate"] == fingerprints(same_as)["evaluate"] != fingerprints(other)["evaluate"]
    assert fingerprints(auto)["train-biencoder"] == fingerprints(same_as)["train-biencoder"]
    assert fingerprints(auto)["train-biencoder"] != fingerprints(other)["train-biencoder"]

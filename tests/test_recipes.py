"""The shipped recipes: they load, the paper recipe says what it needs, and smoke runs end to end."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from conftest import REPO_ROOT, embedded_or_skip

from mint_distill.adapters.bundle import verify_bundle
from mint_distill.cli import cli
from mint_distill.models import resolve_model
from mint_distill.recipe import load_recipe
from mint_distill.validation import model_references, validate_recipe

RECIPES = sorted((REPO_ROOT / "recipes").glob("*.yaml"))
ALL_STAGES = [
    "data",
    "tune-teacher",
    "generate",
    "filter",
    "train-biencoder",
    "average-biencoder",
    "mine-negatives",
    "train-crossencoder",
    "evaluate",
    "package",
]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_loads_and_its_ablations_are_valid(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    report = validate_recipe(recipe)
    assert not [problem for problem in report.problems if problem.startswith("ablations.")]


def test_the_paper_recipe_names_what_needs_the_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    recipe = load_recipe(REPO_ROOT / "recipes" / "pointrec-paper.yaml")
    references = model_references(recipe)
    assert references["teacher.model"].startswith("meta-llama/")
    assert references["filter.model"] == "google/flan-t5-xl" and recipe.filter.quantization == "8bit"
    assert recipe.teacher.tuning.qlora is True
    problems = validate_recipe(recipe).problems
    hub_ids = sorted({reference for reference in references.values() if "/" in reference and ":" not in reference})
    for reference in hub_ids:
        assert any(f"`{reference}`" in problem and "hub" in problem for problem in problems), reference
    assert any("data.source" in problem for problem in problems)  # the Yelp Open Dataset is not here


def test_the_smoke_recipe_uses_only_embedded_models():
    recipe = load_recipe(REPO_ROOT / "recipes" / "smoke.yaml")
    for key, reference in model_references(recipe).items():
        assert reference.startswith("embedded:"), key
        resolve_model(embedded_or_skip(reference.removeprefix("embedded:")))


def _run(*arguments: str) -> str:
    """The command's output with all whitespace removed: the console wraps long lines anywhere."""
    result = CliRunner().invoke(cli, ["--quiet", *arguments], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return _squashed(result.output)


def _squashed(text: str) -> str:
    return "".join(text.split())


def test_smoke_runs_every_stage_then_skips_then_reruns_only_what_a_key_changes(
    shared_data, tmp_path, monkeypatch
):
    for model in ("smollm2-135m-instruct", "all-minilm-l6-v2"):
        embedded_or_skip(model)
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("MINT_DISTILL_DATA_DIR", str(shared_data))
    recipe = "recipes/smoke.yaml"
    installed = tmp_path / "adapters" / "poi-smoke"
    common = (
        f"run_dir={tmp_path / 'runs'}", f"evaluation.cache_dir={tmp_path / 'cache'}", f"package.bundle_dir={installed}"
    )
    root = tmp_path / "runs" / "smoke"

    first = _run("run", recipe, *common)
    assert _squashed(f"ran {len(ALL_STAGES)} stage(s) ({', '.join(ALL_STAGES)})") in first
    metrics = json.loads((root / "evaluate" / "metrics.json").read_text())
    assert {"bm25", "zeroshot-minilm", "upr-smollm2", "biencoder-mint", "crossencoder-mint"} == set(
        metrics["systems"]
    )
    assert metrics["requests"] == 54 and metrics["coverage"]["condensed_qrels"]
    crossencoder = json.loads((root / "train-crossencoder" / "manifest.json").read_text())["summary"]
    assert metrics["systems"]["crossencoder-mint"]["fusion_weight"] == crossencoder["fusion_weight"] is not None
    assert _squashed(f"report: {root / 'evaluate' / 'report.md'}") in first
    assert (root / "package" / "poi-smoke" / "manifest.json").is_file()
    assert verify_bundle(installed) == [] and "installedtherun'sbundle" not in first

    shutil.rmtree(installed)  # a fresh package stage does not run, so `run` installs the bundle again
    again = _run("run", recipe, *common)
    assert "ran0stage(s)" in again and "report:" in again
    assert _squashed(f"installed the run's bundle in {installed} again") in again and verify_bundle(installed) == []

    changed = _run("run", recipe, *common, "filter.keep_fraction=0.3")
    assert _squashed(f"ran {len(ALL_STAGES) - 3} stage(s) ({', '.join(ALL_STAGES[3:])})") in changed
    filtered = json.loads((root / "filter" / "manifest.json").read_text())["summary"]
    assert filtered["pairs_scored_now"] == 0  # the keep rule changed; the scores come from the cache

    # stopped before evaluate: the last table is of other settings, so it is not printed as the result
    partial = _run("run", recipe, *common, "filter.keep_fraction=0.4", "--until", "filter")
    assert "ran1stage(s)(filter)" in partial and "report:" not in partial
    assert _squashed("evaluate is not up to date with these settings") in partial

"""Scoring bi-encoders on another run's synthetic dev split: what `ablate` chooses variants by."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fixtures.students.toy import save_tiny_encoder, tiny_spec, write_toy_world

from mint_distill.evaluation.ablations import compare_variants, render_markdown, score_on_main_dev
from mint_distill.recipe import load_recipe
from mint_distill.recipe.sections.students import BiEncoderSpec
from mint_distill.students import train_biencoder
from mint_distill.students.data import load_student_data
from mint_distill.students.dev_scoring import run_dev_data, score_on_dev

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _spec(encoder: Path) -> dict:
    # float32 spelled out: the recipe this spec goes into trains in bf16.
    spec = tiny_spec(encoder, epochs=3, eval_every=6, checkpoint_every=100, mixed_precision="no")
    spec.update(
        finetune="lora",
        lora={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"]},
    )
    return spec


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    """A finished run's folders as `ablate` finds them: data, generate, filter, the student."""
    root = tmp_path_factory.mktemp("dev-scoring")
    world = write_toy_world(root / "world", users=32, dev_users=8)
    encoder = save_tiny_encoder(root / "encoder", dropout=0.0)
    run = root / "runs" / "main"
    for stage, name in (("data", "items"), ("generate", "requests"), ("filter", "pairs")):
        (run / stage).mkdir(parents=True)
        shutil.copy(world[name], run / stage / f"{name}.jsonl")
    summary = train_biencoder(
        _spec(encoder),
        pairs=world["pairs"],
        requests=world["requests"],
        items=world["items"],
        out_dir=run / "train-biencoder",
        seed=0,
    )
    # What average-biencoder saves at finetuned_weight 1: the trained student as it is.
    shutil.copytree(run / "train-biencoder" / "model", run / "average-biencoder" / "model")
    return {"run": run, "encoder": encoder, "summary": summary, "world": world}


def test_a_runs_own_student_scores_what_its_training_selected_it_on(main_run):
    data = run_dev_data(main_run["run"])
    world = main_run["world"]
    assert data.dev == load_student_data(world["pairs"], world["requests"], world["items"]).dev
    spec = BiEncoderSpec.model_validate(_spec(main_run["encoder"]))
    summary = main_run["summary"]
    trained = score_on_dev(str(main_run["run"] / "train-biencoder" / "model"), data, spec, seed=0)
    untrained = score_on_dev(str(main_run["encoder"]), data, spec, seed=0)
    assert trained.measures["loss"] == pytest.approx(summary["dev_loss"], abs=1e-4)
    assert trained.measures["mrr@10"] == pytest.approx(summary["dev_mrr@10"], abs=1e-4)
    assert untrained.measures["loss"] == pytest.approx(summary["dev_loss_before"], abs=1e-4)
    assert trained.measures["loss"] < untrained.measures["loss"]
    # The per-pair terms are the dev loss taken apart: same pairs, same mean.
    for scores in (trained, untrained):
        assert set(scores.pair_losses) <= {f"{p.request_id}\t{p.item_id}" for p in data.dev}
        mean = sum(scores.pair_losses.values()) / len(scores.pair_losses)
        assert mean == pytest.approx(scores.measures["loss"], abs=1e-5)


def test_a_triplet_students_dev_loss_is_scored_at_its_own_margin(main_run, tmp_path):
    world, encoder = main_run["world"], main_run["encoder"]
    spec = {**_spec(encoder), "loss": "triplet", "triplet_margin": 0.25}
    spec["training"] = {**spec["training"], "epochs": 1}
    summary = train_biencoder(
        spec,
        pairs=world["pairs"],
        requests=world["requests"],
        items=world["items"],
        out_dir=tmp_path / "train-biencoder",
        seed=0,
    )
    data = run_dev_data(main_run["run"])
    untrained = score_on_dev(str(encoder), data, BiEncoderSpec.model_validate(spec), seed=0)
    assert untrained.measures["loss"] == pytest.approx(summary["dev_loss_before"], abs=1e-4)
    at_default_margin = score_on_dev(str(encoder), data, BiEncoderSpec.model_validate({**spec, "triplet_margin": 1.0}), seed=0)
    assert at_default_margin.measures["loss"] != pytest.approx(untrained.measures["loss"], abs=1e-4)


def test_ablate_scores_every_variant_on_the_main_runs_dev_split(main_run, tmp_path):
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(
        json.dumps(
            {
                "extends": str(REPO / "recipes" / "pointrec.yaml"),
                "name": "toy",
                "students": {"biencoder": _spec(main_run["encoder"])},
                "ablations": {"untrained": ["filter.method=none"]},
            }
        )
    )
    recipe = load_recipe(recipe_path)
    # A variant whose "student" is the untrained encoder: it must score as the zero-shot row does.
    variant = tmp_path / "variant"
    shutil.copytree(main_run["encoder"], variant / "average-biencoder" / "model")
    dev = score_on_main_dev({"full": {13: main_run["run"]}, "untrained": {13: variant}}, recipe)

    summary = main_run["summary"]
    assert dev["requests"] == summary["dev_requests"] and dev["pairs"] == summary["dev_pairs"]
    scores = dev["scores"]
    assert list(scores) == ["zero-shot", "full", "untrained"]
    assert scores["full"]["loss"] == pytest.approx(summary["dev_loss"], abs=1e-4)
    assert scores["untrained"] == pytest.approx(scores["zero-shot"])
    versus = dev["loss_versus_full"]
    assert set(versus) == {"zero-shot", "untrained"}
    delta = scores["untrained"]["loss"] - scores["full"]["loss"]
    assert versus["untrained"]["delta"] == pytest.approx(delta, abs=1e-5) and delta > 0

    # An arm of two students (the trained one and the untrained encoder) scores their means.
    two = score_on_main_dev({"full": {13: main_run["run"]}, "two": {13: main_run["run"], 1: variant}}, recipe)
    two_scores = two["scores"]["two"]
    assert two_scores["loss"] == pytest.approx((scores["full"]["loss"] + scores["untrained"]["loss"]) / 2)
    assert two["loss_versus_full"]["two"]["delta"] == pytest.approx(delta / 2, abs=1e-5)

    _write_evaluation(main_run["run"], [0.5, 0.6, 0.7], [0.4, 0.5, 0.6])
    _write_evaluation(variant, [0.4, 0.5, 0.6], [0.4, 0.5, 0.6])
    table = compare_variants({"full": {13: main_run["run"]}, "untrained": {13: variant}}, recipe, dev)
    text = render_markdown(table)
    assert "dev loss | dev MRR@10 |" in text
    untrained = scores["untrained"]
    significant = "▼" if versus["untrained"]["significant"] else ""
    assert f"{untrained['loss']:.3f} ({delta:+.3f}{significant}) | {untrained['mrr@10']:.3f} |" in text
    assert f"zero-shot encoder: dev loss {scores['zero-shot']['loss']:.3f}" in text


def _write_evaluation(root: Path, student: list[float], reference: list[float]) -> None:
    folder = root / "evaluate"
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["system,qid,NDCG@5"]
    for system, scores in (("biencoder-mint", student), ("zeroshot-mpnet", reference)):
        rows += [f"{system},q{index},{score}" for index, score in enumerate(scores)]
    (folder / "per_query.csv").write_text("\n".join(rows) + "\n")
    (folder / "metrics.json").write_text(json.dumps({"requests": len(student), "pool": "judged"}))

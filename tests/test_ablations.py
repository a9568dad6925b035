"""Ablation variants: their recipes, and the comparison of their bi-encoders with the full run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mint_distill.errors import RecipeError
from mint_distill.evaluation.ablations import (
    compare_variants,
    render_markdown,
    training_seed,
    variant_recipe,
    write_ablation_report,
)
from mint_distill.evaluation.significance import compare
from mint_distill.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
MEASURES = ["NDCG@5", "MRR"]


def _recipe(tmp_path: Path, ablations: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(
        json.dumps(
            {
                "extends": str(REPO / "recipes" / "pointrec.yaml"),
                "name": "toy",
                "run_dir": str(tmp_path / "runs"),
                "ablations": ablations,
            }
        )
    )
    return path


def test_a_variant_changes_its_keys_and_trains_only_the_biencoder(tmp_path):
    recipe = load_recipe(_recipe(tmp_path, {"filter-none": ["filter.method=none"]}))
    variant = variant_recipe(recipe, "filter-none")
    assert variant.name == "toy-filter-none" and variant.run_dir == recipe.run_dir
    assert variant.filter.method == "none" and recipe.filter.method == "likelihood"
    assert variant.students.crossencoder.enabled is False and variant.package.enabled is False
    assert [r.name for r in variant.evaluation.rankers] == [recipe.evaluation.reference]
    assert variant.ablations == {}
    # Everything the variant does not change is the same, so its data and teacher stages are reused.
    assert variant.data == recipe.data and variant.teacher == recipe.teacher


def test_bad_variant_overrides_name_the_variant_and_key(tmp_path):
    recipe = load_recipe(_recipe(tmp_path, {"typo": ["filter.methd=none"], "value": ["filter.method=nne"]}))
    with pytest.raises(RecipeError, match=r"ablations\.typo: .*filter\.methd.*Did you mean `method`"):
        variant_recipe(recipe, "typo")
    with pytest.raises(RecipeError, match=r"(?s)ablations\.value.*filter\.method.*nne"):
        variant_recipe(recipe, "value")


def _write_evaluation(root: Path, systems: dict[str, list[float]]) -> None:
    folder = root / "evaluate"
    folder.mkdir(parents=True)
    with (folder / "per_query.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["system", "qid", *MEASURES])
        for system, scores in systems.items():
            for index, score in enumerate(scores):
                writer.writerow([system, f"q{index}", score, score / 2])
    (folder / "metrics.json").write_text(json.dumps({"requests": len(scores), "pool": "judged"}))


def test_variants_are_compared_with_the_reference_and_the_full_run(tmp_path):
    recipe = load_recipe(
        _recipe(tmp_path, {"filter-none": ["filter.method=none"], "filter-random": ["filter.method=random"]})
    )
    reference = [0.2, 0.3, 0.4, 0.5, 0.6, 0.3, 0.2, 0.4]
    full = [score + 0.2 for score in reference]
    _write_evaluation(tmp_path / "main", {"zeroshot-mpnet": reference, "biencoder-mint": full})
    _write_evaluation(tmp_path / "none", {"zeroshot-mpnet": reference, "biencoder-mint": reference})
    worse = [score - 0.1 for score in reference]
    _write_evaluation(tmp_path / "random", {"zeroshot-mpnet": reference, "biencoder-mint": worse})

    table = compare_variants(
        {
            "full": {13: tmp_path / "main"},
            "filter-none": {13: tmp_path / "none"},
            "filter-random": {13: tmp_path / "random"},
        },
        recipe,
    )
    assert list(table["rows"]) == ["full", "filter-none", "filter-random"]
    assert table["measures"] == MEASURES
    full_row, none_row, random_row = (table["rows"][k] for k in ("full", "filter-none", "filter-random"))
    assert full_row["means"]["NDCG@5"] == pytest.approx(sum(full) / len(full))
    assert full_row["versus_reference"]["NDCG@5"]["delta"] == pytest.approx(0.2)
    assert full_row["versus_reference"]["NDCG@5"]["significant"]  # better on all 8 requests
    assert full_row["versus_full"] == {}
    assert none_row["versus_reference"]["NDCG@5"]["delta"] == pytest.approx(0.0)
    assert not none_row["versus_reference"]["NDCG@5"]["significant"]
    assert none_row["versus_full"]["NDCG@5"]["delta"] == pytest.approx(-0.2)
    assert random_row["versus_full"]["MRR"]["delta"] == pytest.approx(-0.15)
    assert table["overrides"]["filter-random"] == ["filter.method=random"]
    assert table["seeds"] == [13]

    report = write_ablation_report(table, tmp_path / "main" / "ablations")
    text = report.read_text()
    assert text == render_markdown(json.loads((report.parent / "ablations.json").read_text()))
    assert "| filter-none | `filter.method=none` |" in text
    assert "full -0.2000▼" in text


def test_the_full_runs_p_values_are_those_of_its_own_evaluation(tmp_path):
    # 8 requests have 256 sign patterns, more than 100 resamples: the test draws them, with a seed.
    recipe = load_recipe(_recipe(tmp_path, {"filter-none": ["filter.method=none"]}), ["evaluation.resamples=100"])
    reference = [0.2, 0.3, 0.4, 0.5, 0.6, 0.3, 0.2, 0.4]
    full = [score + change for score, change in zip(reference, [0.3, -0.1, 0.2, -0.15, 0.05, 0.1, -0.2, 0.1])]
    _write_evaluation(tmp_path / "main", {"zeroshot-mpnet": reference, "biencoder-mint": full})
    _write_evaluation(tmp_path / "none", {"zeroshot-mpnet": reference, "biencoder-mint": reference})
    table = compare_variants({"full": {13: tmp_path / "main"}, "filter-none": {13: tmp_path / "none"}}, recipe)

    qids = [f"q{index}" for index in range(len(reference))]
    def p_value(seed):
        return compare(dict(zip(qids, full)), dict(zip(qids, reference)), "randomization", 100, seed=seed).p_value

    assert p_value(recipe.seed) != p_value(0)  # the draws differ with the seed here
    assert table["rows"]["full"]["versus_reference"]["NDCG@5"]["p_value"] == p_value(recipe.seed)


def test_the_main_run_must_have_an_evaluated_student(tmp_path):
    recipe = load_recipe(_recipe(tmp_path, {"filter-none": ["filter.method=none"]}))
    _write_evaluation(tmp_path / "main", {"zeroshot-mpnet": [0.1, 0.2]})
    with pytest.raises(RecipeError, match="no evaluated `biencoder-mint`"):
        compare_variants({"full": {13: tmp_path / "main"}}, recipe)


def test_another_training_seed_is_a_bi_encoder_run_of_its_own(tmp_path):
    recipe = load_recipe(_recipe(tmp_path, {"filter-none": ["filter.method=none"]}))
    assert training_seed(recipe) == recipe.seed == 13
    assert variant_recipe(recipe, "full") is recipe and variant_recipe(recipe, "full", 13) is recipe
    full = variant_recipe(recipe, "full", 1)
    assert full.name == "toy-seed1" and full.students.biencoder.training.seed == 1
    assert full.students.crossencoder.enabled is False and full.filter == recipe.filter
    variant = variant_recipe(recipe, "filter-none", 2)
    assert variant.name == "toy-filter-none-seed2" and variant.filter.method == "none"
    assert variant.students.biencoder.training.seed == 2
    assert variant_recipe(recipe, "filter-none", 13).name == "toy-filter-none"
    # Only the bi-encoder's training changes: every stage before it is shared with the seed-13 run.
    assert variant.data == recipe.data and variant.teacher == recipe.teacher


def test_an_arm_trained_with_several_seeds_is_judged_by_its_students_per_request_means(tmp_path):
    recipe = load_recipe(_recipe(tmp_path, {"more": ["data.catalog.fraction=0.75"]}))
    reference = [0.2, 0.3, 0.4, 0.5, 0.6, 0.3, 0.2, 0.4]
    full_seeds = ([0.5, 0.5, 0.6, 0.7, 0.8, 0.4, 0.4, 0.6], [0.3, 0.5, 0.4, 0.5, 0.6, 0.6, 0.4, 0.4])
    more_seeds = ([0.6, 0.7, 0.5, 0.8, 0.7, 0.5, 0.6, 0.5], [0.8, 0.5, 0.7, 0.6, 0.9, 0.7, 0.4, 0.7])
    runs = {"f13": full_seeds[0], "f1": full_seeds[1], "m13": more_seeds[0], "m1": more_seeds[1]}
    for name, scores in runs.items():
        _write_evaluation(tmp_path / name, {"zeroshot-mpnet": reference, "biencoder-mint": scores})
    arms = {
        "full": {13: tmp_path / "f13", 1: tmp_path / "f1"},
        "more": {13: tmp_path / "m13", 1: tmp_path / "m1"},
    }
    table = compare_variants(arms, recipe)

    def mean_of(seeds):
        return [sum(pair) / 2 for pair in zip(*seeds)]

    full, more = mean_of(full_seeds), mean_of(more_seeds)
    rows = table["rows"]
    assert rows["full"]["means"]["NDCG@5"] == pytest.approx(sum(full) / len(full))
    assert rows["more"]["versus_full"]["NDCG@5"]["delta"] == pytest.approx((sum(more) - sum(full)) / len(full))
    # Paired over the requests' seed means: the same test as comparing those means directly.
    expected = compare(
        {f"q{i}": score for i, score in enumerate(more)},
        {f"q{i}": score for i, score in enumerate(full)},
        recipe.evaluation.significance,
        recipe.evaluation.resamples,
    )
    assert rows["more"]["versus_full"]["NDCG@5"]["p_value"] == pytest.approx(expected.p_value)
    assert rows["more"]["runs"] == {"13": str(tmp_path / "m13"), "1": str(tmp_path / "m1")}
    assert table["seeds"] == [13, 1]
    assert "trained with seeds 13, 1" in render_markdown(table)


def test_an_ablation_may_not_be_called_full_or_zero_shot(tmp_path):
    with pytest.raises(RecipeError, match=r"ablations.*`full` names the recipe's own run"):
        load_recipe(_recipe(tmp_path, {"full": ["filter.method=none"]}))
    with pytest.raises(RecipeError, match=r"ablations.*`zero-shot` names the untrained encoder"):
        load_recipe(_recipe(tmp_path, {"zero-shot": ["filter.method=none"]}))


def test_ablate_reads_each_seeds_run_and_checks_its_seeds(tmp_path):
    from click.testing import CliRunner

    from mint_distill.cli import cli

    recipe = _recipe(tmp_path, {"filter-none": ["filter.method=none"]})
    main = tmp_path / "runs" / "toy"
    (main / "average-biencoder" / "model").mkdir(parents=True)
    _write_evaluation(main, {"zeroshot-mpnet": [0.5], "biencoder-mint": [0.6]})

    result = CliRunner().invoke(cli, ["ablate", str(recipe), "--seeds", "13,1", "--report-only"])
    assert result.exit_code != 0
    assert f"{tmp_path / 'runs' / 'toy-seed1' / 'average-biencoder' / 'model'} does not exist" in result.output

    result = CliRunner().invoke(cli, ["ablate", str(recipe), "--seeds", "13,one", "--report-only"])
    assert result.exit_code == 2 and "give integers separated by commas" in result.output
    result = CliRunner().invoke(cli, ["ablate", str(recipe), "--seeds", "1,1", "--report-only"])
    assert result.exit_code == 2 and "a seed is listed twice" in result.output
    result = CliRunner().invoke(cli, ["ablate", str(recipe), "--seeds", "1,2", "--report-only"])
    assert result.exit_code == 2 and "list the recipe's own training seed 13 too" in result.output


def test_ablate_runs_the_recipe_itself_first_whatever_the_order_of_its_seeds(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mint_distill import pipeline
    from mint_distill.cli import cli

    started = []

    def first_run_only(recipe, **options):
        started.append(recipe.name)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run_pipeline", first_run_only)
    recipe = _recipe(tmp_path, {"filter-none": ["filter.method=none"]})
    CliRunner().invoke(cli, ["ablate", str(recipe), "--seeds", "1,13"])
    assert started == ["toy"]

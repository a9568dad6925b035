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
    variant_recipe,
    write_ablation_report,
)
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
        tmp_path / "main", {"filter-none": tmp_path / "none", "filter-random": tmp_path / "random"}, recipe
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

    report = write_ablation_report(table, tmp_path / "main" / "ablations")
    text = report.read_text()
    assert text == render_markdown(json.loads((report.parent / "ablations.json").read_text()))
    assert "| filter-none | `filter.method=none` |" in text
    assert "full -0.2000▼" in text


def test_the_main_run_must_have_an_evaluated_student(tmp_path):
    recipe = load_recipe(_recipe(tmp_path, {"filter-none": ["filter.method=none"]}))
    _write_evaluation(tmp_path / "main", {"zeroshot-mpnet": [0.1, 0.2]})
    with pytest.raises(RecipeError, match="no evaluated `biencoder-mint`"):
        compare_variants(tmp_path / "main", {}, recipe)

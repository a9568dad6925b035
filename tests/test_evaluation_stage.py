"""The evaluate stage and `mint-distill evaluate`: recipe checks, student pick-up, freshness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures.evaluation.tiny_encoders import save_tiny_sentence_transformer
from pydantic import ValidationError

from mint_distill.errors import RecipeError
from mint_distill.evaluation.stage import student_rankers
from mint_distill.recipe import load_recipe
from mint_distill.recipe.sections.evaluation import EvaluationSection, RankerSpec

RECIPE = str(Path(__file__).resolve().parents[1] / "recipes" / "pointrec.yaml")


@pytest.mark.parametrize(
    ("ranker", "message"),
    [
        ({"name": "x", "kind": "bm25", "model": "embedded:all-minilm-l6-v2"}, "bm25 ranker takes no `model`"),
        ({"name": "x", "kind": "dense"}, "dense ranker needs `model`"),
        ({"name": "x", "kind": "upr", "model": "m"}, "set `first_stage`"),
        ({"name": "x", "kind": "dense", "model": "m", "k1": 1.0}, "`k1` do(es) not apply to a dense ranker"),
        ({"name": "x", "kind": "dense", "model": "m", "top_k": 5}, "`top_k` do(es) not apply to a dense ranker"),
        ({"name": "two words", "kind": "bm25"}, "String should match pattern"),
    ],
)
def test_ranker_specs_are_checked(ranker, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RankerSpec(**ranker)


def test_evaluation_section_checks_names_order_and_reference():
    bm25 = RankerSpec(name="bm25", kind="bm25")
    upr = RankerSpec(name="upr", kind="upr", model="m", first_stage="bm25")
    with pytest.raises(ValidationError, match="`bm25`, which must be listed before it"):
        EvaluationSection(rankers=[upr, bm25], reference="bm25")
    with pytest.raises(ValidationError, match="two rankers are named `bm25`"):
        EvaluationSection(rankers=[bm25, bm25], reference="bm25")
    with pytest.raises(ValidationError, match="reserved for the trained students"):
        EvaluationSection(rankers=[RankerSpec(name="biencoder-mint", kind="bm25")], reference="biencoder-mint")
    with pytest.raises(ValidationError, match="reference `nope` is not a ranker"):
        EvaluationSection(rankers=[bm25], reference="nope")
    with pytest.raises(ValidationError, match="unknown measure `NDCG`"):
        EvaluationSection(rankers=[bm25], reference="bm25", measures=["NDCG"])
    assert EvaluationSection(rankers=[bm25], reference="biencoder-mint").reference == "biencoder-mint"


def test_recipe_errors_name_the_key_path():
    with pytest.raises(RecipeError, match=r"evaluation\.rankers\.0.*bm25 ranker takes no `model`"):
        load_recipe(RECIPE, ["evaluation.rankers=[{name: x, kind: bm25, model: embedded:all-minilm-l6-v2}]"])


def _finish_stage(run_root, name, model_folder=None):
    stage = run_root / name
    (stage / "model").mkdir(parents=True, exist_ok=True)
    if model_folder is not None:
        for file in model_folder.rglob("*"):
            if file.is_file():
                target = stage / "model" / file.relative_to(model_folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(file.read_bytes())
    (stage / "manifest.json").write_text(json.dumps({"stage": name, "output_hash": name}))


def _finish_with_fresh_upstream(recipe, name, model_folder):
    """Stage `name` finished with `model_folder`, it and every stage before it fresh for `recipe`
    (manifests with the fingerprints they expect, as evaluate refuses stale students)."""
    from mint_distill.pipeline import all_stages, stage_states

    run_root = Path(recipe.run_dir) / recipe.name
    _finish_stage(run_root, name, model_folder)  # its manifest is rewritten below
    stages = [stage for stage in all_stages() if stage.enabled(recipe)]
    for stage in stages[: [s.name for s in stages].index(name) + 1]:
        expected = stage_states(recipe, [stage])[0].expected
        (run_root / stage.name).mkdir(parents=True, exist_ok=True)
        (run_root / stage.name / "manifest.json").write_text(
            json.dumps({"stage": stage.name, **expected, "output_hash": stage.name})
        )


def test_students_are_picked_up_once_their_stages_finished(tmp_path):
    recipe = load_recipe(RECIPE, [f"run_dir={tmp_path}"])
    run_root = tmp_path / "pointrec"
    assert student_rankers(recipe, run_root) == []
    (run_root / "average-biencoder" / "model").mkdir(parents=True)  # started, not finished
    assert student_rankers(recipe, run_root) == []

    _finish_stage(run_root, "average-biencoder")
    _finish_stage(run_root, "train-crossencoder")
    biencoder, crossencoder = student_rankers(recipe, run_root)
    assert (biencoder.name, biencoder.kind, biencoder.model) == (
        "biencoder-mint", "biencoder", str(run_root / "average-biencoder" / "model")
    )
    assert (crossencoder.first_stage, crossencoder.top_k) == ("biencoder-mint", recipe.students.crossencoder.rerank_top_k)
    assert crossencoder.fusion_weight is None  # a folder that records no weight: its scores alone
    (run_root / "train-crossencoder" / "model" / "mint-student.json").write_text(json.dumps({"fusion_weight": 0.4}))
    assert student_rankers(recipe, run_root)[1].fusion_weight == 0.4  # the weight its training chose

    assert student_rankers(load_recipe(RECIPE, [f"run_dir={tmp_path}", "evaluation.students=false"]), run_root) == []
    only_cross = load_recipe(RECIPE, [f"run_dir={tmp_path}", "students.biencoder.enabled=false"])
    assert [(s.name, s.first_stage) for s in student_rankers(only_cross, run_root)] == [
        ("crossencoder-mint", "zeroshot-mpnet")
    ]


@pytest.mark.integration
def test_evaluate_command_reports_reruns_when_a_student_appears_and_refuses_a_stale_one(shared_data, tmp_path, monkeypatch):
    from mint_distill.cli import cli

    monkeypatch.setenv("MINT_DISTILL_DATA_DIR", str(shared_data))
    arguments = [
        "evaluate", RECIPE, f"run_dir={tmp_path}", f"evaluation.cache_dir={tmp_path / 'cache'}",
        "evaluation.rankers=[{name: bm25, kind: bm25}]", "evaluation.reference=bm25", "data.test.min_pool_size=0",
    ]
    runner = CliRunner()
    first = runner.invoke(cli, ["--quiet", *arguments])
    assert first.exit_code == 0, first.output
    folder = tmp_path / "pointrec" / "evaluate"
    metrics = json.loads((folder / "metrics.json").read_text())
    # Every request with a judged POI that has a record: the other 27 of the 112 have no
    # judgement left under condensed qrels, so trec_eval on qrels.txt would not see them either.
    assert metrics["requests"] == 85 and metrics["pool"] == "judged"
    assert list(metrics["systems"]) == ["bm25"]
    assert (folder / "runs" / "bm25.trec").is_file()
    assert "Requests evaluated: 85 of the collection's 112." in (folder / "report.md").read_text()
    assert len({line.split()[0] for line in (folder / "qrels.txt").read_text().splitlines()}) == 85

    again = runner.invoke(cli, ["--quiet", *arguments])
    assert again.exit_code == 0 and "up to date" in again.output

    recipe = load_recipe(RECIPE, arguments[2:])
    _finish_with_fresh_upstream(recipe, "average-biencoder", save_tiny_sentence_transformer(tmp_path / "student"))
    third = runner.invoke(cli, ["--quiet", *arguments])
    assert third.exit_code == 0, third.output
    metrics = json.loads((folder / "metrics.json").read_text())
    assert list(metrics["systems"]) == ["bm25", "biencoder-mint"]
    assert set(metrics["systems"]["biencoder-mint"]["versus_reference"]) == set(metrics["measures"])

    # settings that make the student stale: refused, unless the evaluation leaves students out
    stale = [*arguments, "students.biencoder.training.learning_rate=0.01"]
    refused = runner.invoke(cli, ["--quiet", *stale])
    assert refused.exit_code == 2 and "train-biencoder (stale)" in refused.output, refused.output
    without = runner.invoke(cli, ["--quiet", *stale, "evaluation.students=false"])
    assert without.exit_code == 0, without.output
    assert list(json.loads((folder / "metrics.json").read_text())["systems"]) == ["bm25"]

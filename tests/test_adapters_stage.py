"""The `package` stage and `adapt`, run through the real pipeline runner.

The upstream stages here are small stand-ins that write real outputs (a tiny LoRA encoder, a
metrics summary, a teacher "adapter" file) where the real stages would: the runner, the
manifests, freshness and the package stage itself are the real ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from test_adapters_support import make_base_encoder, make_lora_encoder

from mint_distill.adapters import BundleError, load_bundle, read_manifest, verify_bundle
from mint_distill.adapters.adapt import adapt, build_adapt_recipe, reuse_stage_output
from mint_distill.adapters.stage import PACKAGE_STAGE
from mint_distill.errors import MintError, RecipeError
from mint_distill.pipeline import Stage, run_pipeline
from mint_distill.pipeline.manifest import read_manifest as read_stage_manifest
from mint_distill.recipe import Recipe

REPO = Path(__file__).resolve().parents[1]
MEANS = {"bm25": {"NDCG@5": 0.31}, "biencoder-mint": {"NDCG@5": 0.44}}


@pytest.fixture(scope="module")
def encoders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("encoders")
    base = make_base_encoder(root / "base")
    return {"base": base, "trained": make_lora_encoder(base, root / "trained")}


def _stand_ins(encoders, calls: list[str]) -> list[Stage]:
    def data(ctx):
        calls.append("data")
        (ctx.dir / "items.jsonl").write_text(f'{{"item_id": "1", "text": "{ctx.recipe.data.source.path}"}}\n')
        return {"users": 12, "items": 30}

    def tune_teacher(ctx):
        calls.append("tune-teacher")
        (ctx.dir / "adapter").mkdir()
        (ctx.dir / "adapter" / "weights.txt").write_text(f"r={ctx.recipe.teacher.tuning.lora.r}")
        return {"examples": 3}

    def train(ctx):
        calls.append("train-biencoder")
        shutil.copytree(encoders["trained"], ctx.dir / "model")
        return {"pairs": 60}

    def average(ctx):
        calls.append("average-biencoder")
        shutil.copytree(ctx.upstream("train-biencoder") / "model", ctx.dir / "model")
        return {}

    def evaluate(ctx):
        calls.append("evaluate")
        return {"requests": 3, "means": MEANS}

    return [
        Stage("data", data, "stand-in", ("data.source",)),
        Stage("tune-teacher", tune_teacher, "stand-in", ("teacher",), after=("data",)),
        Stage("train-biencoder", train, "stand-in", ("students.biencoder",), after=("data",)),
        Stage(
            "average-biencoder", average, "stand-in", ("students.biencoder",), after=("train-biencoder",)
        ),
        Stage("evaluate", evaluate, "stand-in", ("evaluation",)),
        PACKAGE_STAGE,
    ]


def _recipe(tmp_path: Path, encoders, **package) -> Recipe:
    return Recipe.model_validate(
        {
            "name": "toy",
            "run_dir": str(tmp_path / "runs"),
            "description": "A toy adapter run.",
            "data": {
                "source": {"format": "table", "path": "reviews.csv", "columns": {"user": "u", "item": "i", "text": "t"}}
            },
            "students": {
                "biencoder": {"model": str(encoders["base"]), "finetune": "lora"},
                "crossencoder": {"enabled": False},
            },
            "package": {"domain": "toy", **package},
        }
    )


def test_package_stage_writes_a_verified_bundle_and_installs_it(tmp_path, encoders):
    calls: list[str] = []
    stages = _stand_ins(encoders, calls)
    recipe = _recipe(tmp_path, encoders, bundle_dir=str(tmp_path / "adapters" / "toy"))
    result = run_pipeline(recipe, stages=stages, quiet=True)
    assert "package" in result.ran
    bundle = result.run_root / "package" / "toy"
    assert verify_bundle(bundle) == [] and verify_bundle(tmp_path / "adapters" / "toy") == []
    manifest = read_manifest(bundle)
    assert manifest["evaluation"]["means"] == MEANS
    assert manifest["training_data"]["train-biencoder"] == {"pairs": 60}
    assert manifest["training_data"]["data"] == {"users": 12, "items": 30}
    assert manifest["recipe"]["name"] == "toy" and manifest["description"] == "A toy adapter run."
    assert "| biencoder-mint | 0.4400 |" in (bundle / "README.md").read_text()
    summary = result.summaries["package"]
    assert summary["components"] == ["biencoder"] and summary["installed"] == str(tmp_path / "adapters" / "toy")
    from sentence_transformers import SentenceTransformer

    texts = ["quiet bar with jazz", "park hike"]
    np.testing.assert_allclose(
        load_bundle(tmp_path / "adapters" / "toy").encode(texts),
        SentenceTransformer(str(encoders["trained"]), device="cpu").encode(texts),
        atol=1e-6,
    )
    again = run_pipeline(recipe, stages=stages, quiet=True)
    assert again.ran == [] and "package" in again.skipped


def test_a_bundle_dir_holding_anything_but_a_bundle_of_its_domain_is_refused_before_any_stage(tmp_path, encoders):
    from mint_distill.adapters.bundle import copy_bundle

    calls: list[str] = []
    stages = _stand_ins(encoders, calls)
    installed = tmp_path / "adapters"
    run_pipeline(_recipe(tmp_path, encoders, bundle_dir=str(installed / "toy")), stages=stages, quiet=True)
    (installed / "notes").mkdir()
    (installed / "notes" / "todo.txt").write_text("keep")
    calls.clear()
    # `adapters` instead of `adapters/toy`: the parent folder of every installed bundle
    for folder, message in [(installed, "holds no adapter bundle"), (installed / "notes", "holds no adapter bundle")]:
        with pytest.raises(MintError, match=f"package.bundle_dir: {folder} {message}"):
            run_pipeline(_recipe(tmp_path, encoders, bundle_dir=str(folder)), stages=stages, quiet=True)
    under_a_file = installed / "notes" / "todo.txt" / "toy"  # the copy would fail only once all stages ran
    with pytest.raises(MintError, match=f"package.bundle_dir: {under_a_file}: {under_a_file.parent} is a file"):
        run_pipeline(_recipe(tmp_path, encoders, bundle_dir=str(under_a_file)), stages=stages, quiet=True)
    assert calls == [] and (installed / "notes" / "todo.txt").read_text() == "keep"
    assert verify_bundle(installed / "toy") == []
    with pytest.raises(BundleError, match="holds the bundle of domain `toy`, not `other`"):
        other = tmp_path / "other"
        shutil.copytree(installed / "toy", other)
        manifest = json.loads((other / "manifest.json").read_text())
        (other / "manifest.json").write_text(json.dumps({**manifest, "domain": "other"}))
        copy_bundle(other, installed / "toy")
    # the same domain is replaced: that is how a recipe remakes its bundle
    run_pipeline(_recipe(tmp_path, encoders, bundle_dir=str(installed / "toy"), license="mit"), stages=stages, quiet=True)
    assert "license: mit" in (installed / "toy" / "README.md").read_text()


def test_a_deleted_or_altered_installed_bundle_is_installed_again_while_the_stage_is_fresh(tmp_path, encoders):
    from mint_distill.adapters.stage import reinstall_bundle

    stages = _stand_ins(encoders, [])
    installed = tmp_path / "adapters" / "toy"
    recipe = _recipe(tmp_path, encoders, bundle_dir=str(installed))
    result = run_pipeline(recipe, stages=stages, quiet=True)
    assert reinstall_bundle(recipe, result.run_root) is None  # installed by the stage just now
    shutil.rmtree(installed)
    assert run_pipeline(recipe, stages=stages, quiet=True).ran == []  # fresh: the stage does not run
    assert reinstall_bundle(recipe, result.run_root) == installed and verify_bundle(installed) == []
    (installed / "README.md").write_text("edited")
    assert reinstall_bundle(recipe, result.run_root) == installed and verify_bundle(installed) == []


def test_package_reruns_alone_when_its_keys_change(tmp_path, encoders):
    calls: list[str] = []
    stages = _stand_ins(encoders, calls)
    run_pipeline(_recipe(tmp_path, encoders), stages=stages, quiet=True)
    calls.clear()
    result = run_pipeline(_recipe(tmp_path, encoders, license="apache-2.0"), stages=stages, quiet=True)
    assert result.ran == ["package"] and calls == []
    assert "license: apache-2.0" in (result.run_root / "package" / "toy" / "README.md").read_text()


def test_package_follows_the_finetune_mode(tmp_path, encoders):
    full = _recipe(tmp_path, encoders).model_copy(deep=True)
    full.students.biencoder.finetune = "full"
    assert not PACKAGE_STAGE.enabled(full), "auto: no bundle for a fully fine-tuned student"
    full.package.enabled = True
    assert PACKAGE_STAGE.enabled(full) and "finetune=lora" in PACKAGE_STAGE.check(full)[0]


@pytest.fixture(scope="module")
def lora_crossencoder(tmp_path_factory) -> dict[str, Path]:
    """A cross-encoder trained by `train_crossencoder` with `finetune: lora` on the toy world."""
    from fixtures.students.toy import save_tiny_encoder, write_toy_negatives, write_toy_world

    from mint_distill.students import train_crossencoder

    root = tmp_path_factory.mktemp("crossencoder")
    paths = write_toy_negatives(write_toy_world(root / "world"), root)
    base = save_tiny_encoder(root / "encoder", dropout=0.0)
    training = {"epochs": 1, "learning_rate": 1e-2, "batch_size": 4, "warmup_ratio": 0.0, "eval_every": 0, "seed": 0}
    spec = {
        "model": str(base),
        "finetune": "lora",
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"]},
        "max_length": 48,
        "rerank_top_k": 20,
        "training": training,
    }
    train_crossencoder(spec, **paths, out_dir=root / "out", seed=0)
    return {"base": base, "trained": root / "out" / "model"}


def test_package_bundles_a_lora_cross_encoder_that_loads_like_its_trained_folder(tmp_path, encoders, lora_crossencoder):
    from sentence_transformers import CrossEncoder

    from mint_distill.io import sha256_file
    from mint_distill.pipeline import stage_states
    from mint_distill.recipe.sections.students import CrossEncoderSpec
    from mint_distill.recommend import open_reranker
    from mint_distill.students.crossencoder import predict_logits

    def train_crossencoder(ctx):
        shutil.copytree(lora_crossencoder["trained"], ctx.dir / "model")
        return {"groups": 40}

    stages = [
        *_stand_ins(encoders, [])[:-1],
        Stage("train-crossencoder", train_crossencoder, "stand-in", ("students.crossencoder",), after=("data",)),
        PACKAGE_STAGE,
    ]
    recipe = _recipe(tmp_path, encoders)
    recipe.students.crossencoder = CrossEncoderSpec(model=str(lora_crossencoder["base"]), finetune="lora")
    result = run_pipeline(recipe, stages=stages, quiet=True)
    bundle = result.run_root / "package" / "toy"
    assert result.summaries["package"]["components"] == ["biencoder", "crossencoder"]
    assert verify_bundle(bundle) == []
    entry = read_manifest(bundle)["components"]["crossencoder"]
    assert entry["kind"] == "cross-encoder" and entry["lora"]["modules_to_save"] == ["classifier"]
    assert entry["base_model"]["weights_sha256"] == sha256_file(lora_crossencoder["base"] / "model.safetensors")
    assert not (bundle / "crossencoder" / "model.safetensors").exists()

    pairs = [("we love jazz and saxophone", "alpha jazz live band place"), ("sushi and sake", "bravo pizza oven place")]
    trained = CrossEncoder(str(lora_crossencoder["trained"]), device="cpu")
    expected = predict_logits(trained, pairs)
    loaded = load_bundle(bundle, component="crossencoder")
    assert isinstance(loaded, CrossEncoder)
    assert predict_logits(loaded, pairs) == pytest.approx(expected, abs=1e-5)
    assert predict_logits(open_reranker(str(bundle)), pairs) == pytest.approx(expected, abs=1e-4)  # recommend --rerank

    # the bundle copies the cross-encoder: retraining it makes the package stale
    assert stage_states(recipe, [PACKAGE_STAGE])[0].status == "fresh"
    student = result.run_root / "train-crossencoder" / "model" / "adapter_model.safetensors"
    student.write_bytes(student.read_bytes() + b" ")
    assert stage_states(recipe, [PACKAGE_STAGE])[0].status == "stale"

    recipe.package.include_crossencoder = False
    again = run_pipeline(recipe, stages=stages, quiet=True)
    assert again.ran == ["package"] and again.summaries["package"]["components"] == ["biencoder"]


def _spec_file(tmp_path: Path) -> Path:
    (tmp_path / "reviews.csv").write_text("user,book,review,stars\nu1,b1,A gripping story.,5\n")
    (tmp_path / "books.csv").write_text("book,title\nb1,The Book\n")
    spec = {
        "format": "table",
        "path": "reviews.csv",
        "columns": {"user": "user", "item": "book", "text": "review", "rating": "stars"},
        "items": {"path": "books.csv", "item": "book", "name": "title"},
    }
    path = tmp_path / "books.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_adapt_recipe_from_a_source_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    recipe = build_adapt_recipe(
        "books", _spec_file(tmp_path), base_model="embedded:all-minilm-l6-v2", overrides=["filter.keep_fraction=0.3"]
    )
    pointrec = Recipe.model_validate(yaml.safe_load((REPO / "recipes" / "pointrec.yaml").read_text()))
    assert recipe.name == "adapt-books"
    assert recipe.data.source.path == str(tmp_path / "reviews.csv")
    assert recipe.data.source.items.path == str(tmp_path / "books.csv")
    assert (
        recipe.students.biencoder.finetune == "lora" and recipe.students.biencoder.model == "embedded:all-minilm-l6-v2"
    )
    assert recipe.students.crossencoder.enabled is False
    assert recipe.package.domain == "books" and recipe.package.bundle_dir == "adapters/books"
    assert recipe.filter.keep_fraction == 0.3
    assert recipe.teacher == pointrec.teacher and recipe.data.test == pointrec.data.test
    # pointrec.yaml's catalog histories are Pointrec POIs graded by its dev requests: a books
    # adapter draws them from its own items, or has none without an item table
    assert pointrec.data.catalog.enabled and pointrec.data.catalog.source == "test"
    assert recipe.data.catalog.enabled and recipe.data.catalog.source == "training"
    assert recipe.data.catalog.dev_requests is None
    spec = yaml.safe_load(_spec_file(tmp_path).read_text())
    (tmp_path / "bare.yaml").write_text(yaml.safe_dump({key: spec[key] for key in ("format", "path", "columns")}))
    assert not build_adapt_recipe("books", tmp_path / "bare.yaml").data.catalog.enabled
    catalog_on = build_adapt_recipe("books", tmp_path / "bare.yaml", overrides=["data.catalog.enabled=true"])
    assert catalog_on.data.catalog.enabled, "overrides still come last"


def test_adapt_recipe_from_a_recipe_keeps_its_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    spec = _spec_file(tmp_path)
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        yaml.safe_dump(
            {
                "extends": str(REPO / "recipes" / "pointrec.yaml"),
                "name": "mine",
                "data": {
                    "source": yaml.safe_load(spec.read_text()) | {"path": str(tmp_path / "reviews.csv"), "items": None}
                },
                "teacher": {"generation": {"max_new_tokens": 99}},
            }
        )
    )
    recipe = build_adapt_recipe("mine", mine, out=tmp_path / "out")
    assert recipe.teacher.generation.max_new_tokens == 99 and recipe.package.bundle_dir == str(tmp_path / "out")
    assert recipe.name == "adapt-mine" and recipe.students.biencoder.finetune == "lora"


def test_adapt_recipe_errors_name_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: table\npath: x.csv\n")
    with pytest.raises(RecipeError, match=r"bad\.yaml.*\n.*columns"):
        build_adapt_recipe("x", bad)
    neither = tmp_path / "neither.yaml"
    neither.write_text("hello: world\n")
    with pytest.raises(RecipeError, match="neither a source spec"):
        build_adapt_recipe("x", neither)
    with pytest.raises(Exception, match="domain"):
        build_adapt_recipe("Not A Domain", _spec_file(tmp_path))
    twice = tmp_path / "twice.yaml"
    twice.write_text("format: table\npath: reviews.csv\npath: other.csv\n")
    with pytest.raises(RecipeError, match=r"twice\.yaml:3: .*`path`.*line 2"):
        build_adapt_recipe("x", twice)
    data_file = tmp_path / "reviews.csv.gz"  # a data file given instead of its spec
    data_file.write_bytes(b"\x1f\x8b\x08\x00\xa7\xf2")
    with pytest.raises(RecipeError, match=r"reviews\.csv\.gz: not UTF-8 text"):
        build_adapt_recipe("x", data_file)


def test_adapt_dry_run_prints_the_recipe(tmp_path, monkeypatch):
    from mint_distill.cli import cli

    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(cli, ["adapt", "--domain", "books", "--data", str(_spec_file(tmp_path)), "--dry-run"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.output)
    assert printed["package"]["domain"] == "books" and printed["students"]["biencoder"]["finetune"] == "lora"


def test_teacher_is_reused_only_when_it_fits(tmp_path, encoders):
    calls: list[str] = []
    stages = _stand_ins(encoders, calls)[:2]
    first = _recipe(tmp_path, encoders)
    run_pipeline(first, stages=stages, quiet=True)
    other = Recipe.model_validate(first.model_dump(mode="json", exclude_unset=True) | {"name": "other"})
    other.data.source.path = "other.csv"
    run_pipeline(other, stages=stages, until="data", quiet=True)
    calls.clear()
    source = reuse_stage_output(other, stages[1], [tmp_path / "runs" / "toy"])
    assert source == tmp_path / "runs" / "toy" / "tune-teacher"
    result = run_pipeline(other, stages=stages, quiet=True)
    assert calls == [] and result.skipped == ["data", "tune-teacher"]
    copied = read_stage_manifest(tmp_path / "runs" / "other" / "tune-teacher")
    assert copied["reused_from"] == str(source)
    changed = Recipe.model_validate(other.model_dump(mode="json", exclude_unset=True) | {"name": "changed"})
    changed.teacher.tuning.lora.r = 4
    run_pipeline(changed, stages=stages, until="data", quiet=True)
    assert reuse_stage_output(changed, stages[1], [tmp_path / "runs" / "toy"]) is None


def test_a_reused_teacher_is_copied_under_the_run_lock_and_a_cut_copy_is_not_finished(tmp_path, encoders, monkeypatch):
    from mint_distill.errors import RunLockedError
    from mint_distill.pipeline import runner

    stages = _stand_ins(encoders, [])[:2]
    run_pipeline(_recipe(tmp_path, encoders), stages=stages, quiet=True)
    other = Recipe.model_validate(_recipe(tmp_path, encoders).model_dump(mode="json", exclude_unset=True) | {"name": "other"})
    run_pipeline(other, stages=stages, until="data", quiet=True)
    runs, target = [tmp_path / "runs" / "toy"], tmp_path / "runs" / "other" / "tune-teacher"
    with runner.RunLock(tmp_path / "runs" / "other"), pytest.raises(RunLockedError):
        reuse_stage_output(other, stages[1], runs)
    assert not target.exists()

    def interrupted(source, destination):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_link_or_copy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        reuse_stage_output(other, stages[1], runs)
    assert target.is_dir() and read_stage_manifest(target) is None
    monkeypatch.undo()
    assert reuse_stage_output(other, stages[1], runs) == runs[0] / "tune-teacher"
    assert read_stage_manifest(target)["reused_from"] == str(runs[0] / "tune-teacher")


def test_adapt_runs_without_evaluation_and_installs_the_bundle(tmp_path, encoders):
    calls: list[str] = []
    stages = _stand_ins(encoders, calls)
    donor = _recipe(tmp_path, encoders)
    run_pipeline(donor, stages=stages[:2], quiet=True)
    recipe = Recipe.model_validate(
        donor.model_dump(mode="json", exclude_unset=True)
        | {"name": "adapt-toy", "package": {"domain": "toy", "bundle_dir": str(tmp_path / "adapters" / "toy")}}
    )
    recipe.data.source.path = "new-catalog.csv"
    calls.clear()
    result = adapt(recipe, stages=stages, quiet=True)
    assert calls == ["data", "train-biencoder", "average-biencoder"], "teacher reused, evaluation skipped"
    assert result.reused_teacher == tmp_path / "runs" / "toy" / "tune-teacher"
    assert result.bundle == tmp_path / "adapters" / "toy" and verify_bundle(result.bundle) == []
    assert read_manifest(result.bundle)["evaluation"] == {}
    shutil.rmtree(result.bundle)
    again = adapt(recipe, stages=stages, quiet=True)
    assert again.run.ran == [] and verify_bundle(again.bundle) == [], "a fresh run installs its bundle again"


def test_adapt_without_reuse_trains_its_own_teacher_even_with_teacher_from(tmp_path, encoders):
    calls: list[str] = []
    stages = _stand_ins(encoders, calls)
    run_pipeline(_recipe(tmp_path, encoders), stages=stages[:2], quiet=True)
    recipe = Recipe.model_validate(
        _recipe(tmp_path, encoders).model_dump(mode="json", exclude_unset=True)
        | {"name": "adapt-toy", "reuse_stages": False}
    )
    calls.clear()
    # a folder named with --teacher-from is searched, the run_dir's other runs are not
    assert adapt(recipe, stages=stages, teacher_from=[tmp_path / "elsewhere"], quiet=True).reused_teacher is None
    assert "tune-teacher" in calls


def test_adapt_refuses_a_bad_later_stage_before_the_data_stage_runs(tmp_path, encoders):
    calls: list[str] = []
    recipe = _recipe(tmp_path, encoders).model_copy(deep=True)
    recipe.students.biencoder.model = str(tmp_path / "no-such-model")
    with pytest.raises(MintError, match="no-such-model"):
        adapt(recipe, stages=_stand_ins(encoders, calls), quiet=True)
    assert calls == []

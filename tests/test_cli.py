"""The command line: help texts, exit codes and error messages."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def mint(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mint_distill", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@pytest.fixture()
def typo_recipe(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text(
        textwrap.dedent(
            """
            name: typo
            data:
              source: {format: yelp_academic, path: x}
            filter:
              keep_fracton: 0.5
            """
        )
    )
    return path


def test_help_lists_every_command_with_a_summary():
    result = mint("--help")
    assert result.returncode == 0
    for command in ("run", "validate", "models"):
        assert f"  {command} " in result.stdout
    listed = [line for line in result.stdout.split("Commands:")[1].splitlines() if line.strip()]
    assert all(len(line.split(None, 1)) == 2 for line in listed), listed


def test_every_command_has_help_with_examples():
    from click import Group

    from mint_distill.cli import cli

    def walk(group: Group, prefix: tuple[str, ...]):
        for name, command in group.commands.items():
            if isinstance(command, Group):
                yield from walk(command, (*prefix, name))
            else:
                yield (*prefix, name), command

    missing = [" ".join(path) for path, command in walk(cli, ()) if "Example" not in (command.help or "")]
    assert missing == []


def test_typo_in_recipe_exits_2_naming_key_and_suggestion(typo_recipe):
    result = mint("validate", str(typo_recipe))
    assert result.returncode == 2
    assert "filter.keep_fracton" in result.stderr and "Did you mean `keep_fraction`?" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_override_exits_2(typo_recipe):
    result = mint("run", str(typo_recipe), "teacher.tuning.lora.rank=8")
    assert result.returncode == 2
    assert "override `teacher.tuning.lora.rank=8`" in result.stderr
    assert "Allowed keys here: alpha, dropout, r, target_modules" in result.stderr


def test_error_messages_are_printed_as_they_are_with_their_brackets(tmp_path, typo_recipe):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nablations:\n  filter-none: [filter.method=none\n")
    result = mint("validate", str(broken))
    assert result.returncode == 2
    assert "expected ',' or ']'" in result.stderr and "[filter.method=none" in result.stderr
    result = mint("validate", str(typo_recipe), "data.item_text.template={name}[/{x}]")
    assert result.returncode == 2 and "[/{x}]" in result.stderr and "Traceback" not in result.stderr


def test_debug_shows_traceback(typo_recipe):
    result = mint("--debug", "validate", str(typo_recipe))
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_missing_recipe_exits_2():
    result = mint("validate", "does/not/exist.yaml")
    assert result.returncode == 2 and "not found" in result.stderr


def test_unknown_command_is_a_usage_error():
    result = mint("frobnicate")
    assert result.returncode == 2 and "No such command" in result.stderr


def test_models_verify_exit_code_follows_cache_state(tmp_path):
    import os

    env = {**os.environ, "MINT_DISTILL_HOME": str(tmp_path)}
    result = mint("models", "verify", "all-minilm-l6-v2", env=env)
    assert result.returncode == 2 and "not pulled" in result.stderr


def test_default_recipe_validates_here(shared_data):
    from conftest import REPO_ROOT, embedded_or_skip

    for name in ("smollm2-135m-instruct", "all-minilm-l6-v2", "all-mpnet-base-v2"):
        embedded_or_skip(name)
    result = mint("validate", "recipes/pointrec.yaml", cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert "name: pointrec" in result.stdout and "can run here" in result.stderr


def test_validate_names_models_only_an_ablation_or_the_catalog_sampler_loads(shared_data):
    from conftest import REPO_ROOT, embedded_or_skip

    for name in ("smollm2-135m-instruct", "all-minilm-l6-v2", "all-mpnet-base-v2"):
        embedded_or_skip(name)
    result = mint(
        "validate", "recipes/pointrec.yaml", "ablations={bad: [students.biencoder.model=/no/such/model]}",
        "data.catalog.similar_by=/no/such/encoder", cwd=REPO_ROOT,
    )
    assert result.returncode == 2, result.stderr
    assert "data.catalog.similar_by: model folder `/no/such/encoder` does not exist" in result.stderr
    assert "ablations.bad: students.biencoder.model: model folder `/no/such/model`" in result.stderr


def test_validate_warns_when_judged_test_items_may_be_training_items(shared_data):
    from conftest import REPO_ROOT

    from mint_distill.recipe import load_recipe
    from mint_distill.validation import validate_recipe

    recipe = REPO_ROOT / "recipes" / "pointrec.yaml"
    warning = "data.catalog.exclude_judged is false"
    assert not any(warning in w for w in validate_recipe(load_recipe(recipe)).warnings)
    allowed = validate_recipe(load_recipe(recipe, ["data.catalog.exclude_judged=false"]))
    assert any(w.startswith(warning) for w in allowed.warnings)


@pytest.mark.parametrize(
    ("arguments", "exit_code"), [(["models", "--help"], 0), (["validate", "missing.yaml"], 2)]
)
def test_the_process_group_is_left_before_exit(tmp_path, monkeypatch, arguments, exit_code):
    """Under `accelerate launch`, a gloo group still up at interpreter shutdown can abort a finished rank."""
    from torch import distributed

    from mint_distill.cli import main

    distributed.init_process_group(
        "gloo", store=distributed.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["mint-distill", *arguments])
    try:
        with pytest.raises(SystemExit) as exited:
            main()
        assert exited.value.code == exit_code
        assert not distributed.is_initialized()
    finally:
        if distributed.is_initialized():
            distributed.destroy_process_group()


def test_recommend_refuses_a_data_dir_that_is_a_file(tmp_path):
    from click.testing import CliRunner

    from mint_distill.cli import cli

    afile = tmp_path / "notes.txt"
    afile.write_text("not a folder")
    arguments = ["recommend", "-e", "embedded:all-minilm-l6-v2", "--pointrec-city", "Lisbon", "--data-dir", str(afile), "x"]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 2 and "--data-dir" in result.output and "is a file, not a folder" in result.output


def test_a_test_collection_that_cannot_be_downloaded_is_refused_before_anything_runs(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    from click.testing import CliRunner
    from conftest import REPO_ROOT

    from mint_distill.cli import cli

    def offline(request, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    missing = tmp_path / "nowhere" / "pointrec"
    smoke = str(REPO_ROOT / "recipes" / "smoke.yaml")
    result = CliRunner().invoke(cli, ["validate", smoke, f"data.test.path={missing}", "data.catalog.enabled=false"])
    assert result.exit_code == 2 and f"stage evaluate: data.test: pointrec is not in {missing}" in result.output
    arguments = ["recommend", "-e", "embedded:all-minilm-l6-v2", "--pointrec-city", "Lisbon", "--data-dir", str(missing.parent), "x"]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 2 and "downloading it failed" in result.output and "point --data-dir" in result.output
    assert not missing.parent.exists()

"""`mint-distill adapters list | show | verify | import`."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_adapters_support import make_base_encoder, make_lora_encoder

from mint_distill.adapters import ComponentSource, verify_bundle, write_bundle
from mint_distill.cli import cli


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("adapters-cli")
    base = make_base_encoder(root / "base")
    trained = make_lora_encoder(base, root / "trained")
    write_bundle(
        root / "extra" / "toy",
        domain="toy",
        biencoder=ComponentSource(trained, str(base)),
        evaluation={"means": {"biencoder-mint": {"NDCG@5": 0.4321}}},
        training_data={"filter": {"kept": 7}},
    )
    return root / "extra"


def _run(*arguments: str):
    result = CliRunner().invoke(cli, list(arguments))
    return result.exit_code, result.output


def test_list_and_show(installed):
    code, output = _run("adapters", "list", "--path", str(installed))
    assert code == 0, output
    assert "toy" in output and "0.4321" in output
    code, output = _run("adapters", "show", "toy", "--path", str(installed))
    assert code == 0, output
    assert "LoRA r=4" in output and "filter: kept 7" in output and "NDCG@5 0.4321" in output
    code, output = _run("adapters", "show", "nothing", "--path", str(installed))
    assert code == 2 and "no adapter bundle `nothing`" in output


def test_verify_names_a_tampered_file(installed, tmp_path):
    code, output = _run("adapters", "verify", str(installed / "toy"))
    assert code == 0 and "ok toy" in output
    copy = tmp_path / "toy"
    shutil.copytree(installed / "toy", copy)
    (copy / "README.md").write_text("changed")
    code, output = _run("adapters", "verify", str(copy))
    assert code == 2 and "README.md: altered" in output


def test_import_installs_a_verified_bundle(installed, tmp_path):
    archive = tmp_path / "toy.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        bundle.add(installed / "toy", arcname="toy")
    code, output = _run("adapters", "import", str(archive), "--to", str(tmp_path / "adapters"))
    assert code == 0, output
    assert verify_bundle(tmp_path / "adapters" / "toy") == []
    code, output = _run("adapters", "verify", "toy", "--path", str(tmp_path / "adapters"))
    assert code == 0 and "ok toy" in output
    code, output = _run("adapters", "import", str(archive), "--to", str(tmp_path / "adapters"))
    assert code == 2 and "already exists" in output


def test_import_errors_name_the_archive_and_the_options_given(installed, tmp_path):
    altered = shutil.copytree(installed / "toy", tmp_path / "altered")
    (altered / "README.md").write_text("changed")
    archives = {}
    for name, folder in (("altered", altered), ("toy", installed / "toy")):
        archives[name] = tmp_path / f"{name}.tar.gz"
        with tarfile.open(archives[name], "w:gz") as bundle:
            bundle.add(folder, arcname=name)
    to = str(tmp_path / "adapters")
    code, output = _run("adapters", "import", str(archives["altered"]), "--to", to)
    assert code == 2 and f"adapter bundle {archives['altered']} failed verification" in output, output
    assert ".tmp" not in output and "README.md: altered" in output
    code, output = _run("adapters", "import", str(archives["toy"]), "--to", to, "--name", "Toy V2")
    assert code == 2 and "--name `Toy V2` must be" in output, output
    assert _run("adapters", "import", str(archives["toy"]), "--to", to)[0] == 0
    code, output = _run("adapters", "import", str(archives["toy"]), "--to", to)
    assert code == 2 and "already exists; remove it or pass --overwrite" in output, output


def test_an_installed_bundle_is_found_by_the_name_it_was_installed_under(installed, tmp_path):
    archive = tmp_path / "toy.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        bundle.add(installed / "toy", arcname="toy")
    root = tmp_path / "adapters"
    for name in ("toy", "toy-v2"):
        code, output = _run("adapters", "import", str(archive), "--to", str(root), "--name", name)
        assert code == 0, output
    for name in ("toy", "toy-v2"):
        code, output = _run("adapters", "verify", name, "--path", str(root))
        assert code == 0 and str(root / name) in output, output
    shutil.move(root / "toy", root / "toy-v1")  # now only their domain is `toy`
    code, output = _run("adapters", "verify", "toy", "--path", str(root))
    assert code == 2 and "all have the domain `toy`; name one by its folder" in output


def test_a_bundle_with_a_damaged_manifest_is_named_not_loaded_as_a_model(installed, tmp_path):
    from mint_distill.adapters import BundleError
    from mint_distill.recommend import open_reranker

    damaged = tmp_path / "toy"
    shutil.copytree(installed / "toy", damaged)
    (damaged / "manifest.json").write_text('{"format": ')
    with pytest.raises(BundleError, match=r"toy/manifest\.json:1: not valid JSON"):
        open_reranker(str(damaged))
    code, output = _run("adapters", "list", "--path", str(tmp_path))
    assert code == 0 and "not valid JSON" in output and "skipped" in output, output


@pytest.mark.parametrize(
    "edit, named",
    [
        (lambda manifest: manifest["components"]["biencoder"]["lora"].pop("r"), "`components.biencoder.lora.r`"),
        (lambda manifest: manifest.update(recipe="x"), "`recipe`"),
        (lambda manifest: manifest.update(training_data=[1, 2]), "`training_data`"),
        (lambda manifest: manifest["components"].update(crossencoder=manifest["components"].pop("biencoder")), "`components.biencoder`"),
        (lambda manifest: manifest.update(domain="../../Evil Domain"), "domain `../../Evil Domain` must be"),
    ],
)
def test_a_manifest_the_commands_cannot_read_is_an_error_naming_the_key(installed, tmp_path, edit, named):
    copy = shutil.copytree(installed / "toy", tmp_path / "bundles" / "toy")
    manifest = json.loads((copy / "manifest.json").read_text())
    edit(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    for command in ("show", "verify"):
        code, output = _run("adapters", command, str(copy))
        assert code == 2 and named in " ".join(output.split()), output
    code, output = _run("adapters", "list", "--path", str(tmp_path / "bundles"))
    assert code == 0 and f"skipped {copy / 'manifest.json'}: {named}" in "".join(output.split("\n")), output

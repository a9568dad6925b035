"""Adapter bundles: round trip, verification, base model check, card, archive import."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import embedded_or_skip
from test_adapters_support import make_base_encoder, make_lora_encoder

from mint_distill.adapters import (
    BaseModelMismatchError,
    BundleError,
    ComponentSource,
    import_bundle,
    load_bundle,
    read_manifest,
    verify_bundle,
    write_bundle,
)
from mint_distill.errors import IntegrityError
from mint_distill.io import sha256_file

TEXTS = ["quiet bar with live jazz music", "family park with a hike trail", "cheap vegan ramen and sushi"]
EVALUATION = {"rankers": {"bm25": {"NDCG@5": 0.41, "MAP": 0.2}, "biencoder": {"NDCG@5": 0.52, "MAP": 0.27}}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    base = make_base_encoder(root / "base")
    return {"root": root, "base": base, "trained": make_lora_encoder(base, root / "trained")}


@pytest.fixture(scope="module")
def bundle(trained) -> Path:
    target = trained["root"] / "bundles" / "toy"
    write_bundle(
        target,
        domain="toy",
        biencoder=ComponentSource(trained["trained"], str(trained["base"])),
        recipe={"name": "toy-run", "data": {"source": {"format": "table", "path": "toy.csv"}}},
        training_data={"filter": {"pairs": 120, "kept": 60}},
        evaluation=EVALUATION,
        description="A toy adapter.",
    )
    return target


def _encode(model, texts=TEXTS) -> np.ndarray:
    return model.encode(texts, convert_to_numpy=True)


def test_round_trip_gives_the_trained_models_embeddings(trained, bundle):
    from sentence_transformers import SentenceTransformer

    # sentence-transformers loads the trained folder on its own (base path from adapter_config.json).
    expected = _encode(SentenceTransformer(str(trained["trained"]), device="cpu"))
    base_only = _encode(SentenceTransformer(str(trained["base"]), device="cpu"))
    assert verify_bundle(bundle) == []
    loaded = _encode(load_bundle(bundle))
    np.testing.assert_allclose(loaded, expected, atol=1e-6)
    assert np.abs(loaded - base_only).max() > 1e-2, "the adapter must change the embeddings"
    merged = _encode(load_bundle(bundle, merge=True))
    np.testing.assert_allclose(merged, expected, atol=1e-5)


def test_manifest_records_base_files_recipe_and_figures(trained, bundle):
    from mint_distill.models import resolve_model

    manifest = read_manifest(bundle)
    component = manifest["components"]["biencoder"]
    assert component["base_model"]["weights_sha256"] == sha256_file(trained["base"] / "model.safetensors")
    assert component["base_model"]["weights_sha256"] == resolve_model(str(trained["base"])).weights_sha256()
    assert component["lora"]["r"] == 4 and component["lora"]["target_modules"] == ["dense", "key", "query", "value"]
    assert manifest["recipe"]["name"] == "toy-run"
    assert yaml.safe_load((bundle / "recipe.yaml").read_text())["name"] == "toy-run"
    assert manifest["evaluation"] == EVALUATION and manifest["training_data"]["filter"]["kept"] == 60
    assert {"torch", "peft", "sentence-transformers"} <= set(manifest["versions"])
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk
    for relative, record in manifest["files"].items():
        assert sha256_file(bundle / relative) == record["sha256"]
    assert "model.safetensors" not in {Path(name).name for name in on_disk}, "no base weights in a bundle"


def test_card_has_front_matter_and_figures(bundle):
    text = (bundle / "README.md").read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["library_name"] == "sentence-transformers"
    assert {"peft", "lora", "domain-toy"} <= set(front["tags"]) and front["license"] == "other"
    assert "| biencoder | 0.5200 | 0.2700 |" in text
    assert "| filter | kept | 60 |" in text


@pytest.mark.parametrize(("finetuned_weight", "said"), [(1.0, False), (0.5, True)])
def test_card_says_when_the_student_was_averaged_with_its_base(bundle, finetuned_weight, said):
    from mint_distill.adapters.card import render_card

    recipe = {"students": {"biencoder": {"max_seq_length": 128, "finetuned_weight": finetuned_weight}}}
    text = render_card(read_manifest(bundle), recipe)
    assert ("the update scaled by 0.5 (WiSE-FT)" in text) is said
    assert "max sequence length 128" in text


def test_the_adapter_config_names_an_embedded_base_by_its_hub_id_and_a_local_one_by_its_path(
    trained, bundle, tmp_path
):
    adapter = json.loads((bundle / "biencoder" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(trained["base"])  # a local base has no hub id
    embedded_or_skip("all-minilm-l6-v2")
    write_bundle(
        tmp_path / "hubbed", domain="toy", biencoder=ComponentSource(trained["trained"], "embedded:all-minilm-l6-v2")
    )
    adapter = json.loads((tmp_path / "hubbed" / "biencoder" / "adapter_config.json").read_text())
    # the training machine's cache folder would load nowhere else
    assert adapter["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_tampered_file_is_named(bundle, tmp_path):
    copy = shutil.copytree(bundle, tmp_path / "toy")
    weights = copy / "biencoder" / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    (copy / "biencoder" / "extra.py").write_text("print('hi')\n")
    problems = {p.file: p.detail for p in verify_bundle(copy)}
    assert set(problems) == {"biencoder/adapter_model.safetensors", "biencoder/extra.py"}
    assert "sha256" in problems["biencoder/adapter_model.safetensors"]
    with pytest.raises(IntegrityError, match="biencoder/adapter_model.safetensors"):
        load_bundle(copy)


def _edited_manifest(bundle: Path, copy: Path, edit) -> Path:
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    edit(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_a_component_outside_the_bundle_is_refused_although_every_listed_file_verifies(bundle, tmp_path):
    # The outside copy would load unverified: verify only hashes the files under the bundle.
    shutil.copytree(bundle / "biencoder", tmp_path / "elsewhere")
    outside = "../elsewhere"

    def point_outside(manifest):
        manifest["components"]["biencoder"]["path"] = outside

    copy = _edited_manifest(bundle, tmp_path / "toy", point_outside)
    with pytest.raises(BundleError, match=r"component `biencoder` path `\.\./elsewhere` is outside the bundle"):
        load_bundle(copy)
    outside = "link"
    copy = _edited_manifest(bundle, tmp_path / "toy-link", point_outside)
    (copy / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BundleError, match="path `link` is outside the bundle"):
        load_bundle(copy)


def test_a_manifest_missing_a_key_is_an_error_naming_it(bundle, tmp_path):
    copy = _edited_manifest(bundle, tmp_path / "toy", lambda manifest: manifest["components"]["biencoder"].pop("lora"))
    with pytest.raises(BundleError, match=r"manifest\.json: `components\.biencoder\.lora`: Field required"):
        load_bundle(copy)


def test_wrong_base_is_refused_naming_both_hashes(trained, bundle, tmp_path):
    other = make_base_encoder(tmp_path / "other-base", seed=7)
    expected = read_manifest(bundle)["components"]["biencoder"]["base_model"]["weights_sha256"]
    actual = sha256_file(other / "model.safetensors")
    with pytest.raises(BaseModelMismatchError) as raised:
        load_bundle(bundle, base=str(other))
    assert expected in str(raised.value) and actual in str(raised.value)


def test_an_adapter_folder_that_records_its_base_refuses_another(trained, tmp_path):
    from mint_distill.adapters.loading import load_adapted_model

    adapter = tmp_path / "adapter"
    shutil.copytree(trained["trained"], adapter)
    recorded = {"reference": str(trained["base"]), "weights_sha256": sha256_file(trained["base"] / "model.safetensors")}
    (adapter / "mint-student.json").write_text(json.dumps({"kind": "biencoder", "base_model": recorded}))
    other = make_base_encoder(tmp_path / "other-base", seed=7)
    with pytest.raises(BaseModelMismatchError, match=r"adapter .*adapter was trained on") as raised:
        load_adapted_model(adapter, str(other))
    assert sha256_file(other / "model.safetensors") in str(raised.value)
    assert load_adapted_model(adapter, str(trained["base"])).encode(TEXTS).shape[0] == len(TEXTS)


def test_bundle_refuses_a_fully_fine_tuned_model(trained, tmp_path):
    with pytest.raises(BundleError, match="LoRA adapters only"):
        write_bundle(tmp_path / "b", domain="toy", biencoder=ComponentSource(trained["base"], str(trained["base"])))
    with pytest.raises(BundleError, match="domain"):
        write_bundle(
            tmp_path / "b", domain="Bad Name", biencoder=ComponentSource(trained["trained"], str(trained["base"]))
        )


def test_rewriting_a_bundle_replaces_it_whole(trained, bundle, tmp_path):
    target = shutil.copytree(bundle, tmp_path / "toy")
    (target / "stale.txt").write_text("left over")
    write_bundle(target, domain="toy", biencoder=ComponentSource(trained["trained"], str(trained["base"])))
    assert not (target / "stale.txt").exists() and verify_bundle(target) == []
    assert [p.name for p in tmp_path.iterdir()] == ["toy"], "no staging folder left behind"


def test_a_written_bundle_has_the_modes_the_umask_gives(trained, tmp_path):
    previous = os.umask(0o022)
    try:
        write_bundle(tmp_path / "toy", domain="toy", biencoder=ComponentSource(trained["trained"], str(trained["base"])))
    finally:
        os.umask(previous)
    paths = [tmp_path / "toy", *(tmp_path / "toy").rglob("*")]
    modes = {path.name: oct(path.stat().st_mode & 0o777) for path in paths}
    assert set(modes.values()) == {"0o755", "0o644"}, modes


def _tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return path


def _bundle_members(bundle: Path, prefix: str) -> dict[str, bytes]:
    return {f"{prefix}{p.relative_to(bundle).as_posix()}": p.read_bytes() for p in bundle.rglob("*") if p.is_file()}


def test_import_tar_gz_and_zip(bundle, tmp_path):
    archive = _tar(tmp_path / "toy.tar.gz", _bundle_members(bundle, "toy/"))
    installed = import_bundle(archive, tmp_path / "adapters")
    assert installed == tmp_path / "adapters" / "toy" and verify_bundle(installed) == []
    with pytest.raises(BundleError, match="already exists"):
        import_bundle(archive, tmp_path / "adapters")
    zipped = tmp_path / "toy.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        for name, data in _bundle_members(bundle, "").items():
            archive.writestr(name, data)
    assert verify_bundle(import_bundle(zipped, tmp_path / "other", name="mine")) == []
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["mine"]


@pytest.mark.parametrize(
    "members,links",
    [
        ({"toy/manifest.json": b"{}", "../escaped.txt": b"x"}, {}),
        ({"toy/manifest.json": b"{}", "/tmp/mint-absolute-escape.txt": b"x"}, {}),
        ({"toy/manifest.json": b"{}"}, {"toy/link": "/etc/passwd"}),
    ],
    ids=["parent-traversal", "absolute-path", "symlink"],
)
def test_import_refuses_escaping_members(tmp_path, members, links):
    archive = _tar(tmp_path / "evil.tar.gz", members, links)
    target = tmp_path / "root" / "adapters"
    with pytest.raises(IntegrityError):
        import_bundle(archive, target)
    assert not (tmp_path / "root" / "escaped.txt").exists()
    assert not Path("/tmp/mint-absolute-escape.txt").exists()
    assert list(target.iterdir()) == [], "nothing extracted, staging removed"


def test_import_refuses_zip_traversal_and_links(tmp_path):
    traversal = tmp_path / "traversal.zip"
    with zipfile.ZipFile(traversal, "w") as archive:
        archive.writestr("manifest.json", "{}")
        archive.writestr("../../escaped.txt", "x")
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as archive:
        info = zipfile.ZipInfo("biencoder/link")
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "/etc/passwd")
    for archive in (traversal, link):
        with pytest.raises(IntegrityError):
            import_bundle(archive, tmp_path / "adapters")
    assert not (tmp_path / "escaped.txt").exists() and list((tmp_path / "adapters").iterdir()) == []


def test_import_refuses_a_tampered_bundle(bundle, tmp_path):
    members = _bundle_members(bundle, "toy/")
    members["toy/biencoder/adapter_config.json"] = members["toy/biencoder/adapter_config.json"].replace(
        b'"r": 4', b'"r": 8'
    )
    with pytest.raises(IntegrityError, match="adapter_config.json"):
        import_bundle(_tar(tmp_path / "t.tar.gz", members), tmp_path / "adapters")
    assert list((tmp_path / "adapters").iterdir()) == []


def test_cross_encoder_component_round_trip(trained, tmp_path):
    from sentence_transformers import CrossEncoder
    from test_adapters_support import make_cross_encoder, make_lora_cross_encoder

    base = make_cross_encoder(tmp_path / "ce-base")
    tuned = make_lora_cross_encoder(base, tmp_path / "ce-trained")
    pairs = [("quiet bar with jazz", "a jazz bar with live music"), ("family park", "sushi and ramen")]
    expected = CrossEncoder(str(tuned), device="cpu").predict(pairs)
    assert np.abs(expected - CrossEncoder(str(base), device="cpu").predict(pairs)).max() > 1e-4
    write_bundle(
        tmp_path / "both",
        domain="toy",
        biencoder=ComponentSource(trained["trained"], str(trained["base"])),
        crossencoder=ComponentSource(tuned, str(base)),
    )
    manifest = read_manifest(tmp_path / "both")
    assert set(manifest["components"]) == {"biencoder", "crossencoder"}
    assert manifest["components"]["crossencoder"]["lora"]["modules_to_save"] == ["classifier"]
    loaded = load_bundle(tmp_path / "both", component="crossencoder")
    assert isinstance(loaded, CrossEncoder)
    np.testing.assert_allclose(loaded.predict(pairs), expected, atol=1e-6)

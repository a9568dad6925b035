"""Export: merged folder, ONNX fp32 and int8, parity with the PyTorch model, the CLI."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_adapters_support import WORDS, make_base_encoder, make_lora_encoder

from mint_distill.adapters import ComponentSource, write_bundle
from mint_distill.export import OnnxEncoder, export_encoder
from mint_distill.export.onnx import ExportError, runtime_layout

FIXTURES = Path(__file__).parent / "fixtures" / "data"
# Lengths from 1 to ~150 words (past max_seq_length 64, so truncation is exercised).
TEXTS = [
    " ".join(WORDS[i % len(WORDS)] for i in range(start, start + length))
    for start, length in ((0, 1), (3, 7), (10, 30), (5, 150))
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    base = make_base_encoder(root / "base")
    trained = make_lora_encoder(base, root / "trained")
    report = export_encoder(trained, root / "out", base=str(base))
    return {"root": root, "base": base, "trained": trained, "out": root / "out", "report": report}


def _reference(exported) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    # Independent of the exporter: sentence-transformers loads the LoRA folder itself.
    return SentenceTransformer(str(exported["trained"]), device="cpu").encode(TEXTS)


def test_export_writes_plain_folder_and_onnx(exported):
    out = exported["out"]
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {
        "model.safetensors",
        "modules.json",
        "onnx/model.onnx",
        "onnx/model_qint8.onnx",
        "onnx_encoder.json",
    } <= names
    assert "adapter_config.json" not in names, "the LoRA is merged: a plain sentence-transformers folder"
    assert sorted(p.name for p in (out / "onnx").iterdir()) == ["model.onnx", "model_qint8.onnx"], "no scratch files"
    config = json.loads((out / "onnx_encoder.json").read_text())
    assert config["pooling"] == "mean" and config["normalize"] is True and config["max_seq_length"] == 64
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".out")] == [], "no staging folder left"


def test_merged_and_onnx_match_the_pytorch_model(exported):
    from sentence_transformers import SentenceTransformer

    expected = _reference(exported)
    merged = SentenceTransformer(str(exported["out"]), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(merged, expected, atol=1e-5)
    fp32 = OnnxEncoder(exported["out"], "fp32")
    np.testing.assert_allclose(fp32.encode(TEXTS), expected, atol=1e-5)
    # One text at a time (other batch shapes than at export) gives the same rows.
    np.testing.assert_allclose(np.concatenate([fp32.encode([t]) for t in TEXTS]), expected, atol=1e-5)
    int8 = OnnxEncoder(exported["out"], "int8").encode(TEXTS)
    cosines = (int8 * expected).sum(axis=1) / (np.linalg.norm(int8, axis=1) * np.linalg.norm(expected, axis=1))
    assert cosines.min() >= 0.99


def test_report_states_parity_for_every_variant(exported):
    report = exported["report"]
    by_variant = {p.variant: p for p in report.parity}
    assert set(by_variant) == {"merged", "onnx-fp32", "onnx-int8"}
    assert by_variant["merged"].min_cosine > 0.99999 and by_variant["onnx-fp32"].min_cosine > 0.99999
    assert 0.99 <= by_variant["onnx-int8"].min_cosine < 1.0
    text = "\n".join(report.lines())
    assert "onnx-int8" in text and "goal >= 0.99: met" in text


def test_export_from_a_bundle_equals_export_from_the_folder(exported, tmp_path):
    bundle = tmp_path / "bundle"
    write_bundle(bundle, domain="toy", biencoder=ComponentSource(exported["trained"], str(exported["base"])))
    export_encoder(bundle, tmp_path / "from-bundle", int8=False)
    from_bundle = OnnxEncoder(tmp_path / "from-bundle", "fp32").encode(TEXTS)
    np.testing.assert_allclose(from_bundle, OnnxEncoder(exported["out"], "fp32").encode(TEXTS), atol=1e-6)
    assert not (tmp_path / "from-bundle" / "onnx" / "model_qint8.onnx").exists()
    with pytest.raises(Exception, match="no int8 model"):
        OnnxEncoder(tmp_path / "from-bundle", "int8")


def test_an_export_into_its_source_is_refused_and_leaves_it_intact(exported, tmp_path):
    from mint_distill.adapters import verify_bundle
    from mint_distill.cli import cli

    bundle = tmp_path / "bundle"
    write_bundle(bundle, domain="toy", biencoder=ComponentSource(exported["trained"], str(exported["base"])))
    for out in (bundle / "exp", bundle):
        result = CliRunner().invoke(cli, ["export", str(bundle), "--out", str(out), "--no-onnx"])
        assert result.exit_code == 2 and f"--out {out} is at or inside the source" in result.output, result.output
    assert verify_bundle(bundle) == [] and not (bundle / "exp").exists()


def test_an_unwritable_out_is_refused_before_loading(exported, tmp_path, monkeypatch):
    from mint_distill.adapters import loading
    from mint_distill.errors import MintError

    monkeypatch.setattr(loading, "load_encoder", lambda *args, **kwargs: pytest.fail("loaded before checking --out"))
    (tmp_path / "file").write_text("")
    for out, message in [(tmp_path / "file" / "x", "is a file, not a folder"), (Path("/proc/x"), "cannot write in /proc")]:
        with pytest.raises(MintError, match=f"--out {out}: .*{message}"):
            export_encoder(exported["trained"], out, base=str(exported["base"]), onnx=False)


def test_export_replaces_an_earlier_export_only(exported, tmp_path):
    from mint_distill.errors import MintError

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    base = shutil.copytree(exported["base"], tmp_path / "base")  # a model folder: the adapter's base
    for folder in (notes, base):
        with pytest.raises(MintError, match="not empty and holds no earlier export"):
            export_encoder(exported["trained"], folder, base=str(base), onnx=False)
    with pytest.raises(MintError, match="holds the source"):
        export_encoder(exported["trained"], exported["root"], base=str(exported["base"]), onnx=False)
    assert (notes / "todo.txt").read_text() == "keep me" and (exported["trained"] / "adapter_config.json").is_file()
    assert (base / "model.safetensors").is_file()
    again = tmp_path / "again"
    previous = os.umask(0o022)
    try:
        export_encoder(exported["trained"], again, base=str(exported["base"]), onnx=False)
    finally:
        os.umask(previous)
    # published for other users too, safetensors' 0o600 included
    assert {oct(p.stat().st_mode & 0o777) for p in again.rglob("*") if p.is_file()} == {"0o644"}
    (again / "stale.txt").write_text("from an older export")
    export_encoder(exported["trained"], again, base=str(exported["base"]), onnx=False)
    assert not (again / "stale.txt").exists() and (again / "modules.json").is_file()


def test_unsupported_module_stack_is_refused(exported):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    model = SentenceTransformer(str(exported["base"]), device="cpu")
    model.append(Dense(32, 8))
    with pytest.raises(ExportError, match="Transformer \\+ Pooling"):
        runtime_layout(model)


def _ndcg5(ranked: list[str], judged: dict[str, int]) -> float:
    gains = [judged.get(item, 0) for item in ranked[:5]]
    ideal = sorted(judged.values(), reverse=True)[:5]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    best = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / best if best else 0.0


def test_ndcg_parity_on_a_test_collection(exported, tmp_path, monkeypatch):
    from mint_distill.data import load_test_collection
    from mint_distill.recipe import Recipe
    from mint_distill.recipe.sections.data import TestCollectionSpec

    monkeypatch.setenv("MINT_TEST_FIXTURES", str(FIXTURES))
    recipe = Recipe.model_validate(
        {
            "name": "toy",
            "data": {
                # unexpanded, as the schema's default data_dir reaches the export
                "data_dir": "${MINT_TEST_FIXTURES}",
                "source": {"format": "yelp_academic", "path": "yelp_academic"},
                "test": {"path": "pointrec", "download": False},
            },
        }
    )
    report = export_encoder(exported["trained"], tmp_path / "out", base=str(exported["base"]), recipe=recipe)
    ranking = report.ranking
    assert ranking is not None and set(ranking.ndcg5) == {"pytorch", "onnx-fp32", "onnx-int8"}
    assert ranking.ndcg5["onnx-fp32"] == pytest.approx(ranking.ndcg5["pytorch"], abs=1e-9)
    # NDCG@5 recomputed here from the model's own ranking of each judged pool.
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(exported["trained"]), device="cpu")
    collection = load_test_collection(TestCollectionSpec(path="pointrec", download=False), FIXTURES)
    values = []
    for qid in collection.qids():
        pool = [item for item in collection.pool(qid) if collection.item_text(item) is not None]
        if not pool:  # a request none of whose judged POIs has a record scores 0 (trec_eval -c)
            values.append(0.0)
            continue
        scores = (
            model.encode([collection.item_text(i) for i in pool]) @ model.encode([collection.requests[qid].text])[0]
        )
        ranked = [pool[i] for i in np.argsort(-scores, kind="stable")]
        values.append(_ndcg5(ranked, collection.evaluation_qrels(qid)))
    assert ranking.ndcg5["pytorch"] == pytest.approx(sum(values) / len(values), abs=1e-6)
    assert ranking.requests_changed("onnx-fp32") == 0 and ranking.p_value("onnx-fp32") == 1.0
    assert "NDCG@5 on" in "\n".join(report.lines())
    assert f"of {ranking.requests} requests differ, paired randomization p = " in "\n".join(report.lines())


def test_ranking_parity_says_how_many_requests_moved_and_if_it_is_noise():
    from mint_distill.export.parity import RankingParity

    reference = {f"q{i}": 0.5 for i in range(12)}
    everywhere_better = {qid: value + 0.1 for qid, value in reference.items()}
    one_request_better = {**reference, "q3": 0.9}
    parity = RankingParity(
        collection="toy",
        reference="pytorch",
        per_request={"pytorch": reference, "better": everywhere_better, "one": one_request_better},
    )
    assert parity.requests == 12
    assert parity.ndcg5 == pytest.approx({"pytorch": 0.5, "better": 0.6, "one": 0.5 + 0.4 / 12})
    assert parity.requests_changed("better") == 12 and parity.requests_changed("one") == 1
    # 12 requests: 4,096 sign patterns, of which only all-plus and all-minus reach the observed mean.
    assert parity.p_value("better") == pytest.approx(2 / 4096)
    assert parity.p_value("one") == 1.0  # one changed request: flipping its sign is as extreme
    summary = parity.as_dict()
    assert summary["requests_changed"] == {"better": 12, "one": 1}
    assert summary["relative_difference"]["better"] == pytest.approx(0.2)


def test_export_cli_prints_parity(exported, tmp_path):
    from mint_distill.cli import cli

    result = CliRunner().invoke(
        cli,
        [
            "export",
            str(exported["trained"]),
            "--base",
            str(exported["base"]),
            "--out",
            str(tmp_path / "cli"),
            "--no-int8",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "onnx-fp32" in result.output and "min 1.000000" in result.output
    assert (tmp_path / "cli" / "onnx" / "model.onnx").is_file()


def test_texts_that_are_not_utf8_are_an_error_naming_the_file_and_line(exported, tmp_path):
    from mint_distill.cli import cli

    texts = tmp_path / "texts.txt"
    texts.write_bytes(b"quiet bar\n\xff\xfe jazz\n")
    args = ["export", str(exported["trained"]), "--base", str(exported["base"]), "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(cli, [*args, "--texts", str(texts)])
    assert result.exit_code == 2 and f"{texts}, line 2: not UTF-8 text" in result.output, result.output


def test_strict_checks_every_variant_and_a_nan_cosine_fails(exported, tmp_path, monkeypatch):
    from mint_distill.cli import cli
    from mint_distill.export import exporter

    real = exporter.cosine_parity

    def broken_merge(variant, reference, candidate):
        return real(variant, reference, np.full_like(candidate, np.nan) if variant == "merged" else candidate)

    monkeypatch.setattr(exporter, "cosine_parity", broken_merge)
    args = ["export", str(exported["trained"]), "--base", str(exported["base"]), "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(cli, [*args, "--no-onnx", "--strict"])
    assert result.exit_code == 2 and "parity goals not met for: merged" in result.output
    assert "goal >= 0.9999: NOT met" in result.output


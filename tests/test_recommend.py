"""`recommend`: catalogs, the on-disk index, ranking, reranking, output, and no torch with ONNX."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import embedded_or_skip
from test_adapters_support import WORDS, make_base_encoder, make_cross_encoder, make_lora_encoder

from mint_distill.errors import DataError
from mint_distill.export import export_encoder
from mint_distill.recommend import (
    Recommender,
    build_or_load_index,
    open_encoder,
    pointrec_city_catalog,
    read_jsonl_catalog,
    recommend,
)
from mint_distill.recommend.index import CHUNK

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "data"

OBVIOUS = {
    "jazz-bar": "A quiet jazz bar with live music every night and a small wine list.",
    "pizzeria": "Family pizza restaurant with a play corner for kids and high chairs.",
    "museum": "Modern art museum with rotating exhibitions of painting and sculpture.",
    "trail": "Mountain trail for day hikes with great views over the valley.",
    "sushi": "Sushi counter serving fresh nigiri and sashimi omakase.",
    "strings": "Nickel wound electric guitar strings that stay in tune.",
}


def _write_catalog(path: Path, items: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"item_id": k, "name": k.title(), "text": v}) + "\n" for k, v in items.items()))
    return path


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("recommend")
    base = make_base_encoder(root / "base")
    trained = make_lora_encoder(base, root / "trained")
    export_encoder(trained, root / "export", base=str(base))
    texts = {f"item{i:03d}": " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(4 + i % 9)) for i in range(40)}
    return {
        "root": root,
        "base": base,
        "trained": trained,
        "export": root / "export",
        "catalog": _write_catalog(root / "items.jsonl", texts),
        "texts": texts,
    }


def test_minilm_ranks_the_obvious_item_first(tmp_path):
    encoder = embedded_or_skip("all-minilm-l6-v2")
    catalog = _write_catalog(tmp_path / "items.jsonl", OBVIOUS)
    answers = recommend(
        [
            "We want to hear live jazz somewhere calm with a glass of wine.",
            "Where can we eat pizza with our two small children?",
            "I need new strings for my electric guitar.",
        ],
        encoder=encoder,
        catalog=catalog,
        k=3,
    )
    assert [a.results[0].item_id for a in answers] == ["jazz-bar", "pizzeria", "strings"]
    assert all(a.results[0].score > a.results[1].score for a in answers)


# Exact-match checks use the fp32 ONNX model: int8 quantizes activations at run time, so a text
# encoded alone and in a batch gets slightly different vectors (up to 0.005 per dimension for
# MiniLM), and a random tiny encoder's embeddings are all close to each other. int8 ranking is
# tested on MiniLM below.


def test_onnx_encoder_finds_the_item_with_the_request_text(tiny_export):
    texts = tiny_export["texts"]
    answers = recommend(
        [texts["item017"], texts["item031"]],
        encoder=str(tiny_export["export"]),
        catalog=tiny_export["catalog"],
        k=5,
        precision="fp32",
    )
    assert [a.results[0].item_id for a in answers] == ["item017", "item031"]
    assert answers[0].results[0].score == pytest.approx(1.0, abs=1e-5)
    assert [r.rank for r in answers[0].results] == [1, 2, 3, 4, 5]


@pytest.mark.integration
def test_int8_onnx_minilm_ranks_the_obvious_item_first(tmp_path):
    encoder = embedded_or_skip("all-minilm-l6-v2")
    export_encoder(encoder, tmp_path / "minilm")
    answers = recommend(
        [
            "We want to hear live jazz somewhere calm with a glass of wine.",
            "Where can we eat pizza with our two small children?",
            "I need new strings for my electric guitar.",
        ],
        encoder=str(tmp_path / "minilm"),
        catalog=_write_catalog(tmp_path / "items.jsonl", OBVIOUS),
        k=3,
        precision="int8",
    )
    assert [a.results[0].item_id for a in answers] == ["jazz-bar", "pizzeria", "strings"]


def test_index_is_built_once_and_rebuilt_for_new_content(tiny_export, tmp_path):
    catalog_path = _write_catalog(tmp_path / "items.jsonl", tiny_export["texts"])
    encoder = open_encoder(str(tiny_export["export"]), precision="fp32")
    index = build_or_load_index(read_jsonl_catalog(catalog_path), encoder)
    assert index.folder.parent == tmp_path / ".items.jsonl.index"
    np.testing.assert_allclose(index.embeddings, encoder.encode(list(tiny_export["texts"].values())), atol=1e-6)
    stamp = (index.folder / "embeddings.npy").stat().st_mtime_ns
    again = build_or_load_index(read_jsonl_catalog(catalog_path), encoder)
    assert again.folder == index.folder and (index.folder / "embeddings.npy").stat().st_mtime_ns == stamp
    changed = dict(tiny_export["texts"], item000="quiet jazz bar")
    other = build_or_load_index(read_jsonl_catalog(_write_catalog(catalog_path, changed)), encoder)
    assert other.folder != index.folder
    int8 = build_or_load_index(
        read_jsonl_catalog(catalog_path), open_encoder(str(tiny_export["export"]), precision="int8")
    )
    assert int8.folder not in (index.folder, other.folder), "another encoder, another index"


class _FailingAfter:
    """Wraps a real encoder and fails on call `n`, as an interrupted indexing run would."""

    def __init__(self, encoder, n: int):
        self.encoder, self.n, self.calls = encoder, n, 0
        self.description, self.fingerprint, self.similarity = (
            encoder.description,
            encoder.fingerprint,
            encoder.similarity,
        )

    def encode(self, texts):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return self.encoder.encode(texts)


def test_ties_at_the_cut_are_broken_like_trec_eval_whatever_the_catalog_order(tmp_path):
    from mint_distill.evaluation.trec import ranked
    from mint_distill.recommend import CatalogIndex

    vectors = {"best": [1.0, 0.0], **{f"tie{n}": [0.5, 0.5] for n in range(6)}, "far": [0.0, 1.0]}
    for ids in (list(vectors), list(reversed(vectors))):
        index = CatalogIndex(tmp_path, ids, np.array([vectors[i] for i in ids]), {"similarity": "dot"})
        found = [(ids[row], score) for row, score in index.search(np.array([[1.0, 0.2]]), 3)[0]]
        assert found == ranked(dict(found)) and [item for item, _ in found] == ["best", "tie5", "tie4"]


def test_a_trec_run_keeps_full_scores_and_refuses_ids_it_cannot_hold():
    import io

    from mint_distill.evaluation.trec import ranked
    from mint_distill.recommend.output import write_trec
    from mint_distill.recommend.recommender import Answer, Recommendation

    near_tie = [Recommendation(1, "a", None, "", 0.81234571), Recommendation(2, "b", None, "", 0.81234560)]
    out = io.StringIO()
    write_trec([Answer("q1", "quiet bar", near_tie)], out)
    scores = {line.split()[2]: float(line.split()[4]) for line in out.getvalue().splitlines()}
    assert scores == {"a": 0.81234571, "b": 0.81234560}
    assert [item for item, _ in ranked(scores)] == ["a", "b"]  # rounded to 6 places, b would rank first
    for request_id, item_id in [("q1", "my bar"), ("q1", ""), ("q 1", "a")]:
        answer = Answer(request_id, "quiet bar", [Recommendation(1, item_id, None, "", 0.5)])
        out = io.StringIO()
        with pytest.raises(DataError, match="cannot be a field of a TREC run"):
            write_trec([Answer("q0", "first", near_tie), answer], out)
        assert out.getvalue() == ""


def test_interrupted_indexing_resumes_from_finished_chunks(tiny_export, tmp_path):
    items = {f"i{n:04d}": f"{WORDS[n % len(WORDS)]} {WORDS[(n * 3) % len(WORDS)]}" for n in range(2 * CHUNK + 10)}
    catalog = read_jsonl_catalog(_write_catalog(tmp_path / "many.jsonl", items))
    encoder = open_encoder(str(tiny_export["export"]), precision="fp32")
    with pytest.raises(KeyboardInterrupt):
        build_or_load_index(catalog, _FailingAfter(encoder, 2))
    resumed = _FailingAfter(encoder, 0)
    index = build_or_load_index(catalog, resumed)
    assert resumed.calls == 2, "the first chunk was kept; two chunks were left"
    np.testing.assert_allclose(index.embeddings, encoder.encode(list(items.values())), atol=1e-6)
    (index.folder / "embeddings.npy").unlink()  # a half-deleted index is built again
    rebuilt = _FailingAfter(encoder, 0)
    np.testing.assert_allclose(build_or_load_index(catalog, rebuilt).embeddings, index.embeddings, atol=1e-6)
    assert rebuilt.calls == 3


def test_a_damaged_index_is_rebuilt_with_a_warning(tiny_export, tmp_path, caplog):
    catalog = read_jsonl_catalog(tiny_export["catalog"])
    encoder = open_encoder(str(tiny_export["export"]), precision="fp32")
    index = build_or_load_index(catalog, encoder, tmp_path)
    for name, damage in (
        ("embeddings.npy", lambda path: path.write_bytes(path.read_bytes()[:60])),
        ("ids.json", lambda path: path.write_text(json.dumps(catalog.ids[:3]))),
        ("index.json", lambda path: path.write_text("{bad")),
    ):
        damage(index.folder / name)
        caplog.clear()
        rebuilt = build_or_load_index(catalog, encoder, tmp_path)
        assert f"{index.folder}: cannot use this catalog index" in caplog.text and name in caplog.text
        assert rebuilt.ids == catalog.ids
        np.testing.assert_allclose(rebuilt.embeddings, index.embeddings, atol=1e-6)
        assert build_or_load_index(catalog, encoder, tmp_path).info == rebuilt.info  # kept again


def _indexed(tiny_export, tmp_path):
    """The tiny catalog, its fp32 export encoder and their index."""
    catalog = read_jsonl_catalog(tiny_export["catalog"])
    encoder = open_encoder(str(tiny_export["export"]), precision="fp32")
    return catalog, encoder, build_or_load_index(catalog, encoder, tmp_path / "index")


def test_rerank_orders_by_the_cross_encoder(tiny_export, tmp_path):
    import torch
    from sentence_transformers import CrossEncoder

    reranker = CrossEncoder(str(make_cross_encoder(tmp_path / "ce")), device="cpu")
    catalog, encoder, index = _indexed(tiny_export, tmp_path)
    request = "quiet bar with live jazz music"
    plain = Recommender(catalog, encoder, index).recommend([("q", request)], k=10)[0]
    reranked = Recommender(catalog, encoder, index, reranker, rerank_top_k=10).recommend([("q", request)], k=10)[0]
    assert {r.item_id for r in reranked.results} == {r.item_id for r in plain.results}
    # logits, though the folder records sentence-transformers' default sigmoid
    assert isinstance(reranker.activation_fn, torch.nn.Sigmoid)
    expected = reranker.predict([(request, r.text) for r in plain.results], activation_fn=torch.nn.Identity())
    order = [plain.results[i].item_id for i in np.argsort(-expected, kind="stable")]
    assert [r.item_id for r in reranked.results] == order
    assert [r.rerank_score for r in reranked.results] == pytest.approx(sorted(expected, reverse=True), abs=1e-6)


def test_fused_rerank_weighs_the_cross_encoder_against_the_encoder(tiny_export, tmp_path):
    import json

    from sentence_transformers import CrossEncoder

    from mint_distill.recommend import recorded_fusion_weight

    folder = make_cross_encoder(tmp_path / "ce")
    reranker = CrossEncoder(str(folder), device="cpu")
    catalog, encoder, index = _indexed(tiny_export, tmp_path)
    request = [("q", "quiet bar with live jazz music")]

    def order(results):
        return [r.item_id for r in results]

    plain = Recommender(catalog, encoder, index).recommend(request, k=10)[0].results
    alone = Recommender(catalog, encoder, index, reranker, rerank_top_k=10).recommend(request, k=10)[0].results
    at = {
        weight: Recommender(catalog, encoder, index, reranker, 10, fusion_weight=weight).recommend(request, k=10)[0].results
        for weight in (0.0, 0.5, 1.0)
    }
    assert order(plain) != order(alone)  # the random cross-encoder disagrees with the encoder
    assert order(at[0.0]) == order(plain) and order(at[1.0]) == order(alone)
    cross = np.array([r.rerank_score for r in sorted(alone, key=lambda r: r.item_id)])
    first = np.array([r.score for r in sorted(plain, key=lambda r: r.item_id)])
    expected = 0.5 * (cross - cross.mean()) / cross.std() + 0.5 * (first - first.mean()) / first.std()
    fused = [r.rerank_score for r in sorted(at[0.5], key=lambda r: r.item_id)]
    assert fused == pytest.approx(expected.tolist(), abs=1e-5)

    assert recorded_fusion_weight(str(folder)) is None  # no record: the cross-encoder alone
    (folder / "mint-student.json").write_text(json.dumps({"fusion_weight": 0.0}))
    assert recorded_fusion_weight(str(folder)) == 0.0

    from mint_distill.cli import cli

    command = [
        "recommend", "-e", str(tiny_export["export"]), "--precision", "fp32", "-c", str(tiny_export["catalog"]),
        "-k", "10", "--rerank", str(folder), "--rerank-top-k", "10", "--format", "jsonl", request[0][1],
    ]
    for extra, expected_order in (([], order(plain)), (["--fusion-weight", "1"], order(alone))):
        result = CliRunner().invoke(cli, [*command, *extra])
        assert result.exit_code == 0, result.output
        assert [r["item_id"] for r in json.loads(result.stdout)["results"]] == expected_order


def test_items_past_the_reranked_ones_follow_in_the_encoders_order(tiny_export, tmp_path):
    from sentence_transformers import CrossEncoder

    reranker = CrossEncoder(str(make_cross_encoder(tmp_path / "ce")), device="cpu")
    catalog, encoder, index = _indexed(tiny_export, tmp_path)
    request = [("q", "quiet bar with live jazz music")]
    plain = Recommender(catalog, encoder, index).recommend(request, k=10)[0].results
    head_only = Recommender(catalog, encoder, index, reranker, rerank_top_k=3).recommend(request, k=10)[0].results
    assert len(head_only) == len(plain) == 10  # -k beyond the reranked candidates keeps its depth
    assert {r.item_id for r in head_only[:3]} == {r.item_id for r in plain[:3]}
    assert [r.item_id for r in head_only[3:]] == [r.item_id for r in plain[3:]]
    scores = [r.rerank_score for r in head_only]
    assert all(a > b for a, b in itertools.pairwise(scores)), "a TREC run of these scores keeps this order"


def test_recommend_reranks_as_many_candidates_as_the_weight_was_chosen_over(tiny_export, tmp_path):
    from sentence_transformers import CrossEncoder

    from mint_distill.cli import cli

    folder = make_cross_encoder(tmp_path / "ce")
    (folder / "mint-student.json").write_text(json.dumps({"fusion_weight": 1.0, "rerank_top_k": 3}))
    reranker = CrossEncoder(str(folder), device="cpu")
    catalog, encoder, index = _indexed(tiny_export, tmp_path)
    request = [("q", "quiet bar with live jazz music")]

    def order(rerank_top_k):
        answer = Recommender(catalog, encoder, index, reranker, rerank_top_k, 1.0).recommend(request, k=10)[0]
        return [r.item_id for r in answer.results]

    assert order(3) != order(10)
    command = [
        "recommend", "-e", str(tiny_export["export"]), "--precision", "fp32", "-c", str(tiny_export["catalog"]),
        "-k", "10", "--rerank", str(folder), "--format", "jsonl", request[0][1],
    ]
    for extra, expected in (([], order(3)), (["--rerank-top-k", "10"], order(10))):
        result = CliRunner().invoke(cli, [*command, *extra])
        assert result.exit_code == 0, result.output
        assert [r["item_id"] for r in json.loads(result.stdout)["results"]] == expected


def test_a_model_of_the_wrong_kind_is_refused_naming_the_option(tiny_export, tmp_path):
    from mint_distill.cli import cli

    cross_encoder = str(make_cross_encoder(tmp_path / "ce"))
    catalog = _write_catalog(tmp_path / "items.jsonl", tiny_export["texts"])
    command = ["recommend", "-c", str(catalog), "quiet bar"]
    export = ["-e", str(tiny_export["export"]), "--precision", "fp32"]
    for extra, expected in (
        (["-e", "embedded:smollm2-135m-instruct"], "-e/--encoder: `embedded:smollm2-135m-instruct` is a causal-lm"),
        (["-e", cross_encoder], "-e/--encoder: `" + cross_encoder + "` is a cross-encoder"),
        ([*export, "--rerank", "embedded:all-minilm-l6-v2"], "--rerank: `embedded:all-minilm-l6-v2` is a sentence-transformer"),
        ([*export, "--rerank", str(tiny_export["base"])], "it needs a cross-encoder"),
    ):
        result = CliRunner().invoke(cli, [*command, *extra])
        assert result.exit_code == 2 and expected in " ".join(result.output.split()), result.output
    assert not (tmp_path / ".items.jsonl.index").exists()  # refused before indexing


def test_pointrec_city_catalog_holds_the_city_and_its_synonyms(tiny_export):
    from mint_distill.recipe.sections.data import TestCollectionSpec

    catalog = pointrec_city_catalog("Tokyo", FIXTURES, TestCollectionSpec(download=False))
    cities = {"Tokyo", "Yokohama", "Minato", "Taitō", "Shibuya"}
    expected = {
        poi
        for file in (FIXTURES / "pointrec" / "poi_dataset").rglob("*.json")
        for poi, record in json.loads(file.read_text()).items()
        if record["city"] in cities
    }
    assert set(catalog.ids) == expected and len(catalog.ids) == len(expected)
    encoder = open_encoder(str(tiny_export["export"]), precision="fp32")
    index = build_or_load_index(catalog, encoder, tiny_export["root"] / "tokyo-index")
    target = catalog.ids[-1]
    answer = Recommender(catalog, encoder, index).recommend([("q", catalog.texts[-1])], k=3)[0]
    assert answer.results[0].item_id == target
    with pytest.raises(DataError, match="no POI records for city `Atlantis`"):
        pointrec_city_catalog("Atlantis", FIXTURES, TestCollectionSpec(download=False))
    with pytest.raises(DataError, match="Pointrec city name is empty"):
        pointrec_city_catalog(" ", FIXTURES, TestCollectionSpec(download=False))


def test_bad_catalog_lines_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"item_id": "a", "text": "fine"}\n{"item_id": "b"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: needs `item_id`"):
        read_jsonl_catalog(path)
    path.write_text('{"item_id": "a", "text": "x"}\n{"item_id": "a", "text": "y"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: item_id `a` already on line 1"):
        read_jsonl_catalog(path)
    for item_id in ("", " ", {"a": 1}, True, 1.5):
        path.write_text(json.dumps({"item_id": 7, "text": "x"}) + "\n" + json.dumps({"item_id": item_id, "text": "y"}) + "\n")
        with pytest.raises(DataError, match=r"bad\.jsonl:2: `item_id` must be a non-empty string or an integer"):
            read_jsonl_catalog(path)
    path.write_text(json.dumps({"item_id": 7, "text": "x"}) + "\n")
    assert read_jsonl_catalog(path).ids == ["7"]
    path.write_bytes('{"item_id": "a", "text": "x"}\n{"item_id": "b", "text": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2: not UTF-8 text"):
        read_jsonl_catalog(path)
    path.write_bytes('{"item_id": "a", "text": "caf\u00e9"}\n'.encode("utf-8-sig"))
    assert read_jsonl_catalog(path).texts == ["caf\u00e9"]


def test_cli_formats_and_request_sources(tiny_export, tmp_path):
    from mint_distill.cli import cli

    texts = tiny_export["texts"]
    base = [
        "recommend",
        "-e",
        str(tiny_export["export"]),
        "--precision",
        "fp32",
        "-c",
        str(tiny_export["catalog"]),
        "-k",
        "3",
    ]
    runner = CliRunner()
    result = runner.invoke(cli, [*base, "--format", "jsonl", texts["item005"], texts["item009"]])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["request_id"], r["results"][0]["item_id"]) for r in lines] == [("r1", "item005"), ("r2", "item009")]
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps({"request_id": "Q7", "request": texts["item011"]}) + "\n")
    trec = runner.invoke(cli, [*base, "--format", "trec", "--requests", str(requests)])
    assert trec.exit_code == 0, trec.output
    first = trec.stdout.splitlines()[0].split()
    assert first[:4] == ["Q7", "Q0", "item011", "1"] and len(trec.stdout.splitlines()) == 3
    # arguments and a file together: the file's requests are numbered on, and a taken id is refused
    requests.write_text(texts["item011"] + "\n" + json.dumps({"request_id": "r1", "request": "x"}) + "\n")
    mixed = runner.invoke(cli, [*base, "--format", "trec", "--requests", str(requests), texts["item005"]])
    assert mixed.exit_code == 2 and "requests.jsonl, line 2: request id 'r1' is already taken" in mixed.output
    requests.write_text(texts["item011"] + "\n")
    mixed = runner.invoke(cli, [*base, "--format", "trec", "--requests", str(requests), texts["item005"]])
    assert mixed.exit_code == 0, mixed.output
    assert [line.split()[0] for line in mixed.stdout.splitlines()] == ["r1"] * 3 + ["r2"] * 3
    requests.write_bytes(texts["item011"].encode() + b"\ncaf\xe9\n")
    latin = runner.invoke(cli, [*base, "--requests", str(requests)])
    assert latin.exit_code == 2 and "requests.jsonl, line 2: not UTF-8 text" in latin.output
    table = runner.invoke(cli, [*base, "-"], input=texts["item020"] + "\n")
    assert table.exit_code == 0, table.output
    assert "Item020 (item020)" in table.stdout
    missing = runner.invoke(cli, ["recommend", "-e", str(tiny_export["export"]), "hello"])
    assert missing.exit_code == 2 and "--catalog" in missing.output


def test_empty_requests_are_refused(tiny_export, tmp_path):
    from mint_distill.cli import cli

    base = ["recommend", "-e", str(tiny_export["export"]), "--precision", "fp32", "-c", str(tiny_export["catalog"])]
    for arguments, expected in ((["quiet bar", ""], "request r2 is empty"), (["   "], "request r1 is empty")):
        result = CliRunner().invoke(cli, [*base, *arguments])
        assert result.exit_code == 2 and expected in result.output, result.output
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps({"request": "quiet bar"}) + "\n" + json.dumps({"request": "   "}) + "\n")
    result = CliRunner().invoke(cli, [*base, "--requests", str(requests)])
    assert result.exit_code == 2 and "requests.jsonl, line 2: no request text" in result.output, result.output


NO_TORCH_SCRIPT = """
import json, sys
from mint_distill.recommend import recommend
encoder, catalog, request, index = sys.argv[1:5]
answers = recommend([request], encoder=encoder, catalog=catalog, k=2, index_dir=index, precision="fp32")
print(json.dumps({"first": answers[0].results[0].item_id, "torch": "torch" in sys.modules,
                  "transformers": "transformers" in sys.modules}))
"""

NO_TORCH_CLI = """
import atexit, runpy, sys
atexit.register(lambda: print("TORCH" if "torch" in sys.modules else "NO-TORCH", file=sys.stderr))
encoder, catalog, request = sys.argv[1:4]
sys.argv = ["mint-distill", "recommend", "-e", encoder, "--precision", "fp32", "-c", catalog, "--format", "jsonl"]
sys.argv.append(request)
runpy.run_module("mint_distill", run_name="__main__")
"""


def test_onnx_recommend_never_imports_torch(tiny_export, tmp_path):
    request = tiny_export["texts"]["item023"]
    arguments = [str(tiny_export["export"]), str(tiny_export["catalog"]), request]
    library = subprocess.run(
        [sys.executable, "-c", NO_TORCH_SCRIPT, *arguments, str(tmp_path / "index")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert library.returncode == 0, library.stderr
    assert json.loads(library.stdout.splitlines()[-1]) == {"first": "item023", "torch": False, "transformers": False}
    command = subprocess.run(
        [sys.executable, "-c", NO_TORCH_CLI, *arguments], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert command.returncode == 0, command.stderr
    assert json.loads(command.stdout.splitlines()[-1])["results"][0]["item_id"] == "item023"
    assert command.stderr.strip().endswith("NO-TORCH")

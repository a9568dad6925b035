"""Rankers on the fixture collection: pools, BM25 against its formula, dense and cross-encoder
rankers with tiny random BERTs (incl. a LoRA adapter folder), encoding caches, UPR reranking."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from collections import Counter

import numpy as np
import pytest
from fixtures.evaluation.tiny_encoders import (
    load_fixture_collection,
    save_lora_adapter,
    save_tiny_cross_encoder,
    save_tiny_sentence_transformer,
)

from mint_distill.evaluation import (
    BM25Ranker,
    CrossEncoderScorer,
    DenseRanker,
    EvalCollection,
    Reranker,
)
from mint_distill.evaluation.trec import ranked
from mint_distill.recipe.sections.evaluation import RankerSpec


@pytest.fixture(scope="module")
def collection() -> EvalCollection:
    return load_fixture_collection()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    biencoder = save_tiny_sentence_transformer(folder / "biencoder")
    return {
        "biencoder": biencoder,
        "adapter": save_lora_adapter(biencoder, folder / "adapter"),
        "crossencoder": save_tiny_cross_encoder(folder / "crossencoder"),
    }


def test_fixture_pool_coverage(collection):
    rows = {row["qid"]: row for row in collection.coverage()}
    # r1: bar9 (grade 3) is judged but has no text, pub1 is pooled but unjudged
    assert rows["r1"] == {"qid": "r1", "pool_size": 4, "judged": 4, "judged_in_pool": 3, "relevant": 3,
                          "relevant_in_pool": 2, "grade3": 2, "grade3_in_pool": 1}
    assert rows["r3"]["pool_size"] == 0 and rows["r3"]["judged"] == 2
    summary = collection.coverage_summary()
    assert summary["judged_in_pool_share"] == round(6 / 9, 4)
    assert summary["requests_with_empty_pool"] == 1


def test_a_pool_naming_an_item_without_text_is_refused(collection):
    with pytest.raises(ValueError, match="1 pooled items have no text"):
        EvalCollection("bad", "judged", collection.requests, collection.items, {"r1": ["bar1", "ghost"]}, {})


def _lucene_bm25(query: str, items: dict[str, str], k1: float, b: float) -> dict[str, float]:
    """BM25, Lucene variant (Kamphuis et al., 2020), written out independently of bm25s."""
    tokens = {item: re.findall(r"\b\w\w+\b", text.lower()) for item, text in items.items()}
    average = sum(len(words) for words in tokens.values()) / len(tokens)
    document_frequency = Counter(word for words in tokens.values() for word in set(words))
    scores = {}
    for item, words in tokens.items():
        counts = Counter(words)
        score = 0.0
        for term in re.findall(r"\b\w\w+\b", query.lower()):
            if counts[term]:
                idf = math.log(1 + (len(tokens) - document_frequency[term] + 0.5) / (document_frequency[term] + 0.5))
                score += idf * counts[term] / (k1 * (1 - b + b * len(words) / average) + counts[term])
        scores[item] = score
    return scores


def test_bm25_scores_each_pool_with_collection_statistics(collection):
    run = BM25Ranker(k1=1.2, b=0.75, stemmer=None, stopwords=None).rank(collection, depth=200)
    assert set(run) == {"r1", "r2"}  # r3's pool is empty
    for qid in run:
        assert set(run[qid]) == set(collection.pool_of(qid))
        expected = _lucene_bm25(collection.requests[qid], collection.items, 1.2, 0.75)
        assert run[qid] == pytest.approx({item: expected[item] for item in collection.pool_of(qid)}, rel=1e-5)


def test_bm25_depth_and_stemming(collection):
    run = BM25Ranker().rank(collection, depth=2)
    assert all(len(scores) == 2 for scores in run.values())
    # "jazz" and "live" occur only in bar1 among r1's pool
    assert ranked(run["r1"])[0][0] == "bar1"
    # "bars" matches the items' "bar" only once stemmed
    plural = dataclasses.replace(collection, requests={**collection.requests, "r1": "bars"})
    stemmed = BM25Ranker().rank(plural, depth=200)["r1"]
    unstemmed = BM25Ranker(stemmer=None).rank(plural, depth=200)["r1"]
    assert all(stemmed[item] > 0 for item in ("bar1", "bar2", "bar3")) and stemmed["pub1"] == 0
    assert set(unstemmed.values()) == {0.0}


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T) / (np.linalg.norm(a, axis=-1, keepdims=True) * np.linalg.norm(b, axis=-1))


def test_dense_ranker_ranks_pools_by_cosine_and_caches_encodings(collection, models, tmp_path):
    from sentence_transformers import SentenceTransformer

    ranker = DenseRanker(str(models["biencoder"]), cache_dir=tmp_path)
    run = ranker.rank(collection, depth=200)
    assert ranker.counters == {"items": 7, "items_encoded": 7, "requests": 2, "requests_encoded": 2}

    model = SentenceTransformer(str(models["biencoder"]), device="cpu")
    for qid, scores in run.items():
        pool = collection.pool_of(qid)
        request = model.encode([collection.requests[qid]])
        items = model.encode([collection.items[item] for item in pool])
        assert scores == pytest.approx(dict(zip(pool, _cosine(request, items)[0].tolist())), abs=1e-5)

    again = DenseRanker(str(models["biencoder"]), cache_dir=tmp_path)
    assert again.rank(collection, depth=200) == run
    assert again.counters["items_encoded"] == 0 and again.counters["requests_encoded"] == 0


def test_a_different_model_does_not_reuse_cached_encodings(collection, models, tmp_path):
    DenseRanker(str(models["biencoder"]), cache_dir=tmp_path).rank(collection, depth=200)
    other = save_tiny_sentence_transformer(tmp_path / "other", seed=5)
    ranker = DenseRanker(str(other), cache_dir=tmp_path)
    ranker.rank(collection, depth=200)
    assert ranker.counters["items_encoded"] == 7


def test_bfloat16_rankers_agree_with_float32_and_cache_apart(collection, models, tmp_path):
    full = DenseRanker(str(models["biencoder"]), cache_dir=tmp_path)
    half = DenseRanker(str(models["biencoder"]), cache_dir=tmp_path, precision="bfloat16")
    exact, reduced = full.rank(collection, depth=200), half.rank(collection, depth=200)
    assert half.counters["items_encoded"] == 7  # float32 vectors are not reused for bfloat16
    for qid in exact:
        assert reduced[qid] != exact[qid]
        assert reduced[qid] == pytest.approx(exact[qid], abs=0.02)

    pairs = [(collection.requests["r1"], collection.items[item]) for item in ("bar1", "bar2", "pub1")]
    scores = {
        precision: CrossEncoderScorer(str(models["crossencoder"]), cache_dir=tmp_path, precision=precision).score(
            [request for request, _ in pairs], [item for _, item in pairs]
        )
        for precision in ("float32", "bfloat16")
    }
    assert scores["bfloat16"] != scores["float32"]
    assert scores["bfloat16"] == pytest.approx(scores["float32"], abs=0.02)


def test_peft_adapter_folder_ranks_like_the_unmerged_adapter(collection, models):
    from peft import PeftModel
    from sentence_transformers import SentenceTransformer

    run = DenseRanker(str(models["adapter"])).rank(collection, depth=200)
    base_run = DenseRanker(str(models["biencoder"])).rank(collection, depth=200)
    assert run["r1"] != pytest.approx(base_run["r1"], abs=1e-7)  # the adapter changes the encoder

    unmerged = SentenceTransformer(str(models["biencoder"]), device="cpu")
    unmerged[0].model = PeftModel.from_pretrained(unmerged[0].model, str(models["adapter"]))
    for qid, scores in run.items():
        pool = collection.pool_of(qid)
        request = unmerged.encode([collection.requests[qid]])
        items = unmerged.encode([collection.items[item] for item in pool])
        assert scores == pytest.approx(dict(zip(pool, _cosine(request, items)[0].tolist())), abs=1e-5)


def test_sentence_transformers_lora_folder_is_loaded_with_its_adapter(collection, models, tmp_path):
    from peft import LoraConfig, get_peft_model
    from sentence_transformers import SentenceTransformer

    # the layout sentence-transformers saves for a LoRA-wrapped encoder (the students' LoRA output)
    model = SentenceTransformer(str(models["biencoder"]), device="cpu")
    model[0].model = get_peft_model(
        model[0].model, LoraConfig(r=4, target_modules=["query", "value"], init_lora_weights=False)
    )
    model.save(str(tmp_path / "st-lora"), create_model_card=False)
    assert not (tmp_path / "st-lora" / "model.safetensors").exists()

    ranker = DenseRanker(str(tmp_path / "st-lora"))
    texts = [collection.items["bar1"], collection.requests["r1"]]
    assert ranker.encode_items(texts) == pytest.approx(model.encode(texts), abs=1e-5)
    base = DenseRanker(str(models["biencoder"]))
    assert ranker.encode_items(texts) != pytest.approx(base.encode_items(texts), abs=1e-5)


def test_a_student_adapter_is_refused_on_a_base_without_its_recorded_weights(models, tmp_path):
    from mint_distill.adapters import BaseModelMismatchError
    from mint_distill.errors import ModelUnavailableError
    from mint_distill.io import sha256_file

    student = shutil.copytree(models["adapter"], tmp_path / "student")
    trained_on = {"reference": str(models["biencoder"]), "weights_sha256": sha256_file(models["biencoder"] / "model.safetensors")}
    (student / "mint-student.json").write_text(json.dumps({"kind": "biencoder", "base_model": trained_on}))
    assert DenseRanker(str(student)).encode_items(["quiet bar"]).shape == (1, 32)

    config = json.loads((student / "adapter_config.json").read_text())
    # a run folder copied to a machine where the recorded base path holds other weights, or none
    config["base_model_name_or_path"] = str(save_tiny_sentence_transformer(tmp_path / "other", seed=5))
    (student / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(BaseModelMismatchError, match=trained_on["weights_sha256"]):
        DenseRanker(str(student))
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (student / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelUnavailableError, match="gone"):
        DenseRanker(str(student))


def test_cross_encoder_reranks_the_top_k_and_keeps_the_tail(collection, models, tmp_path):
    import torch
    from sentence_transformers import CrossEncoder

    first_stage = {"r1": {"bar2": 4.0, "pub1": 3.0, "bar1": 2.0, "bar3": 1.0}, "r2": {"fish1": 1.0}}
    scorer = CrossEncoderScorer(str(models["crossencoder"]), cache_dir=tmp_path)
    run = Reranker(scorer, first_stage, top_k=2).rank(collection, depth=3)
    assert scorer.counters == {"pairs": 3, "pairs_scored": 3}

    model = CrossEncoder(str(models["crossencoder"]), device="cpu")
    # the folder records sentence-transformers' default sigmoid; reranking scores are the logits
    # (the scale fusion weights are chosen on), whatever a folder records
    assert isinstance(model.activation_fn, torch.nn.Sigmoid)
    pairs = [(collection.requests["r1"], collection.items[item]) for item in ("bar2", "pub1")]
    direct = model.predict(pairs, activation_fn=torch.nn.Identity())
    head = ranked(dict(zip(("bar2", "pub1"), direct.tolist())))
    order = [item for item, _ in ranked(run["r1"])]
    assert order == [item for item, _ in head] + ["bar1"]  # depth 3: bar3 is cut
    assert run["r1"]["bar2"] == pytest.approx(float(direct[0]), abs=1e-6)
    assert list(run["r2"]) == ["fish1"]

    cached = CrossEncoderScorer(str(models["crossencoder"]), cache_dir=tmp_path)
    assert Reranker(cached, first_stage, top_k=2).rank(collection, depth=3) == run
    assert cached.counters["pairs_scored"] == 0


def test_fused_reranking_interpolates_z_scores_of_both_stages(collection, models, tmp_path):
    first_stage = {"r1": {"bar2": 4.0, "pub1": 3.0, "bar1": 1.0, "bar3": 0.5}}
    scorer = CrossEncoderScorer(str(models["crossencoder"]), cache_dir=tmp_path)
    alone = Reranker(scorer, first_stage, top_k=3).rank(collection, depth=4)["r1"]
    head = ["bar2", "pub1", "bar1"]
    cross = np.array([alone[item] for item in head])
    first = np.array([first_stage["r1"][item] for item in head])

    def z(values):
        return (values - values.mean()) / values.std()

    for weight in (0.0, 0.3, 1.0):
        fused = Reranker(scorer, first_stage, top_k=3, fusion_weight=weight).rank(collection, depth=4)["r1"]
        expected = weight * z(cross) + (1 - weight) * z(first)
        assert [fused[item] for item in head] == pytest.approx(expected.tolist(), abs=1e-6)
        assert min(fused[item] for item in head) > fused["bar3"]  # the tail stays below the head
    weight_zero = Reranker(scorer, first_stage, top_k=3, fusion_weight=0.0).rank(collection, depth=4)["r1"]
    assert [item for item, _ in ranked(weight_zero)] == ["bar2", "pub1", "bar1", "bar3"]


def test_fusion_weight_applies_to_rerankers_only():
    with pytest.raises(ValueError, match="fusion_weight"):
        RankerSpec(name="bm25", kind="bm25", fusion_weight=0.5)
    spec = RankerSpec(name="ce", kind="crossencoder", model="m", first_stage="bm25", fusion_weight=0.5)
    assert spec.fusion_weight == 0.5


def test_upr_reranks_by_request_likelihood_given_the_item(collection, tmp_path):
    from fixtures.tiny_lm import save_tiny_llama

    from mint_distill.evaluation import LikelihoodPairScorer
    from mint_distill.scoring import LikelihoodScorer

    model = str(save_tiny_llama(tmp_path / "llama"))
    first_stage = {"r1": {"bar1": 3.0, "bar2": 2.0, "bar3": 1.0}}
    scorer = LikelihoodPairScorer(model, batch_size=2, cache_dir=tmp_path / "cache")
    run = Reranker(scorer, first_stage, top_k=3).rank(collection, depth=200)

    reference = LikelihoodScorer(model, batch_size=2)
    items = ["bar1", "bar2", "bar3"]
    expected = reference.score([collection.items[i] for i in items], [collection.requests["r1"]] * 3)
    assert run["r1"] == pytest.approx(dict(zip(items, expected)), abs=1e-4)
    assert scorer.counters == {"pairs": 3, "pairs_scored": 3}


def test_bench_reports_throughput_per_ranker(models):
    from mint_distill.evaluation.bench import bench_evaluation, synthetic_collection

    collection = synthetic_collection(requests=3, pool_size=5)
    assert len(collection.items) == 15 and all(len(text.split()) > 80 for text in collection.items.values())
    report = bench_evaluation(
        [
            RankerSpec(name="bm25", kind="bm25"),
            RankerSpec(name="tiny", kind="dense", model=str(models["biencoder"])),
            RankerSpec(name="rerank", kind="crossencoder", model=str(models["crossencoder"]), first_stage="tiny", top_k=2),
            RankerSpec(name="missing", kind="dense", model="embedded:no-such-model"),
        ],
        collection,
    )
    assert report["collection"] == {"name": "synthetic", "requests": 3, "pooled_items": 15}
    assert report["rankers"]["tiny"]["items_per_second"] > 0
    assert report["rankers"]["bm25"]["requests_per_second"] > 0
    assert report["rankers"]["rerank"]["pairs"] == 6
    assert "not an embedded model" in report["rankers"]["missing"]["unavailable"]


def test_each_ranker_is_freed_before_the_next_loads(collection, models, tmp_path, monkeypatch):
    import weakref

    from mint_distill.evaluation import systems

    make_ranker = systems.make_ranker
    built, alive_at_build = [], []

    def tracking_make_ranker(*args, **kwargs):
        alive_at_build.append([ref() is not None for ref in built])
        ranker = make_ranker(*args, **kwargs)
        built.append(weakref.ref(ranker))
        return ranker

    monkeypatch.setattr(systems, "make_ranker", tracking_make_ranker)
    specs = [
        RankerSpec(name="tiny", kind="dense", model=str(models["biencoder"])),
        RankerSpec(name="adapter", kind="dense", model=str(models["adapter"])),
        RankerSpec(name="rerank", kind="crossencoder", model=str(models["crossencoder"]), first_stage="tiny", top_k=2),
    ]
    runs, _ = systems.produce_runs(collection, specs, tmp_path)
    assert set(runs) == {"tiny", "adapter", "rerank"}
    assert alive_at_build == [[], [False], [False, False]]
    assert all(ref() is None for ref in built)

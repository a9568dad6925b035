"""CrEnc-Mint on the toy world: a new scoring head on a tiny encoder, listwise and pointwise."""

from __future__ import annotations

import json
import math

import pytest
import torch
from fixtures.students.toy import save_tiny_encoder, write_toy_world

from mint_distill.students import load_crossencoder, rerank, train_crossencoder
from mint_distill.students.data import load_dev_rankings, load_negatives, load_student_data
from mint_distill.students.dev_reranking import DevReranking
from mint_distill.students.negatives import bm25_rankings, mine_negatives

NEGATIVES = 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("crossencoder")
    paths = write_toy_world(root / "world")
    data = load_student_data(paths["pairs"], paths["requests"], paths["items"])
    pairs = data.train + data.dev
    rankings = bm25_rankings(
        {p.request_id: data.requests[p.request_id] for p in pairs}, data.items, depth=32
    )
    records = mine_negatives(
        rankings, pairs, data.shown, window=(4, 32), per_positive=NEGATIVES, seed=0
    )
    paths["negatives"] = root / "negatives.jsonl"
    paths["negatives"].write_text("".join(json.dumps(r) + "\n" for r in records))
    paths["dev_rankings"] = root / "dev_rankings.jsonl"
    paths["dev_rankings"].write_text(
        "".join(
            json.dumps({"request_id": r, "ranking": rankings[r], "scores": [-rank for rank in range(len(rankings[r]))]})
            + "\n"
            for r in dict.fromkeys(p.request_id for p in data.dev)
        )
    )
    return {"paths": paths, "encoder": save_tiny_encoder(root / "encoder", dropout=0.0)}


def _spec(world, **training) -> dict:
    settings = {
        "epochs": 3,
        "learning_rate": 3e-3,
        "batch_size": 4,
        "warmup_ratio": 0.0,
        "eval_every": 0,
        "checkpoint_every": 100,
        "early_stopping_patience": None,
        "seed": 0,
        **training,
    }
    return {"model": str(world["encoder"]), "max_length": 48, "rerank_top_k": 20, "training": settings}


def _objective(model, data, groups, loss: str) -> float:
    """The training objective over `groups`, computed from `CrossEncoder.predict` logits by hand."""
    values = []
    for group in groups:
        texts = [data.items[i] for i in (group.item_id, *group.negatives)]
        pairs = [(data.requests[group.request_id], text) for text in texts]
        logits = [float(x) for x in model.predict(pairs, activation_fn=torch.nn.Identity())]
        if loss == "listwise":
            values.append(math.log(sum(math.exp(x) for x in logits)) - logits[0])
        else:
            labels = [1.0] + [0.0] * (len(logits) - 1)
            values += [
                math.log1p(math.exp(-x)) if y else math.log1p(math.exp(x))
                for x, y in zip(logits, labels)
            ]
    return sum(values) / len(values)


@pytest.mark.parametrize("loss", ["listwise", "bce"])
def test_training_lowers_the_loss_on_the_groups_it_trains_on(world, tmp_path, loss):
    from mint_distill.students import CrossEncoderTask, LoopSettings, train_loop

    data = load_student_data(
        world["paths"]["pairs"], world["paths"]["requests"], world["paths"]["items"]
    )
    groups = load_negatives(world["paths"]["negatives"], data)
    train = groups["train"][:4]
    torch.manual_seed(0)
    model = load_crossencoder(str(world["encoder"]), max_length=48, device="cpu")
    before = _objective(model, data, train, loss)
    task = CrossEncoderTask(model, data, train, groups["dev"][:2], loss=loss, batch_size=4)
    train_loop(
        task,
        LoopSettings(epochs=25, learning_rate=3e-3, batch_size=4, warmup_ratio=0.0, eval_every=0),
        tmp_path,
    )
    after = _objective(model, data, train, loss)
    # listwise: from chance (ln 5) to well below it; bce: at least down to predicting the base rate
    assert after < (0.5 * before if loss == "listwise" else before - 0.15), (before, after)


def test_select_by_fused_mrr_keeps_the_checkpoint_that_serves_best_fused(world, tmp_path):
    spec = _spec(world, epochs=1, eval_every=2, select_by="fused_mrr@10")
    summary = train_crossencoder(spec, **world["paths"], out_dir=tmp_path / "out", seed=0)
    log = (tmp_path / "out" / "log.jsonl").read_text().splitlines()
    evaluations = [record for record in map(json.loads, log) if "dev" in record]
    assert len(evaluations) > 2
    best = max(evaluations, key=lambda record: record["dev"]["fused_mrr@10"])  # the first of a tie
    assert summary["best_step"] == best["step"]
    assert summary["dev_fused_mrr@10"] == round(best["dev"]["fused_mrr@10"], 4)


def test_train_crossencoder_writes_a_cross_encoder_folder_and_card(world, tmp_path):
    from sentence_transformers import CrossEncoder

    summary = train_crossencoder(
        _spec(world, epochs=1), **world["paths"], out_dir=tmp_path / "out", seed=0
    )
    data = load_student_data(
        world["paths"]["pairs"], world["paths"]["requests"], world["paths"]["items"]
    )
    assert summary["train_groups"] == len(data.train) and summary["dev_groups"] == len(data.dev)
    assert summary["negatives_per_group"] == NEGATIVES
    assert {"dev_loss", "dev_mrr@10", "dev_recall@10"} <= set(summary)
    assert not any(key.endswith("_before") for key in summary)  # a new head is not evaluated untrained
    # the reranking measures come with the first stage's own order on the same candidates
    reranking = DevReranking.from_rankings(
        load_dev_rankings(world["paths"]["dev_rankings"], data), data, top_k=20
    )
    first_stage = reranking.first_stage_measures()
    assert summary["dev_reranked_requests"] == len(reranking.candidates) > 0
    assert summary["dev_mrr@10_first_stage"] == round(first_stage["mrr@10"], 4)
    model = CrossEncoder(str(tmp_path / "out" / "model"), device="cpu")
    assert model.num_labels == 1 and model.max_length == 48
    # a plain load predicts the logits the fusion weight was chosen on, not their sigmoid
    assert isinstance(model.activation_fn, torch.nn.Identity)
    info = json.loads((tmp_path / "out" / "model" / "mint-student.json").read_text())
    assert info["kind"] == "crossencoder" and info["loss"] == "listwise"
    assert info["rerank_top_k"] == 20  # the candidates the weight was chosen over
    assert info["training"]["steps"] == summary["steps"]
    assert info["dev"]["first_stage"] == first_stage
    # the fusion weight is the one of the kept checkpoint's dev evaluation
    assert info["fusion_weight"] == summary["fusion_weight"] == summary["dev_fusion_weight"]
    assert summary["dev_fused_mrr@10"] >= max(summary["dev_mrr@10"], summary["dev_mrr@10_first_stage"]) - 1e-4
    card = (tmp_path / "out" / "model" / "README.md").read_text()
    assert "pipeline_tag: text-ranking" in card and "| measure | the bi-encoder's own order | kept step |" in card
    assert "candidates])  # logits" in card and "z(these logits)" in card
    assert (tmp_path / "out" / "loss.png").is_file()


def test_without_a_rerankable_dev_request_the_cross_encoder_is_not_fused_away(world, tmp_path, caplog):
    data = load_student_data(world["paths"]["pairs"], world["paths"]["requests"], world["paths"]["items"])
    kept = data.positives("dev")
    weak = tmp_path / "weak_first_stage.jsonl"  # every dev request's kept items ranked below its top 2
    with weak.open("w") as out:
        for record in map(json.loads, world["paths"]["dev_rankings"].read_text().splitlines()):
            ranking = [i for i in record["ranking"] if i not in kept[record["request_id"]]] + kept[record["request_id"]]
            out.write(json.dumps({**record, "ranking": ranking}) + "\n")
    paths = {**world["paths"], "dev_rankings": weak}
    summary = train_crossencoder({**_spec(world, epochs=1), "rerank_top_k": 2}, **paths, out_dir=tmp_path / "out", seed=0)
    info = json.loads((tmp_path / "out" / "model" / "mint-student.json").read_text())
    assert summary["dev_reranked_requests"] == 0 and summary["dev_requests_without_kept_items_in_top_k"] > 0
    # weight 0 would rank by the first stage alone under the cross-encoder's name
    assert info["fusion_weight"] is None and summary["fusion_weight"] is None
    assert "fusion weight cannot be chosen on dev" in caplog.text


def test_new_head_has_one_logit_and_depends_on_the_seed(world):
    from accelerate.utils import set_seed

    set_seed(0)
    first = load_crossencoder(str(world["encoder"]), max_length=48, device="cpu")
    set_seed(1)
    second = load_crossencoder(str(world["encoder"]), max_length=48, device="cpu")
    assert first.num_labels == 1
    head = [p for n, p in first.named_parameters() if "classifier" in n]
    other = [p for n, p in second.named_parameters() if "classifier" in n]
    assert head and not all(torch.equal(a, b) for a, b in zip(head, other))


def test_rerank_orders_candidates_by_the_models_logits(world):
    model = load_crossencoder(str(world["encoder"]), max_length=48, device="cpu")
    candidates = {
        "a": "alpha jazz saxophone place",
        "b": "bravo sushi rice place",
        "c": "charlie park trees place",
    }
    ranked = rerank(model, "we love jazz", candidates)
    logits = model.predict(
        [("we love jazz", text) for text in candidates.values()], activation_fn=torch.nn.Identity()
    )
    expected = sorted(zip(candidates, (float(x) for x in logits)), key=lambda pair: -pair[1])
    assert [item for item, _ in ranked] == [item for item, _ in expected]
    assert [score for _, score in ranked] == pytest.approx(
        [score for _, score in expected], abs=1e-5
    )
    assert rerank(model, "we love jazz", list(candidates.items()), top_k=2) == ranked[:2]
    assert rerank(model, "we love jazz", {}) == []

"""CrEnc-Mint on the toy world: a new scoring head on a tiny encoder, listwise and pointwise."""

from __future__ import annotations

import json
import math

import pytest
import torch
from fixtures.students.toy import save_tiny_encoder, write_toy_negatives, write_toy_world

from mint_distill.students import load_crossencoder, rerank, train_crossencoder
from mint_distill.students.data import load_dev_rankings, load_negatives, load_student_data
from mint_distill.students.dev_reranking import DevReranking

NEGATIVES = 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("crossencoder")
    paths = write_toy_negatives(write_toy_world(root / "world"), root, per_positive=NEGATIVES)
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


LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"]}


def _lora_spec(world, **training) -> dict:
    return {**_spec(world, **training), "finetune": "lora", "lora": LORA}


def _dev_pairs(world) -> list[tuple[str, str]]:
    data = load_student_data(world["paths"]["pairs"], world["paths"]["requests"], world["paths"]["items"])
    groups = load_negatives(world["paths"]["negatives"], data)["dev"]
    return [(data.requests[g.request_id], data.items[item]) for g in groups for item in (g.item_id, *g.negatives)]


@pytest.fixture(scope="module")
def lora_student(world, tmp_path_factory):
    """A LoRA cross-encoder trained by `train_crossencoder` on the toy world: (summary, its folder)."""
    out = tmp_path_factory.mktemp("lora-crossencoder") / "out"
    summary = train_crossencoder(_lora_spec(world, epochs=1, learning_rate=1e-2), **world["paths"], out_dir=out, seed=0)
    return summary, out / "model"


def test_lora_trains_only_the_adapter_and_the_head_and_reloads_to_the_same_scores(world, tmp_path):
    from sentence_transformers import CrossEncoder

    from mint_distill.adapters.loading import load_adapted_model
    from mint_distill.recipe.sections.base import LoraSpec
    from mint_distill.students import (
        CrossEncoderTask,
        LoopSettings,
        add_crossencoder_lora,
        train_loop,
    )
    from mint_distill.students.crossencoder import predict_logits

    data = load_student_data(world["paths"]["pairs"], world["paths"]["requests"], world["paths"]["items"])
    groups = load_negatives(world["paths"]["negatives"], data)
    torch.manual_seed(0)
    model = load_crossencoder(str(world["encoder"]), max_length=48, device="cpu")
    add_crossencoder_lora(model, LoraSpec(**LORA))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name or ".classifier.modules_to_save." in name for name in trainable), trainable
    assert {n for n in trainable if "classifier" in n} == {
        f"0.model.base_model.model.classifier.modules_to_save.default.{w}" for w in ("weight", "bias")
    }
    frozen = {name: p.detach().clone() for name, p in model.named_parameters() if not p.requires_grad}
    task = CrossEncoderTask(model, data, groups["train"], groups["dev"], batch_size=4)
    settings = LoopSettings(epochs=3, learning_rate=1e-2, batch_size=4, warmup_ratio=0.0, eval_every=0, seed=0)
    result = train_loop(task, settings, tmp_path / "out")
    assert result.state.best_step == result.state.step  # the in-memory model is the one kept
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), name  # the encoder's own weights never move

    folder = result.best_dir
    assert (folder / "adapter_config.json").is_file() and (folder / "adapter_model.safetensors").is_file()
    assert not (folder / "model.safetensors").exists()
    pairs = _dev_pairs(world)
    model.eval().to("cpu")
    expected = predict_logits(model, pairs)
    for reloaded in (
        CrossEncoder(str(folder), device="cpu"),
        load_crossencoder(str(folder), max_length=48, device="cpu"),
        load_adapted_model(folder, kind="cross-encoder", device="cpu"),
    ):
        assert predict_logits(reloaded, pairs) == pytest.approx(expected, abs=1e-5)
    # the trained LoRA update moves the scores: the same model with it zeroed (head kept) scores otherwise
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.zero_()
    moved = max(abs(a - b) for a, b in zip(predict_logits(model, pairs), expected))
    assert moved > 1e-4, moved


def test_train_crossencoder_with_lora_writes_an_adapter_folder_and_records_it(world, lora_student):
    from safetensors.torch import load_file

    from mint_distill.io import sha256_file
    from mint_distill.students.crossencoder import predict_logits

    summary, folder = lora_student
    assert summary["best_step"] > 0, summary
    assert (folder / "adapter_config.json").is_file() and not (folder / "model.safetensors").exists()
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["modules_to_save"] == ["classifier"] and config["r"] == 4
    weights = load_file(str(folder / "adapter_model.safetensors"))
    assert weights and all("lora_" in name or ".classifier." in name for name in weights), list(weights)
    assert any(".classifier." in name for name in weights) and any("lora_B" in name for name in weights)
    info = json.loads((folder / "mint-student.json").read_text())
    assert info["kind"] == "crossencoder" and info["finetune"] == "lora"
    assert info["lora"] == {**LORA, "target_modules": ["query", "value"]}
    assert info["base_model"]["weights_sha256"] == sha256_file(world["encoder"] / "model.safetensors")
    card = (folder / "README.md").read_text()
    assert "- lora" in card and "The folder holds a PEFT adapter and the scoring head" in card
    pairs = _dev_pairs(world)
    base = load_crossencoder(str(world["encoder"]), max_length=48, device="cpu")
    trained = load_crossencoder(str(folder), max_length=48, device="cpu")
    assert max(abs(a - b) for a, b in zip(predict_logits(trained, pairs), predict_logits(base, pairs))) > 1e-3


def test_lora_resume_after_interruption_matches_an_uninterrupted_run(world, tmp_path):
    from safetensors.torch import load_file

    spec = _lora_spec(world, epochs=1.3, eval_every=4, checkpoint_every=3)
    spec["lora"] = {**LORA, "dropout": 0.1}  # dropout draws random numbers a resume must replay
    uninterrupted = train_crossencoder(spec, **world["paths"], out_dir=tmp_path / "a", seed=0)

    class Killed(Exception):
        pass

    def kill_at_step_8(state):
        if state.step == 8:  # checkpoints at steps 3 and 6; step 8's log line and dev evaluation are lost
            raise Killed

    with pytest.raises(Killed):
        train_crossencoder(spec, **world["paths"], out_dir=tmp_path / "b", seed=0, callbacks=[kill_at_step_8])
    assert (tmp_path / "b" / ".checkpoints" / "step-000006").is_dir()
    resumed = train_crossencoder(spec, **world["paths"], out_dir=tmp_path / "b", seed=0, resume=True)

    assert resumed["resumed_from_step"] == 6
    assert resumed["steps"] == uninterrupted["steps"] > 8
    records = [
        [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        for run in ("a", "b")
    ]
    assert records[0] == records[1]
    first, second = (load_file(str(tmp_path / run / "model" / "adapter_model.safetensors")) for run in ("a", "b"))
    assert first.keys() == second.keys() and any("lora_B" in name for name in first)
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_the_evaluation_ranker_and_recommend_load_the_lora_folder_on_its_recorded_base(world, lora_student, tmp_path):
    import shutil

    from mint_distill.adapters import BaseModelMismatchError
    from mint_distill.adapters.loading import load_adapted_model
    from mint_distill.evaluation import CrossEncoderScorer
    from mint_distill.recommend import open_reranker, recorded_reranking
    from mint_distill.students.crossencoder import predict_logits

    summary, folder = lora_student
    pairs = _dev_pairs(world)[:12]
    requests, items = [request for request, _ in pairs], [item for _, item in pairs]
    expected = predict_logits(load_adapted_model(folder, kind="cross-encoder", device="cpu"), pairs)
    scorer = CrossEncoderScorer(str(folder), cache_dir=tmp_path / "cache", device="cpu")
    assert scorer.score(requests, items) == pytest.approx(expected, abs=1e-5)
    assert predict_logits(open_reranker(str(folder)), pairs) == pytest.approx(expected, abs=1e-4)  # merged
    assert recorded_reranking(str(folder)) == (summary["fusion_weight"], 20)

    # a run folder copied to a machine where the recorded base path holds other weights
    student = shutil.copytree(folder, tmp_path / "student")
    config = json.loads((student / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(save_tiny_encoder(tmp_path / "other", seed=5, dropout=0.0))
    (student / "adapter_config.json").write_text(json.dumps(config))
    trained_on = json.loads((folder / "mint-student.json").read_text())["base_model"]["weights_sha256"]
    with pytest.raises(BaseModelMismatchError, match=trained_on):
        CrossEncoderScorer(str(student), cache_dir=tmp_path / "cache", device="cpu")
    with pytest.raises(BaseModelMismatchError, match=trained_on):
        open_reranker(str(student))

"""BiEnc-Mint training on a toy world with a tiny random BERT: learning, outputs, LoRA, resume."""

from __future__ import annotations

import json

import pytest
import torch
from fixtures.students.toy import save_tiny_encoder, tiny_spec, write_toy_world

from mint_distill.students import train_biencoder
from mint_distill.students.data import load_student_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("biencoder")
    return {
        "paths": write_toy_world(root / "world"),
        "encoder": save_tiny_encoder(root / "encoder"),
        "normalized": save_tiny_encoder(root / "normalized", normalize=True, dropout=0.0),
    }


def _inputs(world) -> dict:
    return {key: world["paths"][key] for key in ("pairs", "requests", "items")}


def _topic_batch(world) -> tuple[list[str], list[str]]:
    """One kept train pair per topic (item ids are `<topic>-<n>`): requests and their positives,
    so every other positive in the batch is a true negative, for an independently computed loss."""
    data = load_student_data(**_inputs(world))
    by_topic = {}
    for pair in data.train:
        by_topic.setdefault(pair.item_id.split("-")[0], pair)
    return [data.requests[p.request_id] for p in by_topic.values()], [
        data.items[p.item_id] for p in by_topic.values()
    ]


def _mnrl(model, queries, documents) -> float:
    """sentence-transformers' own MultipleNegativesRankingLoss on one batch, in eval mode."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    model.eval()
    with torch.no_grad():
        features = [model.preprocess(queries), model.preprocess(documents)]
        return MultipleNegativesRankingLoss(model)(features, labels=None).item()


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_mnrl_training_lowers_the_loss_and_writes_a_loadable_model(world, tmp_path):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "out"
    summary = train_biencoder(
        tiny_spec(world["encoder"], epochs=4, eval_every=10, checkpoint_every=100),
        **_inputs(world),
        out_dir=out,
        seed=0,
    )
    queries, documents = _topic_batch(world)
    before = _mnrl(SentenceTransformer(str(world["encoder"]), device="cpu"), queries, documents)
    trained = SentenceTransformer(str(out / "model"), device="cpu")
    after = _mnrl(trained, queries, documents)
    assert after < 0.5 * before, (before, after)

    kept = [p for p in _records(world["paths"]["pairs"]) if p["kept"]]
    assert summary["train_pairs"] == sum(p["split"] == "train" for p in kept)
    assert summary["dev_pairs"] == sum(p["split"] == "dev" for p in kept)
    assert summary["dev_mrr@10"] > summary["dev_mrr@10_before"]

    log = _records(out / "log.jsonl")
    steps = [r["step"] for r in log if "loss" in r]
    assert steps == list(range(1, summary["steps"] + 1))
    assert [r["step"] for r in log if "dev" in r] == [0, 10, 20, 30, summary["steps"]]
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = json.loads((out / "model" / "mint-student.json").read_text())
    assert info["training"]["best_step"] == summary["best_step"]
    assert info["base_model"]["weights_sha256"]
    card = (out / "model" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: sentence-transformers") and "## Dev measures" in card
    assert not (out / ".checkpoints").exists() or not list((out / ".checkpoints").glob("step-*"))


def test_a_batch_larger_than_the_training_pairs_is_an_error_naming_the_key(world, tmp_path):
    from mint_distill.errors import MintError

    spec = tiny_spec(world["encoder"], max_train_pairs=3)
    with pytest.raises(MintError, match=r"3 training examples cannot fill one batch of 4; lower students\.biencoder\.training\.batch_size \(or raise students\.biencoder\.training\.max_train_pairs"):
        train_biencoder(spec, **_inputs(world), out_dir=tmp_path / "out", seed=0)


def test_triplet_loss_lowers_its_hinge_on_cross_topic_triplets(world, tmp_path):
    from sentence_transformers import SentenceTransformer

    spec = tiny_spec(world["normalized"], epochs=5, eval_every=0, learning_rate=5e-3)
    spec.update(loss="triplet", triplet_margin=0.5)
    train_biencoder(spec, **_inputs(world), out_dir=tmp_path / "out", seed=0)
    queries, documents = _topic_batch(world)
    negatives = documents[1:] + documents[:1]  # another request's positive: another topic

    def hinge(model) -> float:
        q, p, n = (
            model.encode(texts, convert_to_tensor=True) for texts in (queries, documents, negatives)
        )
        return torch.relu((q - p).norm(dim=1) - (q - n).norm(dim=1) + 0.5).mean().item()

    before = hinge(SentenceTransformer(str(world["normalized"]), device="cpu"))
    after = hinge(SentenceTransformer(str(tmp_path / "out" / "model"), device="cpu"))
    assert after < 0.5 * before, (before, after)


def test_symmetric_mnrl_averages_both_directions_softmaxes():
    import torch.nn.functional as F

    from mint_distill.students.losses import mnrl_loss

    generator = torch.Generator().manual_seed(0)
    queries, positives, negatives = (torch.randn(4, 8, generator=generator) for _ in range(3))
    cosine = F.normalize(queries, dim=1) @ F.normalize(torch.cat([positives, negatives]), dim=1).T
    own = torch.arange(4)
    request_to_item = F.cross_entropy(20.0 * cosine, own)  # over positives and hard negatives
    item_to_request = F.cross_entropy(20.0 * cosine[:, :4].T, own)  # each positive among requests

    forward = mnrl_loss(queries, [positives, negatives], scale=20.0, gather=False)
    symmetric = mnrl_loss(queries, [positives, negatives], scale=20.0, gather=False, symmetric=True)
    assert torch.allclose(forward, request_to_item)
    assert torch.allclose(symmetric, (request_to_item + item_to_request) / 2)


def test_symmetric_mnrl_teaches_items_to_find_their_requests_beyond_plain_mnrl(world, tmp_path):
    from sentence_transformers import SentenceTransformer

    def item_to_request_loss(loss: str) -> float:
        spec = tiny_spec(world["encoder"], epochs=4, eval_every=0)
        spec.update(loss=loss)
        train_biencoder(spec, **_inputs(world), out_dir=tmp_path / loss, seed=0)
        model = SentenceTransformer(str(tmp_path / loss / "model"), device="cpu")
        queries, documents = _topic_batch(world)
        return _mnrl(model, documents, queries)  # each item among the requests

    plain, symmetric = item_to_request_loss("mnrl"), item_to_request_loss("mnrl_symmetric")
    assert symmetric < 0.5 * plain, (plain, symmetric)


# bf16: the trained model in memory must compute as its saved copy does, not in the training autocast.
@pytest.mark.parametrize("mixed_precision", ["no", "bf16"])
def test_lora_adapter_saves_alone_and_reloads_to_identical_embeddings(world, tmp_path, mixed_precision):
    from peft import PeftModel
    from sentence_transformers import SentenceTransformer

    from mint_distill.recipe.sections.base import LoraSpec
    from mint_distill.students import (
        BiEncoderTask,
        LoopSettings,
        add_lora,
        load_biencoder,
        train_loop,
    )

    data = load_student_data(**_inputs(world))
    torch.manual_seed(0)
    model = load_biencoder(str(world["encoder"]), max_seq_length=32, device="cpu")
    add_lora(model, LoraSpec(r=4, alpha=8, dropout=0.0, target_modules=["query", "value"]))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 0 < trainable < 0.1 * sum(p.numel() for p in model.parameters())
    task = BiEncoderTask(model, data, data.train, batch_size=4, dev_catalog=None)
    settings = LoopSettings(
        epochs=3,
        learning_rate=1e-2,
        batch_size=4,
        warmup_ratio=0.0,
        eval_every=0,
        seed=0,
        mixed_precision=mixed_precision,
    )
    result = train_loop(task, settings, tmp_path / "out")
    assert result.state.best_step == result.state.step  # the in-memory model is the one kept

    folder = result.best_dir
    assert (folder / "adapter_config.json").is_file() and (
        folder / "adapter_model.safetensors"
    ).is_file()
    assert not (folder / "model.safetensors").exists()
    texts = [data.requests[p.request_id] for p in data.dev] + [
        data.items[p.item_id] for p in data.dev
    ]
    model.eval().to("cpu")  # trained on a GPU where there is one; compared here on the CPU
    expected = model.encode(texts, convert_to_tensor=True)
    reloaded = SentenceTransformer(str(folder), device="cpu").encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(reloaded, expected, rtol=0, atol=1e-6)

    base = SentenceTransformer(str(world["encoder"]), device="cpu")
    base_embeddings = base.encode(texts, convert_to_tensor=True)
    assert (base_embeddings - expected).abs().max() > 1e-3  # the adapter changes the model
    base[0].model = PeftModel.from_pretrained(
        base[0].model, str(folder)
    )  # peft's own loader agrees
    torch.testing.assert_close(
        base.encode(texts, convert_to_tensor=True), expected, rtol=0, atol=1e-6
    )


def test_resume_after_interruption_matches_an_uninterrupted_run(world, tmp_path):
    from safetensors.torch import load_file

    spec = tiny_spec(world["encoder"], epochs=1.3, eval_every=4, checkpoint_every=3)
    uninterrupted = train_biencoder(spec, **_inputs(world), out_dir=tmp_path / "a", seed=0)

    class Killed(Exception):
        pass

    def kill_at_step_8(state):
        if (
            state.step == 8
        ):  # checkpoints at steps 3 and 6; step 8's log line and dev evaluation are lost
            raise Killed

    with pytest.raises(Killed):
        train_biencoder(
            spec, **_inputs(world), out_dir=tmp_path / "b", seed=0, callbacks=[kill_at_step_8]
        )
    assert (tmp_path / "b" / ".checkpoints" / "step-000006").is_dir()
    resumed = train_biencoder(spec, **_inputs(world), out_dir=tmp_path / "b", seed=0, resume=True)

    assert resumed["resumed_from_step"] == 6
    assert resumed["steps"] == uninterrupted["steps"] > 8
    strip = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]
    assert strip(_records(tmp_path / "b" / "log.jsonl")) == strip(
        _records(tmp_path / "a" / "log.jsonl")
    )
    first, second = (
        load_file(str(tmp_path / run / "model" / "model.safetensors")) for run in ("a", "b")
    )
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_bm25_hard_negatives_are_never_shown_items_and_join_the_loss(world, tmp_path, monkeypatch):
    from mint_distill.recipe.sections.students import BiEncoderSpec
    from mint_distill.students.biencoder import BiEncoderTask, bm25_hard_negatives

    spec = tiny_spec(world["encoder"], epochs=0.5, eval_every=0)
    spec["hard_negatives"] = {"count": 2, "rank_start": 2, "rank_end": 12}
    data = load_student_data(**_inputs(world))
    negatives = bm25_hard_negatives(data, data.train, BiEncoderSpec.model_validate(spec), seed=0)
    for pair in data.train:
        assert len(negatives[pair]) == 2
        assert not set(negatives[pair]) & data.shown[pair.request_id]
    task = BiEncoderTask(None, data, data.train, hard_negatives=negatives)
    assert len(task.columns(data.train[:4])) == 4  # requests, positives, two hard negatives
    training_columns = []
    real_loss = BiEncoderTask.loss

    def spying_loss(self, wrapped, indices, gather):
        training_columns.append(len(self.columns([self.examples[i] for i in indices])))
        return real_loss(self, wrapped, indices, gather)

    monkeypatch.setattr(BiEncoderTask, "loss", spying_loss)
    summary = train_biencoder(spec, **_inputs(world), out_dir=tmp_path / "out", seed=0)
    assert summary["steps"] >= 1 and (tmp_path / "out" / "model" / "model.safetensors").is_file()
    assert training_columns and set(training_columns) == {4}  # every training batch ranks them


@pytest.mark.parametrize("grouping", ["none", "city"])
def test_city_grouping_fills_each_training_batch_from_one_city(
    world, tmp_path, grouping, monkeypatch
):
    from mint_distill.students.biencoder import BiEncoderTask

    paths = dict(_inputs(world))
    north = {"jazz", "sushi", "coffee", "pizza"}
    items = _records(paths["items"])
    for item in items:
        item["city"] = "Northville" if item["item_id"].split("-")[0] in north else "Southville"
    paths["items"] = tmp_path / "items.jsonl"
    paths["items"].write_text("".join(json.dumps(r) + "\n" for r in items))
    city = {item["item_id"]: item["city"] for item in items}

    seen_batches = []
    real_loss = BiEncoderTask.loss

    def spying_loss(self, wrapped, indices, gather):
        seen_batches.append({city[self.examples[i].item_id] for i in indices})
        return real_loss(self, wrapped, indices, gather)

    monkeypatch.setattr(BiEncoderTask, "loss", spying_loss)
    spec = tiny_spec(world["encoder"], epochs=2, eval_every=0)
    spec["batch_grouping"] = grouping
    summary = train_biencoder(spec, **paths, out_dir=tmp_path / "out", seed=0)

    single_city = sum(len(cities) == 1 for cities in seen_batches)
    assert len(seen_batches) == summary["steps"] >= 16  # 40 train pairs, batches of 4, 2 epochs
    if grouping == "city":
        # what the two cities leave over is batched mixed (here a batch an epoch at most)
        assert single_city >= len(seen_batches) - 2
    else:
        assert single_city < len(seen_batches) / 2
    info = json.loads((tmp_path / "out" / "model" / "mint-student.json").read_text())
    assert info["batch_grouping"] == grouping

"""The query-likelihood scorer: hand-checked log-likelihoods, quantization, batching, caching, sharding."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from fixtures.tiny_lm import save_tiny_llama, save_tiny_t5

from mint_distill.errors import MintError
from mint_distill.scoring import DEFAULT_PROMPT, LikelihoodScorer, ScoreCache

ITEMS = [
    "Neptune Oyster. Seafood, Restaurants. North End, Boston. The lobster roll is worth the wait.",
    "Jiffy Lube. Oil Change Stations. Boston. In and out in ten minutes.",
    "Wally's Cafe. Jazz & Blues, Bars. South End, Boston. Live jazz every night, tiny and loud.",
    "x",
]
REQUESTS = [
    "Where can I get a great lobster roll?",
    "My partner and I love quiet bars with live jazz, and we hate tourist traps. Any ideas in Boston?",
    "Cheap tacos near Fenway?",
    "Need an oil change.",
]


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory):
    return save_tiny_t5(tmp_path_factory.mktemp("t5"))


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("llama"))


class ForwardCounter:
    """Counts calls of a model's forward with a real forward hook."""

    def __init__(self, model):
        self.calls = 0
        self._handle = model.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.calls += 1

    def remove(self):
        self._handle.remove()


def hand_seq2seq(model, tokenizer, item: str, request: str) -> tuple[float, int]:
    """Summed log P(request | prompt) of one pair, unbatched, straight from the logits."""
    inputs = torch.tensor([tokenizer(DEFAULT_PROMPT.replace("{item}", item))["input_ids"]])
    labels = tokenizer(text_target=request)["input_ids"]
    decoder_inputs = torch.tensor([[model.config.decoder_start_token_id, *labels[:-1]]])
    with torch.no_grad():
        logits = model(input_ids=inputs.to(model.device), decoder_input_ids=decoder_inputs.to(model.device)).logits[0]
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return sum(log_probs[i, token].item() for i, token in enumerate(labels)), len(labels)


# On a GPU, 4-bit layers compute in bf16: batching moves a request's summed score by up to ~3e-4 of it.
GPU_4BIT_REL = 1e-3 if torch.cuda.is_available() else 0


def hand_causal(model, tokenizer, item: str, request: str) -> tuple[float, int]:
    """Summed log-probability of the request's tokens after the prompt, unbatched."""
    prompt = DEFAULT_PROMPT.replace("{item}", item)
    ids = tokenizer(f"{prompt} {request}")["input_ids"]
    request_length = len(tokenizer(f" {request}", add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0]
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    start = len(ids) - request_length
    return sum(log_probs[t - 1, ids[t]].item() for t in range(start, len(ids))), request_length


@pytest.mark.parametrize("quantization", ["none", "8bit", "4bit"])
def test_seq2seq_scores_are_the_summed_log_likelihood_of_the_request(tiny_t5, quantization):
    scorer = LikelihoodScorer(str(tiny_t5), quantization=quantization, batch_size=3)
    assert scorer.model_type == "seq2seq" and scorer.resolved.source == "local"
    scores = scorer.score(ITEMS, REQUESTS)
    model = scorer.model
    if quantization != "none":
        import bitsandbytes as bnb

        layer = bnb.nn.Linear8bitLt if quantization == "8bit" else bnb.nn.Linear4bit
        assert any(isinstance(module, layer) for module in model.modules())
    for score, item, request in zip(scores, ITEMS, REQUESTS):
        expected, _ = hand_seq2seq(model, scorer.tokenizer, item, request)
        assert score == pytest.approx(expected, rel=GPU_4BIT_REL if quantization == "4bit" else 0, abs=2e-3)


def test_mean_score_divides_by_the_request_tokens_including_end_of_sequence(tiny_t5):
    scorer = LikelihoodScorer(str(tiny_t5), score="mean")
    for score, item, request in zip(scorer.score(ITEMS, REQUESTS), ITEMS, REQUESTS):
        total, tokens = hand_seq2seq(scorer.model, scorer.tokenizer, item, request)
        assert scorer.tokenizer(text_target=request)["input_ids"][-1] == scorer.tokenizer.eos_token_id
        assert score == pytest.approx(total / tokens, abs=1e-4)


def test_causal_scores_only_the_request_tokens_whatever_the_batch(tiny_llama):
    scorer = LikelihoodScorer(str(tiny_llama), batch_size=4)
    assert scorer.model_type == "causal"
    batched = scorer.likelihoods(ITEMS, REQUESTS)  # one left-padded batch of four lengths
    for likelihood, item, request in zip(batched, ITEMS, REQUESTS):
        expected, tokens = hand_causal(scorer.model, scorer.tokenizer, item, request)
        assert likelihood.tokens == tokens
        assert likelihood.log_likelihood == pytest.approx(expected, abs=1e-3)


def test_bfloat16_scores_run_in_bfloat16_and_are_cached_apart_from_float32(tiny_llama, tmp_path):
    cache = ScoreCache(tmp_path / "scores.sqlite")
    full = LikelihoodScorer(str(tiny_llama), batch_size=4, cache=cache)
    half = LikelihoodScorer(str(tiny_llama), batch_size=4, cache=cache, precision="bfloat16")
    assert half.identity != full.identity
    dtypes = []
    hook = half.model.model.layers[0].mlp.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    reduced, exact = half.score(ITEMS, REQUESTS), full.score(ITEMS, REQUESTS)
    hook.remove()
    assert dtypes == [torch.bfloat16] and len(cache) == 2 * len(ITEMS)
    assert reduced != exact
    assert reduced == pytest.approx(exact, rel=0.05)


def test_long_items_are_cut_at_max_item_tokens(tiny_llama):
    long_item = " ".join(["The lobster roll is worth the wait."] * 40)
    scorer = LikelihoodScorer(str(tiny_llama), max_item_tokens=12)
    cut = scorer._truncate([long_item], 12)[0]
    assert long_item.startswith(cut) and len(scorer.tokenizer(cut, add_special_tokens=False)["input_ids"]) == 12
    assert scorer.score([long_item], [REQUESTS[0]]) == pytest.approx(scorer.score([cut], [REQUESTS[0]]), abs=1e-5)
    assert scorer.identity != LikelihoodScorer(str(tiny_llama), max_item_tokens=13).identity


def test_a_local_model_is_scored_apart_once_its_tokenizer_changes(tiny_llama, tmp_path):
    folder = tmp_path / "llama"
    shutil.copytree(tiny_llama, folder)
    before = LikelihoodScorer(str(folder)).identity
    (folder / "README.md").write_text("a card says nothing about the scores")
    assert LikelihoodScorer(str(folder)).identity == before
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "add_bos_token": not config.get("add_bos_token")}))
    assert LikelihoodScorer(str(folder)).identity != before


def test_a_second_scorer_on_the_same_cache_never_runs_the_model(tiny_llama, tmp_path):
    cache = tmp_path / "scores.sqlite"
    first = LikelihoodScorer(str(tiny_llama), batch_size=2, cache=cache)
    counter = ForwardCounter(first.model)
    scores = first.score(ITEMS, REQUESTS)
    assert counter.calls == 2  # four pairs in batches of two
    first.close()

    again = LikelihoodScorer(str(tiny_llama), batch_size=2, cache=cache)
    counter = ForwardCounter(again.model)
    assert again.score(ITEMS, REQUESTS) == scores
    mean = LikelihoodScorer(str(tiny_llama), score="mean", cache=cache)
    mean_counter = ForwardCounter(mean.model)
    tokens = [likelihood.tokens for likelihood in again.likelihoods(ITEMS, REQUESTS)]
    assert mean.score(ITEMS, REQUESTS) == [total / n for total, n in zip(scores, tokens)]
    assert counter.calls == 0 and mean_counter.calls == 0

    again.score(ITEMS[:1], ["A request it has not seen."])
    assert counter.calls == 1


def test_the_cache_is_keyed_by_the_model_weights(tiny_llama, tmp_path):
    other = save_tiny_llama(tmp_path / "other", seed=1)
    cache = tmp_path / "scores.sqlite"
    first = LikelihoodScorer(str(tiny_llama), cache=cache)
    first.score(ITEMS, REQUESTS)
    second = LikelihoodScorer(str(other), cache=cache)
    counter = ForwardCounter(second.model)
    assert second.score(ITEMS, REQUESTS) != first.score(ITEMS, REQUESTS)
    assert counter.calls == 1 and len(ScoreCache(cache)) == 2 * len(ITEMS)


def test_interrupted_scoring_resumes_with_the_batches_it_had_not_finished(tiny_llama, tmp_path):
    cache = tmp_path / "scores.sqlite"
    reference = LikelihoodScorer(str(tiny_llama), batch_size=1).score(ITEMS, REQUESTS)

    interrupted = LikelihoodScorer(str(tiny_llama), batch_size=1, cache=cache)

    calls = []

    def stop_on_third_batch(module, args, output):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    handle = interrupted.model.register_forward_hook(stop_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        interrupted.score(ITEMS, REQUESTS)
    handle.remove()
    interrupted.close()
    assert len(ScoreCache(cache)) == 2

    resumed = LikelihoodScorer(str(tiny_llama), batch_size=1, cache=cache)
    counter = ForwardCounter(resumed.model)
    assert resumed.score(ITEMS, REQUESTS) == reference
    assert counter.calls == 2


def test_shards_score_each_batch_once_and_match_a_single_process(tiny_llama, tmp_path):
    items, requests = ITEMS * 3, [r for r in REQUESTS for _ in range(3)]
    single = LikelihoodScorer(str(tiny_llama), batch_size=2).score(items, requests)
    cache = tmp_path / "scores.sqlite"
    scored = [
        LikelihoodScorer(str(tiny_llama), batch_size=2, cache=cache).precompute(items, requests, shard=(index, 2))
        for index in range(2)
    ]
    assert sum(scored) == len(set(zip(items, requests))) and all(scored)
    merged = LikelihoodScorer(str(tiny_llama), batch_size=2, cache=cache)
    counter = ForwardCounter(merged.model)
    assert merged.score(items, requests) == single
    assert counter.calls == 0


def test_bad_arguments_are_reported(tiny_llama):
    with pytest.raises(MintError, match=r"\{item\}"):
        LikelihoodScorer(str(tiny_llama), prompt="no placeholder here")
    with pytest.raises(ValueError, match="2 items but 1 requests"):
        LikelihoodScorer(str(tiny_llama)).score(ITEMS[:2], REQUESTS[:1])
    with pytest.raises(MintError, match="precompute needs a score cache"):
        LikelihoodScorer(str(tiny_llama)).precompute(ITEMS, REQUESTS)
    assert LikelihoodScorer(str(tiny_llama)).score([], []) == []


@pytest.mark.integration
def test_embedded_smollm2_prefers_the_item_that_matches_the_request():
    from conftest import embedded_or_skip

    scorer = LikelihoodScorer(embedded_or_skip("smollm2-135m-instruct"), batch_size=8)
    cases = [
        ("I'm visiting Boston and I love fresh seafood. Where can I get great oysters and a lobster roll?",
         "Neptune Oyster. Seafood, Restaurants. North End, Boston. Fresh oysters and the best lobster roll in town.",
         "Jiffy Lube. Automotive, Oil Change Stations. Allston, Boston. Quick oil change, friendly staff."),
        ("Looking for a cozy coffee shop with good espresso and pastries where I can work on my laptop.",
         "Thinking Cup. Coffee & Tea, Cafes. Downtown, Boston. Excellent espresso, great pastries, free wifi.",
         "Lucky Strike. Bowling, Bars. Fenway, Boston. Bowling lanes, pool tables and loud music."),
        ("My friends and I want cheap, authentic Mexican food: tacos, burritos and margaritas.",
         "El Pelon Taqueria. Mexican, Restaurants. Fenway, Boston. Cheap fish tacos and huge burritos.",
         "Boston Public Library. Libraries, Public Services. Back Bay, Boston. Quiet reading rooms."),
    ]
    requests = [request for request, _, _ in cases for _ in range(2)]
    items = [item for _, match, other in cases for item in (match, other)]
    scores = scorer.score(items, requests)
    for index in range(len(cases)):
        assert scores[2 * index] > scores[2 * index + 1], cases[index][0]


def _open_cache_together(path, barrier, outcomes):
    barrier.wait()
    try:
        ScoreCache(path).close()
        outcomes.put("ok")
    except Exception as error:  # noqa: BLE001 - the parent reports whatever a process hit
        outcomes.put(repr(error))


def test_processes_opening_a_new_cache_at_once_all_succeed(tmp_path):
    """Under `accelerate launch` every process opens the run's score cache as the filter stage starts."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    problems = []
    for attempt in range(20):
        barrier, outcomes = context.Barrier(6), context.Queue()
        processes = [
            context.Process(target=_open_cache_together, args=(tmp_path / f"{attempt}.sqlite", barrier, outcomes))
            for _ in range(6)
        ]
        for process in processes:
            process.start()
        results = [outcomes.get(timeout=60) for _ in processes]
        for process in processes:
            process.join()
        problems += [result for result in results if result != "ok"]
    assert problems == []

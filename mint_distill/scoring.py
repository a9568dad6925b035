"""Query likelihood: log P(request | item) under a seq2seq or causal language model.

One scorer serves two uses: the Mint filter (which of a user's items best explain a synthetic
request) and UPR-style reranking at evaluation time. The conditioning follows the Mint authors'
code: the item text goes into `DEFAULT_PROMPT` and only the request tokens are scored.

- seq2seq (the paper: google/flan-t5-xl): the prompt is the encoder input, the request the
  decoder target (with the tokenizer's end-of-sequence token, as the authors did);
- causal (SmolLM2 offline, any hub causal LM): the request follows the prompt after one space
  and only the request's tokens are scored.

Pairs are tokenised once, sorted by length and cut into batches (a fixed plan, so that a pair
lands in the same batch however the work is split across processes), padded, scored and put
back in input order. Summed log-likelihoods and token counts are cached on disk per (model
identity, item, request), so `score="mean"` and any later keep rule reuse them.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import filelock

from .console import progress_bar
from .errors import MintError
from .models.precision import Precision, autocast, resolve_precision
from .models.resolver import setup_sha256

DEFAULT_PROMPT = "Review: {item} Write a reddit request asking for recommendations based on this review:"
ITEM_PLACEHOLDER = "{item}"

# Part of every cache key: bump when a change to this module changes the numbers it computes.
SCORER_VERSION = 1


@dataclass(frozen=True)
class Likelihood:
    """Summed token log-likelihood of a request and how many tokens it was summed over."""

    log_likelihood: float
    tokens: int

    def value(self, score: Literal["sum", "mean"]) -> float:
        return self.log_likelihood if score == "sum" else self.log_likelihood / max(self.tokens, 1)


class ScoreCache:
    """Likelihoods on disk (SQLite), keyed by sha256 of (scorer identity, item, request).

    Each batch is one transaction, so a killed process loses at most the batch in flight. Several
    processes on one machine may share the file (SQLite locks it; WAL keeps readers unblocked).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=300, isolation_level=None)
        # Processes opening a new file at once would each hold a shared lock and want the exclusive
        # one that switching to WAL takes; SQLite refuses one at once ("database is locked").
        with filelock.FileLock(f"{self.path}.lock"):
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS likelihoods "
                "(key TEXT PRIMARY KEY, log_likelihood REAL NOT NULL, tokens INTEGER NOT NULL)"
            )

    def get_many(self, keys: Iterable[str]) -> dict[str, Likelihood]:
        """The cached likelihoods among `keys` (missing keys are left out)."""
        keys = list(keys)
        found: dict[str, Likelihood] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self._db.execute(
                f"SELECT key, log_likelihood, tokens FROM likelihoods WHERE key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            found.update((key, Likelihood(value, tokens)) for key, value, tokens in rows)
        return found

    def put_many(self, entries: dict[str, Likelihood]) -> None:
        """Store `entries` in one transaction."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR REPLACE INTO likelihoods VALUES (?, ?, ?)",
                [(key, item.log_likelihood, item.tokens) for key, item in entries.items()],
            )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM likelihoods").fetchone()[0]

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True)
class _Encoded:
    """Token ids of one pair: the conditioning (prompt) and the scored part (request)."""

    prompt: list[int]
    target: list[int]

    @property
    def length(self) -> int:
        return len(self.prompt) + len(self.target)


class LikelihoodScorer:
    """log P(request | item) for (item, request) pairs, batched, quantizable and cached.

    `model` is any reference `resolve_model` accepts (`embedded:<name>`, a folder, a hub id).
    `cache` is a `ScoreCache` or a path to one; without it scores live only for the call.
    The model is loaded on first need, so a fully cached call never loads it.

    Example:
        scorer = LikelihoodScorer("embedded:smollm2-135m-instruct", cache="scores.sqlite")
        scorer.score(["Neptune Oyster. Seafood in Boston."], ["Where can I get a lobster roll?"])
    """

    def __init__(
        self,
        model: str,
        model_type: Literal["auto", "causal", "seq2seq"] = "auto",
        quantization: Literal["none", "8bit", "4bit"] = "none",
        score: Literal["sum", "mean"] = "sum",
        batch_size: int = 16,
        trust_remote_code: bool = False,
        prompt: str = DEFAULT_PROMPT,
        *,
        cache: ScoreCache | str | os.PathLike | None = None,
        max_item_tokens: int = 480,
        max_request_tokens: int = 512,
        precision: Precision = "float32",
        device: str | None = None,
    ):
        from .models import resolve_model
        from .models.loading import model_type_of

        if prompt.count(ITEM_PLACEHOLDER) != 1:
            raise MintError(f"the scoring prompt must contain `{ITEM_PLACEHOLDER}` exactly once; got: {prompt!r}")
        if batch_size < 1:
            raise MintError(f"the scoring batch size must be at least 1, got {batch_size}")
        self.resolved = resolve_model(model)
        self.model_type = model_type_of(self.resolved, trust_remote_code) if model_type == "auto" else model_type
        self.quantization = quantization
        self.score_mode = score
        self.batch_size = batch_size
        self.trust_remote_code = trust_remote_code
        self.prompt = prompt
        self.max_item_tokens = max_item_tokens
        self.max_request_tokens = max_request_tokens
        self.precision = resolve_precision(precision, device.split(":")[0] if device else None)
        self._owns_cache = isinstance(cache, (str, os.PathLike))
        self.cache = ScoreCache(cache) if self._owns_cache else cache
        self._device = device
        self._model = None
        self._tokenizer = None
        self._identity: str | None = None

    @property
    def identity(self) -> str:
        """What makes two scorers give the same numbers: weights (and a local folder's config and
        tokenizer), model type, quantization, prompt, limits, precision."""
        if self._identity is None:
            # Embedded and hub models are fixed by their registry and name: their key stays as it was.
            local = self.resolved.source == "local"
            setup = {"setup": setup_sha256(self.resolved.path)} if local else {}
            self._identity = hashlib.sha256(json.dumps({
                **setup,
                "weights": self.resolved.weights_sha256(),
                "model_type": self.model_type,
                "quantization": self.quantization,
                "prompt": self.prompt,
                "max_item_tokens": self.max_item_tokens,
                "max_request_tokens": self.max_request_tokens,
                "precision": self.precision,
                "version": SCORER_VERSION,
            }, sort_keys=True).encode()).hexdigest()
        return self._identity

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from .models.loading import load_tokenizer

            self._tokenizer = load_tokenizer(self.resolved, trust_remote_code=self.trust_remote_code)
            if not self._tokenizer.is_fast:
                raise MintError(f"{self.resolved.reference}: the scorer needs a fast (Rust) tokenizer for token offsets")
        return self._tokenizer

    @property
    def model(self):
        """The language model, loaded (and quantized) on first use."""
        if self._model is None:
            from .models.loading import load_language_model

            network = load_language_model(
                self.resolved, model_type=self.model_type, quantization=self.quantization,
                trust_remote_code=self.trust_remote_code,
            )
            if self.quantization == "none":
                network.to(self._device or _default_device())
            elif self.quantization == "8bit":
                logging.getLogger("bitsandbytes.autograd._functions").addFilter(_FIRST_TIME_ONLY)
            self._model = network
        return self._model

    def score(self, items: list[str], requests: list[str]) -> list[float]:
        """log P(request | item) for each pair (summed, or per token with `score="mean"`)."""
        return [likelihood.value(self.score_mode) for likelihood in self.likelihoods(items, requests)]

    def likelihoods(self, items: list[str], requests: list[str]) -> list[Likelihood]:
        """Summed log-likelihood and token count for each pair, from the cache or the model."""
        keys = self._keys(items, requests)
        known, _ = self._compute(items, requests, keys, shard=(0, 1))
        return [known[key] for key in keys]

    def precompute(self, items: list[str], requests: list[str], *, shard: tuple[int, int] = (0, 1)) -> int:
        """Fill the cache for shard `(index, count)` of the pairs' batch plan; return pairs scored.

        Every process of a launch passes the same pairs and its own `(process_index, num_processes)`;
        each pair is scored in the same batch as in a single-process run, so the numbers agree.
        """
        if self.cache is None:
            raise MintError("precompute needs a score cache (pass cache=... to LikelihoodScorer)")
        _, scored = self._compute(items, requests, self._keys(items, requests), shard=shard)
        return scored

    def close(self) -> None:
        """Close the score cache if this scorer opened it, and drop the model."""
        if self._owns_cache and self.cache is not None:
            self.cache.close()
        self._model = None

    def _keys(self, items: list[str], requests: list[str]) -> list[str]:
        if len(items) != len(requests):
            raise ValueError(f"got {len(items)} items but {len(requests)} requests; pass one of each per pair")
        identity = self.identity
        return [
            hashlib.sha256(f"{identity}\0{item}\0{request}".encode()).hexdigest()
            for item, request in zip(items, requests)
        ]

    def _compute(
        self, items: list[str], requests: list[str], keys: list[str], shard: tuple[int, int]
    ) -> tuple[dict[str, Likelihood], int]:
        """Likelihoods of the pairs known after scoring this shard's batches, and how many were scored."""
        unique = dict(zip(keys, zip(items, requests)))
        known = self.cache.get_many(unique) if self.cache is not None else {}
        if len(known) == len(unique):
            return known, 0
        order = list(unique)
        encoded = self._encode([unique[key][0] for key in order], [unique[key][1] for key in order])
        index, count = shard
        batches = [
            batch for position, batch in enumerate(self._plan(encoded))
            if position % count == index and any(order[i] not in known for i in batch)
        ]
        total = sum(len(batch) for batch in batches)
        with progress_bar("scoring pairs", total=total, unit="pairs") as bar:
            for batch in batches:
                values = self._score_batch([encoded[i] for i in batch])
                scored = {order[i]: value for i, value in zip(batch, values)}
                if self.cache is not None:
                    self.cache.put_many(scored)
                known.update(scored)
                bar.advance(len(batch), tokens=sum(encoded[i].length for i in batch))
        return known, total

    def _plan(self, encoded: list[_Encoded]) -> list[list[int]]:
        """Batches of similar length, longest first (an out-of-memory shows up at once)."""
        order = sorted(range(len(encoded)), key=lambda i: (-encoded[i].length, i))
        return [order[start:start + self.batch_size] for start in range(0, len(order), self.batch_size)]

    def _encode(self, items: list[str], requests: list[str]) -> list[_Encoded]:
        items = self._truncate(items, self.max_item_tokens)
        prompts = [self.prompt.replace(ITEM_PLACEHOLDER, item) for item in items]
        if self.model_type == "seq2seq":
            inputs = self.tokenizer(prompts)["input_ids"]
            targets = self.tokenizer(text_target=requests, truncation=True, max_length=self.max_request_tokens)["input_ids"]
            return [_Encoded(p, t) for p, t in zip(inputs, targets)]
        texts = [f"{prompt} {request}" for prompt, request in zip(prompts, requests)]
        encodings = self.tokenizer(texts, return_offsets_mapping=True)
        result = []
        for prompt, ids, offsets in zip(prompts, encodings["input_ids"], encodings["offset_mapping"]):
            # The request starts at the space after the prompt; tokens starting there or later are scored.
            split = next((i for i, (start, end) in enumerate(offsets) if start >= len(prompt) and end > start), len(ids))
            if split == 0 or split == len(ids):
                raise MintError(f"{self.resolved.reference}: could not separate the request tokens from the prompt")
            result.append(_Encoded(ids[:split], ids[split:split + self.max_request_tokens]))
        return result

    def _truncate(self, texts: list[str], max_tokens: int) -> list[str]:
        """Cut each text after its first `max_tokens` tokens, at a character boundary."""
        offsets = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return [text if len(spans) <= max_tokens else text[: spans[max_tokens - 1][1]] for text, spans in zip(texts, offsets)]

    def _score_batch(self, batch: list[_Encoded]) -> list[Likelihood]:
        import torch

        with torch.inference_mode(), autocast(self.precision, self.model.device.type):
            if self.model_type == "seq2seq":
                logits, targets, mask = self._seq2seq_logits(batch)
            else:
                logits, targets, mask = self._causal_logits(batch)
            sums = (_target_log_probs(logits, targets).double() * mask).sum(-1)
        return [Likelihood(float(total), int(n)) for total, n in zip(sums.tolist(), mask.sum(-1).tolist())]

    def _seq2seq_logits(self, batch: list[_Encoded]):
        import torch

        model, pad = self.model, self._pad_id()
        inputs, attention = _pad([e.prompt for e in batch], pad, left=False)
        targets, mask = _pad([e.target for e in batch], pad, left=False)
        device = model.device
        decoder_inputs = model.prepare_decoder_input_ids_from_labels(labels=targets.to(device))
        logits = model(
            input_ids=inputs.to(device), attention_mask=attention.to(device),
            decoder_input_ids=decoder_inputs, decoder_attention_mask=torch.ones_like(decoder_inputs),
        ).logits
        return logits, targets.to(device), mask.to(device)

    def _causal_logits(self, batch: list[_Encoded]):
        """Left-padded so that every request ends at the last position; only those logits are computed."""
        model, pad = self.model, self._pad_id()
        ids, attention = _pad([e.prompt + e.target for e in batch], pad, left=True)
        width = max(len(e.target) for e in batch)
        device = model.device
        ids, attention = ids.to(device), attention.to(device)
        options = {}
        parameters = inspect.signature(model.forward).parameters
        if "position_ids" in parameters:
            options["position_ids"] = (attention.cumsum(-1) - 1).clamp(min=0)
        if "logits_to_keep" in parameters:
            options["logits_to_keep"] = width + 1
        logits = model(input_ids=ids, attention_mask=attention, **options).logits
        # logits[t] predicts token t+1: the last `width` targets are predicted by the `width` logits before the last.
        logits = logits[:, -(width + 1):-1]
        targets = ids[:, -width:]
        _, mask = _pad([e.target for e in batch], 0, left=True)
        return logits, targets, mask.to(device)

    def _pad_id(self) -> int:
        tokenizer = self.tokenizer
        return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


class _FirstTimeOnly(logging.Filter):
    """Let each distinct message through once (bitsandbytes 8-bit warns on every layer call)."""

    def __init__(self):
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self._seen:
            return False
        self._seen.add(message)
        return True


_FIRST_TIME_ONLY = _FirstTimeOnly()


def _target_log_probs(logits, targets):
    """log_softmax(logits) at the target tokens, computed one sequence at a time.

    Batched, the float32 log-softmax makes two copies of batch x tokens x vocabulary: 6 GB for
    32 Pointrec requests of up to 512 tokens under SmolLM2's 49,152 tokens. Row by row, the
    same numbers need one sequence's worth.
    """
    import torch

    return torch.stack([
        row.float().log_softmax(-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
        for row, target in zip(logits, targets)
    ])


def _pad(rows: list[list[int]], value: int, *, left: bool):
    """A padded id tensor and its 0/1 mask."""
    import torch

    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def process_state():
    """accelerate's view of this process: its index and the number of processes launched.

    Without CUDA, `cpu=True` is what makes accelerate join the processes of a CPU launch
    (`accelerate launch --multi_gpu`, `torchrun`) instead of treating each as the only one.
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def _default_device() -> str:
    """This process's accelerator under a multi-process launch (or plain CUDA), else the CPU."""
    return str(process_state().device)

"""The teacher model at generation time: base + adapter, batched sampling that stops at the request's end."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..models.precision import Precision, cast

log = logging.getLogger(__name__)


def _cache_argument() -> str:
    """`generate`'s name for the KV cache, in and out: `cache` since transformers renamed it in
    5.x (`past_key_values` still works there, with a deprecation warning), `past_key_values` before."""
    from transformers.generation.utils import GenerateDecoderOnlyOutput

    return "cache" if "cache" in GenerateDecoderOnlyOutput.__dataclass_fields__ else "past_key_values"


@dataclass(frozen=True)
class Sampled:
    """One generated continuation, cut at the first stop string, and how many tokens it took.

    `finished` is False when the model was still writing at `max_new_tokens` (a cut-off text).
    """

    text: str
    new_tokens: int
    finished: bool = True


def load_teacher(
    reference: str,
    adapter: str | Path | None = None,
    *,
    trust_remote_code: bool = False,
    merge: bool = True,
    precision: Precision = "float32",
):
    """(model, tokenizer): the base causal LM, with the LoRA adapter merged in when given.

    With `merge=False` the model stays a `PeftModel`, so `model.disable_adapter()` gives the
    untuned teacher back without loading the base twice. `precision="bfloat16"` casts base and
    adapter weights (sampling is ~1.5x faster on CPUs with AVX512-BF16).
    """
    import torch

    from ..models import resolve_model
    from ..models.loading import load_language_model, load_tokenizer
    from .attention import use_decode_attention

    resolved = resolve_model(reference)
    tokenizer = load_tokenizer(resolved, trust_remote_code=trust_remote_code, padding_side="left")
    model = load_language_model(resolved, model_type="causal", trust_remote_code=trust_remote_code)
    if torch.cuda.is_available():
        model = model.to("cuda")
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    cast(model, precision)  # after the adapter is attached: peft keeps adapter weights in float32
    if adapter is not None and merge:
        model = model.merge_and_unload()
    use_decode_attention(model)
    model.eval()
    return model, tokenizer


class RequestSampler:
    """Batched sampling with left padding; each row stops at EOS or at any stop string."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        add_special_tokens: bool = True,
        max_new_tokens: int = 200,
        min_new_tokens: int = 0,
        do_sample: bool = True,
        temperature: float = 0.8,
        top_k: int = 50,
        top_p: float = 0.95,
        repetition_penalty: float = 1.1,
        stop: tuple[str, ...] | list[str] = ("\n",),
        chunk_tokens: int = 16,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.add_special_tokens = add_special_tokens
        self.stop = [s for s in stop if s]
        self.chunk_tokens = chunk_tokens
        self.options = {
            "max_new_tokens": max_new_tokens,
            "min_new_tokens": min_new_tokens,
            "do_sample": False,  # a sampled row leaves one finite logit to the greedy step
            "repetition_penalty": repetition_penalty,
        }
        if do_sample:
            from transformers import LogitsProcessorList

            from .sampling import CandidateSampling

            self.options["logits_processor"] = LogitsProcessorList(
                [CandidateSampling(temperature, top_k, top_p)]
            )

    def sample(self, prompts: list[str], seed: int) -> list[Sampled]:
        """One continuation per prompt (rows of one call share a sampling seed).

        Rows are generated `chunk_tokens` at a time; after each chunk the rows that ended leave
        the batch, their cache rows with them, so a batch no longer runs every row until its
        longest one ends (requests of ~75 tokens in batches that ran up to 160 steps).
        """
        import torch

        encoded = self.tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=self.add_special_tokens
        ).to(self.model.device)
        sequences, attention = encoded["input_ids"], encoded["attention_mask"]
        running = list(range(len(prompts)))
        rows: list[list[int]] = [[] for _ in prompts]
        results: list[Sampled] = [Sampled("", 0, False)] * len(prompts)
        cache, generated, cache_argument = None, 0, _cache_argument()
        max_new, min_new = self.options["max_new_tokens"], self.options["min_new_tokens"]
        torch.manual_seed(seed)
        while running and generated < max_new:
            step = min(self.chunk_tokens, max_new - generated)
            # At most the chunk: a longer minimum still keeps the end token out of this whole
            # chunk, and transformers warns at every call when the minimum exceeds the maximum.
            step_min = min(step, max(0, min_new - generated))
            with torch.no_grad():
                output = self.model.generate(
                    input_ids=sequences,
                    attention_mask=attention,
                    **({cache_argument: cache} if cache is not None else {}),
                    **{**self.options, "max_new_tokens": step, "min_new_tokens": step_min},
                    stop_strings=self.stop or None,
                    tokenizer=self.tokenizer if self.stop else None,
                    pad_token_id=self.tokenizer.pad_token_id,
                    return_dict_in_generate=True,
                )
            new = output.sequences[:, sequences.shape[1] :]
            generated += new.shape[1]
            keep = []
            for position, (row, tokens) in enumerate(zip(running, new.tolist(), strict=True)):
                rows[row] += tokens
                results[row] = self._finish(rows[row])
                if not results[row].finished:
                    keep.append(position)
            sequences, cache = output.sequences, getattr(output, cache_argument)
            if len(keep) < len(running):
                index = torch.tensor(keep, device=new.device, dtype=torch.long)
                cache.batch_select_indices(index)
                sequences, attention = sequences[index], attention[index]
                running = [running[position] for position in keep]
            attention = torch.cat([attention, attention.new_ones((len(running), new.shape[1]))], dim=1)
        return results

    def _finish(self, row: list[int]) -> Sampled:
        ends = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id} - {None}
        end = next((i for i, token in enumerate(row) if token in ends), None)
        length = len(row) if end is None else end + 1
        text = self.tokenizer.decode(row[:length], skip_special_tokens=True)
        finished = end is not None
        for stop in self.stop:
            if stop in text:
                text, finished = text.split(stop, 1)[0], True
        return Sampled(text.strip(), length, finished)

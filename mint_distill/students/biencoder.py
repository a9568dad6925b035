"""BiEnc-Mint: a sentence-transformers bi-encoder trained on the kept (request, item) pairs.

Full fine-tuning or a LoRA adapter (peft) on the encoder; MultipleNegativesRankingLoss with
in-batch negatives (default), its symmetric form, or a triplet margin loss, optionally with BM25
hard negatives.
The output is a `SentenceTransformer(path)` folder; with LoRA it holds the adapter only.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..errors import DataError
from ..recipe.sections.base import LoraSpec
from ..recipe.sections.students import BiEncoderSpec
from .batching import BatchFootprint, conflict_free_batches
from .card import base_model_identity
from .data import Pair, StudentData, load_item_cities, load_student_data
from .dev_metrics import ranking_measures
from .loop import LoopSettings, TrainerState, train_loop
from .losses import mnrl_loss, triplet_loss
from .negatives import bm25_rankings, effective_window, mine_negatives
from .outputs import publish_student, summary_of, training_record

log = logging.getLogger(__name__)
T = TypeVar("T")


def load_biencoder(
    reference: str,
    *,
    max_seq_length: int | None = None,
    trust_remote_code: bool = False,
    device: str | None = None,
):
    """A SentenceTransformer from an `embedded:` reference, hub id or folder (LoRA folders too)."""
    from ..models.loading import load_sentence_transformer

    model = load_sentence_transformer(reference, trust_remote_code=trust_remote_code, device=device)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model


def add_lora(model, lora: LoraSpec) -> None:
    """Wrap the encoder of a SentenceTransformer in a peft LoRA model; only the adapter trains.

    Saving the SentenceTransformer then writes `adapter_config.json` and
    `adapter_model.safetensors` instead of full weights, and `SentenceTransformer(folder)` loads
    the base model named there with the adapter on top.
    """
    from peft import LoraConfig, get_peft_model

    transformer = model[0]
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        bias="none",
    )
    transformer.model = get_peft_model(transformer.model, config)


def embed(model, wrapped, texts: list[str]):
    """Sentence embeddings of `texts` through `wrapped` (the model itself or its DDP wrapper)."""
    from sentence_transformers.util import batch_to_device

    # A plain dict: DDP finds the tensors of dict outputs, not of the BatchEncoding preprocess returns.
    features = batch_to_device(dict(model.preprocess(texts)), model.device)
    return wrapped(features)["sentence_embedding"]


class BiEncoderTask:
    """Kept train pairs as (request, item[, hard negatives]) examples for `train_loop`."""

    evaluate_at_start = True  # the encoder before training is the zero-shot model to beat

    def __init__(
        self,
        model,
        data: StudentData,
        examples: list[Pair],
        *,
        loss: str = "mnrl",
        mnrl_scale: float = 20.0,
        triplet_margin: float = 1.0,
        hard_negatives: dict[Pair, list[str]] | None = None,
        item_groups: dict[str, Hashable] | None = None,
        batch_size: int = 16,
        dev_catalog: int | None = 1000,
        seed: int = 0,
    ):
        self.model, self.data, self.examples = model, data, examples
        self.loss_name, self.mnrl_scale, self.triplet_margin = loss, mnrl_scale, triplet_margin
        self.hard_negatives = hard_negatives or {}
        self.item_groups = item_groups
        self.batch_size = batch_size
        self.dev_items = dev_catalog_items(data, dev_catalog, seed)

    @classmethod
    def from_spec(
        cls,
        model,
        data: StudentData,
        examples: list[Pair],
        spec: BiEncoderSpec,
        settings: LoopSettings,
        **inputs: Any,
    ) -> BiEncoderTask:
        """The task `spec` trains (and scores its dev split with); `inputs`: hard negatives, item groups."""
        return cls(
            model,
            data,
            examples,
            loss=spec.loss,
            mnrl_scale=spec.mnrl_scale,
            triplet_margin=spec.triplet_margin,
            batch_size=settings.batch_size,
            dev_catalog=spec.dev_catalog,
            seed=settings.seed,
            **inputs,
        )

    def num_examples(self) -> int:
        return len(self.examples)

    def batch_footprints(self) -> Callable[[int], BatchFootprint]:
        return lambda index: self.footprint(self.examples[index], with_hard_negatives=True)

    def footprint(self, pair: Pair, with_hard_negatives: bool) -> BatchFootprint:
        """A pair brings its request, its item and its hard negatives into a batch, and must not meet
        any item shown for its request there: another positive of its user is no negative."""
        negatives = self.hard_negatives.get(pair, ()) if with_hard_negatives else ()
        return BatchFootprint.of(
            [("request", pair.request_id), *(("item", i) for i in (pair.item_id, *negatives))],
            also_avoids=[("item", i) for i in self.data.shown.get(pair.request_id, ())],
        )

    def batch_groups(self) -> Callable[[int], Hashable | None] | None:
        """A pair's group is its item's (`item_groups`); pairs of ungrouped items go mixed."""
        if self.item_groups is None:
            return None
        return lambda index: self.item_groups.get(self.examples[index].item_id)

    def columns(self, pairs: Sequence[Pair], with_hard_negatives: bool = True) -> list[list[str]]:
        """Texts per column: requests, positives, then one column per hard negative."""
        columns = [
            [self.data.requests[p.request_id] for p in pairs],
            [self.data.items[p.item_id] for p in pairs],
        ]
        if with_hard_negatives and self.hard_negatives:
            for column in range(len(self.hard_negatives[pairs[0]])):
                columns.append([self.data.items[self.hard_negatives[p][column]] for p in pairs])
        return columns

    def loss_on(
        self, wrapped, pairs: Sequence[Pair], gather: bool, with_hard_negatives: bool = True
    ):
        columns = self.columns(pairs, with_hard_negatives)
        # One forward over every column: DDP expects a single forward per backward.
        embeddings = embed(
            self.model, wrapped, [text for column in columns for text in column]
        ).split(len(pairs))
        queries, documents = embeddings[0], list(embeddings[1:])
        if self.loss_name == "triplet":
            return triplet_loss(queries, documents, margin=self.triplet_margin, gather=gather)
        return mnrl_loss(
            queries,
            documents,
            scale=self.mnrl_scale,
            gather=gather,
            symmetric=self.loss_name == "mnrl_symmetric",
        )

    def loss(self, wrapped, indices: list[int], gather: bool):
        return self.loss_on(wrapped, [self.examples[i] for i in indices], gather)

    def evaluate(self, model) -> dict[str, float]:
        """Dev loss (in-batch negatives only) and MRR@10 / Recall@10 of dev requests' kept items."""
        import torch

        if not self.data.dev:
            return {}
        model.eval()
        with torch.no_grad():
            return {**self.dev_loss(model), **self.dev_ranking(model)}

    def dev_batches(self) -> list[list[Pair]]:
        """The dev pairs in full batches, none a positive of another's request, as `dev_loss`
        scores them."""
        dev = self.data.dev
        size = min(self.batch_size, len(dev))
        if size < 2:
            return []
        batches = conflict_free_batches(
            list(range(len(dev))), size, lambda i: self.footprint(dev[i], with_hard_negatives=False)
        )
        return [[dev[i] for i in batch] for batch in batches]

    def dev_loss(self, model) -> dict[str, float]:
        batches = self.dev_batches()
        if not batches:
            return {}
        losses = [
            self.loss_on(model, batch, gather=False, with_hard_negatives=False).item()
            for batch in batches
        ]
        return {"loss": sum(losses) / len(losses)}

    def dev_ranking(self, model) -> dict[str, float]:
        positives = self.data.positives("dev")
        request_ids = list(positives)
        column = {item: index for index, item in enumerate(self.dev_items)}
        encode = {
            "batch_size": self.batch_size,
            "convert_to_tensor": True,
            "normalize_embeddings": True,
            "show_progress_bar": False,
        }
        queries = model.encode([self.data.requests[r] for r in request_ids], **encode)
        items = model.encode([self.data.items[i] for i in self.dev_items], **encode)
        relevant = [{column[i] for i in positives[r]} for r in request_ids]
        excluded = [
            {column[i] for i in self.data.shown.get(r, ()) if i in column} - relevant[n]
            for n, r in enumerate(request_ids)
        ]
        return ranking_measures((queries @ items.T).cpu(), relevant, excluded, k=10)

    def save(self, model, folder: Path) -> None:
        model.save(str(folder), create_model_card=False)


def dev_catalog_items(data: StudentData, size: int | None, seed: int) -> list[str]:
    """Items ranked in dev evaluation: every dev positive plus a fixed sample of the catalog."""
    positives = list(dict.fromkeys(p.item_id for p in data.dev))
    if size is None or size >= len(data.items):
        return list(data.items)
    taken = set(positives)
    others = [item for item in data.items if item not in taken]
    sample = random.Random(seed).sample(others, max(0, min(len(others), size - len(positives))))
    return positives + sample


def sample_examples(examples: list[T], limit: int | None, seed: int) -> list[T]:
    """At most `limit` examples, a seeded sample kept in file order."""
    if limit is None or limit >= len(examples):
        return examples
    chosen = set(random.Random(seed).sample(range(len(examples)), limit))
    return [example for index, example in enumerate(examples) if index in chosen]


def bm25_hard_negatives(
    data: StudentData, pairs: list[Pair], spec: BiEncoderSpec, seed: int
) -> dict[Pair, list[str]]:
    """`count` BM25-ranked negatives per pair from the configured rank window (scaled to the catalog)."""
    settings = spec.hard_negatives
    window = effective_window(
        settings.rank_start, settings.rank_end, len(data.items), settings.count
    )
    requests = {p.request_id: data.requests[p.request_id] for p in pairs}
    rankings = bm25_rankings(
        requests, data.items, depth=min(len(data.items), 2 * settings.rank_end)
    )
    records = mine_negatives(
        rankings, pairs, data.shown, window=window, per_positive=settings.count, seed=seed
    )
    negatives = {}
    for pair, record in zip(pairs, records):
        found = record["negatives"]
        if not found:
            raise DataError(
                f"the catalog ({len(data.items)} items) has no item left to serve as a hard negative for request "
                f"{pair.request_id}; set students.biencoder.hard_negatives.count=0"
            )
        # Rare on tiny catalogs: repeat negatives so every example has the same number of columns.
        negatives[pair] = [found[i % len(found)] for i in range(settings.count)]
    log.info("BM25 hard negatives: %d per pair from ranks %d-%d", settings.count, *window)
    return negatives


def train_biencoder(
    spec: BiEncoderSpec | dict,
    *,
    pairs: str | Path,
    requests: str | Path,
    items: str | Path,
    out_dir: str | Path,
    seed: int,
    resume: bool = False,
    provenance: dict[str, Any] | None = None,
    callbacks: Sequence[Callable[[TrainerState], None]] = (),
) -> dict[str, Any]:
    """Train BiEnc-Mint and write `out_dir/model`, `log.jsonl`, `loss.png`; return summary counts.

    `seed` is used where `spec.training.seed` is null. Runs the same under `accelerate launch`
    (every process calls it; only the main process writes). `provenance` (recipe name, recipe
    sha256, stage config hash) goes into the model card.
    """
    from accelerate import PartialState
    from accelerate.utils import set_seed

    spec = BiEncoderSpec.model_validate(spec)
    out_dir = Path(out_dir)
    settings = LoopSettings.from_spec(spec.training, seed)
    data = load_student_data(pairs, requests, items)
    examples = sample_examples(data.train, spec.training.max_train_pairs, settings.seed)
    set_seed(settings.seed)
    # Loaded on the CPU: Accelerate moves it to this process's device.
    model = load_biencoder(
        spec.model,
        max_seq_length=spec.max_seq_length,
        trust_remote_code=spec.trust_remote_code,
        device="cpu",
    )
    if spec.finetune == "lora":
        add_lora(model, spec.lora)
    hard = (
        bm25_hard_negatives(data, examples, spec, settings.seed)
        if spec.hard_negatives.count
        else None
    )
    task = BiEncoderTask.from_spec(
        model,
        data,
        examples,
        spec,
        settings,
        hard_negatives=hard,
        item_groups=load_item_cities(items) if spec.batch_grouping == "city" else None,
    )
    result = train_loop(
        task,
        settings,
        out_dir,
        resume=resume,
        description="bi-encoder",
        settings_key="students.biencoder.training",
        callbacks=callbacks,
    )
    counts = {
        **data.counts(),
        "train_pairs_used": len(examples),
        "dev_catalog_items": len(task.dev_items),
    }
    if PartialState().is_main_process:
        info = {
            "kind": "biencoder",
            "base_model": base_model_identity(spec.model),
            "finetune": spec.finetune,
            "lora": spec.lora.model_dump() if spec.finetune == "lora" else None,
            "loss": spec.loss,
            "max_length": spec.max_seq_length,
            "hard_negatives": spec.hard_negatives.model_dump(),
            "batch_grouping": spec.batch_grouping,
            "data_counts": counts,
            "training": training_record(result, settings),
            "dev": {"start": result.state.start_metrics, "best": result.state.best_metrics},
            "provenance": provenance or {},
        }
        publish_student(result, out_dir, info, title=f"BiEnc-Mint ({spec.loss}, {spec.finetune})")
    return summary_of(result, counts)

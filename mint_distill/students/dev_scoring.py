"""A bi-encoder scored on a run's synthetic dev split, the way `train-biencoder` selects its checkpoint.

Each run selects its student on its own dev split, so runs whose training data differ (another
teacher, another data source) have dev figures that cannot be compared. Scoring them all on one
run's split can: the ablation report does this with the main run's split.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from ..models.precision import resolve_mixed_precision
from ..recipe.sections.students import BiEncoderSpec
from .biencoder import BiEncoderTask, embed
from .data import ITEMS_FILE, PAIRS_FILE, REQUESTS_FILE, StudentData, load_student_data
from .loop import LoopSettings


def run_dev_data(run_root: Path) -> StudentData:
    """The kept pairs of a finished run (`filter/`, `generate/`, `data/`) with their texts."""
    return load_student_data(
        run_root / "filter" / PAIRS_FILE,
        run_root / "generate" / REQUESTS_FILE,
        run_root / "data" / ITEMS_FILE,
    )


@dataclass
class DevScores:
    """Dev measures (`loss`, `mrr@10`, `recall@10`) and each dev pair's own in-batch loss, the
    per-pair figures a paired test between two models needs (keyed `request_id<TAB>item_id`)."""

    measures: dict[str, float] = field(default_factory=dict)
    pair_losses: dict[str, float] = field(default_factory=dict)


def score_on_dev(
    model_reference: str, data: StudentData, spec: BiEncoderSpec, seed: int
) -> DevScores:
    """Dev loss, MRR@10 and Recall@10 of `model_reference` (a model or a trained student's
    folder, LoRA adapters included) on `data`'s dev split.

    Batches, the sampled dev catalog, the sequence length and the precision are those
    `train-biencoder` uses with `spec` (`seed` where `spec.training.seed` is null), so a run's own
    student scores what its training log reports. Pair losses need the in-batch (MNRL) loss.
    """
    import torch

    from ..evaluation.encoders import load_biencoder

    if not data.dev:
        return DevScores()
    settings = LoopSettings.from_spec(spec.training, seed)
    model, _ = load_biencoder(model_reference)
    model.max_seq_length = spec.max_seq_length
    task = BiEncoderTask.from_spec(model, data, data.train, spec, settings)
    on_gpu = model.device.type == "cuda"
    precision = resolve_mixed_precision(settings.mixed_precision, use_cpu=not on_gpu)
    autocast = (
        torch.autocast(
            model.device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16
        )
        if precision in ("bf16", "fp16")
        else contextlib.nullcontext()
    )
    with autocast:
        measures = task.evaluate(model)
        with torch.no_grad():
            losses = mnrl_pair_losses(task, model) if spec.loss == "mnrl" else {}
    return DevScores(measures, losses)


def mnrl_pair_losses(task: BiEncoderTask, model) -> dict[str, float]:
    """Each dev pair's MNRL term: cross-entropy of its item among its batch's items (their mean
    is the dev loss)."""
    import torch
    import torch.nn.functional as F
    from sentence_transformers.util import cos_sim

    model.eval()
    losses: dict[str, float] = {}
    for batch in task.dev_batches():
        requests, items = task.columns(batch, with_hard_negatives=False)
        queries, documents = embed(model, model, requests + items).split(len(batch))
        scores = cos_sim(queries, documents).float() * task.mnrl_scale
        terms = F.cross_entropy(
            scores, torch.arange(len(batch), device=scores.device), reduction="none"
        )
        losses.update(
            (f"{pair.request_id}\t{pair.item_id}", term)
            for pair, term in zip(batch, terms.tolist())
        )
    return losses

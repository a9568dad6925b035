"""CrEnc-Mint: a cross-encoder that reranks a first stage's candidates for a narrative request.

Initialised from an encoder (e.g. all-mpnet-base-v2) with a new single-logit scoring head,
trained listwise (softmax cross-entropy over 1 positive + mined negatives, the paper's setting)
or pointwise (binary cross-entropy), fully fine-tuned (the paper's setting) or as a LoRA adapter
(peft) on the encoder with the head trained in full. The output is a `CrossEncoder(path)` folder;
with LoRA it holds the adapter and the head only, on the base its `adapter_config.json` names.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..recipe.sections.base import LoraSpec
from ..recipe.sections.students import CrossEncoderSpec
from .biencoder import sample_examples
from .card import base_model_identity
from .data import (
    NegativeGroup,
    StudentData,
    load_dev_rankings,
    load_negatives,
    load_student_data,
)
from .dev_reranking import DevReranking
from .fusion import FUSION_WEIGHTS
from .loop import LoopSettings, TrainerState, train_loop
from .losses import listwise_loss, pointwise_bce_loss
from .outputs import publish_student, summary_of, training_record

log = logging.getLogger(__name__)


def load_crossencoder(
    reference: str,
    *,
    max_length: int = 512,
    trust_remote_code: bool = False,
    device: str | None = None,
):
    """A CrossEncoder with one output logit: a trained cross-encoder as it is (a LoRA-tuned one on
    its base, see `adapters.loading.load_adapted_model`), or an encoder (sentence-transformers or
    plain transformers folder, hub id, `embedded:` model) with a new head.

    Its `predict` returns the raw logit, and the folder it is saved to records that, so a plain
    `CrossEncoder(folder).predict` gives the scores its fusion weight was chosen on.
    """
    import torch
    from sentence_transformers import CrossEncoder

    from ..adapters.bundle import is_adapter_folder
    from ..models import resolve_model

    if is_adapter_folder(Path(reference).expanduser()):
        from ..adapters.loading import load_adapted_model

        model = load_adapted_model(Path(reference).expanduser(), kind="cross-encoder", device=device)
        model.max_seq_length = max_length
        return model
    resolved = resolve_model(reference)
    return CrossEncoder(
        resolved.location,
        num_labels=1,
        max_length=max_length,
        activation_fn=torch.nn.Identity(),
        trust_remote_code=trust_remote_code,
        device=device or ("cuda" if torch.cuda.is_available() else "cpu"),
    )


def head_modules(network) -> list[str]:
    """The modules of a transformers sequence-classification model outside its encoder that hold
    weights: the scoring head (`classifier` for BERT and MPNet), new and trained in full."""
    return [
        name
        for name, module in network.named_children()
        if name != network.base_model_prefix and any(True for _ in module.parameters())
    ]


def add_crossencoder_lora(model, lora: LoraSpec) -> None:
    """Wrap the transformers model of a CrossEncoder in a peft LoRA model: the adapter trains on
    the encoder's `lora.target_modules`, the scoring head (`head_modules`) trains in full.

    Saving the CrossEncoder then writes `adapter_config.json` and `adapter_model.safetensors`
    (the LoRA weights and the head) instead of full weights; `CrossEncoder(folder)`, or
    `adapters.loading.load_adapted_model(folder, kind="cross-encoder")`, loads the base model named
    there with the adapter and the head on top.
    """
    from peft import LoraConfig, get_peft_model

    transformer = model[0]
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        modules_to_save=head_modules(transformer.model),
        bias="none",
    )
    transformer.model = get_peft_model(transformer.model, config)


def predict_logits(model, pairs: Sequence[tuple[str, str]], *, batch_size: int = 32) -> list[float]:
    """The raw logit of each (request, item) pair, whatever activation the folder records.

    sentence-transformers applies a sigmoid to one-label models by default; fusion z-normalises
    scores per request, and z(sigmoid(x)) orders fused lists differently from z(x), so every
    score that is fused, or that a fusion weight is chosen on, is a logit.
    """
    import torch

    if not pairs:
        return []
    scores = model.predict(
        list(pairs),
        batch_size=batch_size,
        activation_fn=torch.nn.Identity(),
        convert_to_tensor=True,
        show_progress_bar=False,
    )
    return scores.float().cpu().tolist()


def rerank(
    model,
    query: str,
    candidates: Mapping[str, str] | Sequence[tuple[str, str]],
    *,
    top_k: int | None = None,
    batch_size: int = 32,
) -> list[tuple[str, float]]:
    """(candidate id, score) best first, for `candidates` given as id -> text or (id, text) pairs.

    Scores are the cross-encoder's raw logits (no sigmoid), so they are comparable across requests
    only in order, not in scale.
    """
    pairs = list(candidates.items()) if isinstance(candidates, Mapping) else list(candidates)
    scores = predict_logits(model, [(query, text) for _, text in pairs], batch_size=batch_size)
    ranked = sorted(zip((identifier for identifier, _ in pairs), scores), key=lambda pair: -pair[1])
    return ranked[:top_k] if top_k is not None else ranked


def group_scores(flat, lengths: list[int]):
    """Split a flat score vector into a (groups, longest) matrix padded with -inf, and its mask."""
    import torch

    width = max(lengths)
    padded = flat.new_full((len(lengths), width), float("-inf"))
    mask = torch.zeros((len(lengths), width), dtype=torch.bool, device=flat.device)
    start = 0
    for row, length in enumerate(lengths):
        padded[row, :length] = flat[start : start + length]
        mask[row, :length] = True
        start += length
    return padded, mask


class CrossEncoderTask:
    """Listwise groups (request, positive, negatives) for `train_loop`."""

    evaluate_at_start = False  # a new scoring head ranks at random: nothing worth keeping yet

    def __init__(
        self,
        model,
        data: StudentData,
        groups: list[NegativeGroup],
        dev_groups: list[NegativeGroup],
        *,
        dev_reranking: DevReranking | None = None,
        fusion_weights: Sequence[float] = FUSION_WEIGHTS,
        loss: str = "listwise",
        batch_size: int = 4,
    ):
        self.model, self.data, self.groups, self.dev_groups = model, data, groups, dev_groups
        self.dev_reranking, self.fusion_weights = dev_reranking, fusion_weights
        self.loss_name, self.batch_size = loss, batch_size

    def num_examples(self) -> int:
        return len(self.groups)

    def batch_footprints(self) -> None:
        return None

    def batch_groups(self) -> None:
        return None

    def scores(self, wrapped, pairs: list[tuple[str, str]]):
        from sentence_transformers.util import batch_to_device

        # A plain dict, as in `biencoder.embed`: DDP finds the tensors of dict outputs only.
        features = batch_to_device(dict(self.model.preprocess(pairs)), self.model.device)
        return wrapped(features)["scores"].squeeze(-1)

    def loss_on(self, wrapped, groups: Sequence[NegativeGroup]):
        pairs, lengths = [], []
        for group in groups:
            request = self.data.requests[group.request_id]
            pairs += [
                (request, self.data.items[item]) for item in (group.item_id, *group.negatives)
            ]
            lengths.append(1 + len(group.negatives))
        padded, mask = group_scores(self.scores(wrapped, pairs), lengths)
        if self.loss_name == "bce":
            return pointwise_bce_loss(padded, mask)
        return listwise_loss(padded)

    def loss(self, wrapped, indices: list[int], gather: bool):
        return self.loss_on(wrapped, [self.groups[i] for i in indices])

    def evaluate(self, model) -> dict[str, float]:
        """Dev loss on the dev groups, MRR@10 / Recall@10 of reranking each dev request's
        first-stage candidates (`DevReranking`), and the same for the best `fuse` of these scores
        with the first stage's (`fused_*`, at `fusion_weight`), from one scoring of each dev pair."""
        import torch

        if not self.dev_groups:
            return {}
        to_score: dict[str, dict[str, None]] = defaultdict(dict)
        for group in self.dev_groups:
            to_score[group.request_id].update(dict.fromkeys((group.item_id, *group.negatives)))
        if self.dev_reranking is not None:
            for request_id, items in self.dev_reranking.candidates.items():
                to_score[request_id].update(dict.fromkeys(items))
        model.eval()
        with torch.no_grad():
            scored = self._score_dev_pairs(model, to_score)
        rows = [[scored[g.request_id, item] for item in (g.item_id, *g.negatives)] for g in self.dev_groups]
        padded, mask = group_scores(torch.tensor([s for row in rows for s in row]), [len(row) for row in rows])
        loss = pointwise_bce_loss(padded, mask) if self.loss_name == "bce" else listwise_loss(padded)
        measures = {"loss": loss.item()}
        if self.dev_reranking is not None and self.dev_reranking.candidates:
            weight, fused = self.dev_reranking.fused_measures(scored, self.fusion_weights)
            measures.update(self.dev_reranking.measures(scored))
            measures.update({f"fused_{name}": value for name, value in fused.items()}, fusion_weight=weight)
        return measures

    def _score_dev_pairs(self, model, candidates: Mapping[str, Mapping[str, None]]) -> dict[tuple[str, str], float]:
        """(request id, item id) -> raw score, every pair scored once in length-sorted batches."""
        keys = [(request_id, item) for request_id, items in candidates.items() for item in items]
        scores = predict_logits(
            model,
            [(self.data.requests[request_id], self.data.items[item]) for request_id, item in keys],
            batch_size=self.batch_size * 8,
        )
        return dict(zip(keys, scores))

    def save(self, model, folder: Path) -> None:
        model.save(str(folder), create_model_card=False)


def train_crossencoder(
    spec: CrossEncoderSpec | dict,
    *,
    pairs: str | Path,
    requests: str | Path,
    items: str | Path,
    negatives: str | Path,
    out_dir: str | Path,
    seed: int,
    dev_rankings: str | Path | None = None,
    resume: bool = False,
    provenance: dict[str, Any] | None = None,
    callbacks: Sequence[Callable[[TrainerState], None]] = (),
) -> dict[str, Any]:
    """Train CrEnc-Mint on `negatives.jsonl` groups; write `out_dir/model`, `log.jsonl`, `loss.png`.

    With `dev_rankings` (the bi-encoder's ranking of the catalog for each dev request), the dev
    MRR@10 / Recall@10 are those of reranking its top `rerank_top_k`, the task the cross-encoder
    does at test time; the bi-encoder's own order on those candidates is recorded beside them.
    Same contract as `train_biencoder` (works under `accelerate launch`, main process writes).
    """
    from accelerate import PartialState
    from accelerate.utils import set_seed

    spec = CrossEncoderSpec.model_validate(spec)
    out_dir = Path(out_dir)
    settings = LoopSettings.from_spec(spec.training, seed)
    data = load_student_data(pairs, requests, items)
    groups = load_negatives(negatives, data)
    train_groups = sample_examples(groups["train"], spec.training.max_train_pairs, settings.seed)
    set_seed(settings.seed)  # the new scoring head is initialised from this seed
    model = load_crossencoder(  # on the CPU: Accelerate moves it to this process's device
        spec.model,
        max_length=spec.max_length,
        trust_remote_code=spec.trust_remote_code,
        device="cpu",
    )
    if spec.finetune == "lora":
        add_crossencoder_lora(model, spec.lora)
    dev_reranking = (
        DevReranking.from_rankings(load_dev_rankings(dev_rankings, data), data, spec.rerank_top_k)
        if dev_rankings is not None
        else None
    )
    if dev_reranking is not None and not dev_reranking.candidates and spec.fusion_weight is None:
        log.warning(
            "no dev request has a kept item in the first stage's top %d: the fusion weight cannot be "
            "chosen on dev, so the cross-encoder ranks its candidates alone (weight 1)",
            spec.rerank_top_k,
        )
    task = CrossEncoderTask(
        model,
        data,
        train_groups,
        groups["dev"],
        dev_reranking=dev_reranking,
        fusion_weights=FUSION_WEIGHTS if spec.fusion_weight is None else (spec.fusion_weight,),
        loss=spec.loss,
        batch_size=settings.batch_size,
    )
    result = train_loop(
        task,
        settings,
        out_dir,
        resume=resume,
        description="cross-encoder",
        settings_key="students.crossencoder.training",
        callbacks=callbacks,
    )
    counts = {
        **data.counts(),
        "train_groups": len(groups["train"]),
        "train_groups_used": len(train_groups),
        "dev_groups": len(groups["dev"]),
        "negatives_per_group": max((len(g.negatives) for g in train_groups), default=0),
    }
    fusion_weight = (result.state.best_metrics or {}).get("fusion_weight", spec.fusion_weight)
    first_stage = {}
    if dev_reranking is not None:
        counts["dev_reranked_requests"] = len(dev_reranking.candidates)
        counts["dev_requests_without_kept_items_in_top_k"] = dev_reranking.requests_without_kept_items
        first_stage = dev_reranking.first_stage_measures()
    if PartialState().is_main_process:
        info = {
            "kind": "crossencoder",
            "base_model": base_model_identity(spec.model),
            "finetune": spec.finetune,
            "lora": spec.lora.model_dump() if spec.finetune == "lora" else None,
            "loss": spec.loss,
            "max_length": spec.max_length,
            "fusion_weight": fusion_weight,
            "rerank_top_k": spec.rerank_top_k,
            "data_counts": counts,
            "training": training_record(result, settings),
            "dev": {
                "start": result.state.start_metrics,
                "best": result.state.best_metrics,
                "first_stage": first_stage,
            },
            "provenance": provenance or {},
        }
        publish_student(result, out_dir, info, title=f"CrEnc-Mint ({spec.loss}, {spec.finetune})")
    summary = summary_of(result, counts)
    summary.update({f"dev_{name}_first_stage": round(value, 4) for name, value in first_stage.items()})
    summary["fusion_weight"] = fusion_weight
    return summary

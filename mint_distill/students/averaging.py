"""WiSE-FT (Wortsman et al., 2022): save a student part way between its zero-shot base and its fine-tuned self.

Averaging the weights of a fine-tuned model with those of the model it started from often ranks
better than either on text unlike the training data, which is the case of a student trained on
synthetic requests and served on real ones. The saved weights are `base + w * (trained - base)`;
for a LoRA student that is its update `B·A` scaled by `w` (B starts at zero), so only `lora_B` is
averaged and the adapter stays an adapter.

This is its own stage (`average-biencoder`) after training, so that changing the weight or the
length the student encodes at re-saves the trained student instead of training it again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import NamedTuple

from ..adapters.bundle import ADAPTER_WEIGHTS, is_adapter_folder, replace_folder
from .card import INFO_FILE, write_model_card


class SavedStudent(NamedTuple):
    averaged_tensors: int  # 0 at finetuned_weight 1
    inference_max_length: int


def save_averaged_student(
    trained: Path,
    out: Path,
    *,
    base_model: str,
    finetuned_weight: float,
    inference_max_seq_length: int | None = None,
    trust_remote_code: bool = False,
) -> SavedStudent:
    """Copy the student in `trained` to `out`, averaged with `base_model` and set to encode
    `inference_max_seq_length` tokens (its training length when None)."""
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(trained, staging)
    changed = 0
    if finetuned_weight < 1.0:
        if is_adapter_folder(staging):
            changed = _scale_lora_update(staging / ADAPTER_WEIGHTS, finetuned_weight)
        else:
            changed = _average_full_model(staging, base_model, finetuned_weight, trust_remote_code)
    info = json.loads((staging / INFO_FILE).read_text(encoding="utf-8"))
    length = inference_max_seq_length or info["max_length"]
    _set_encoding_length(staging, length)
    info.update(inference_max_length=length, finetuned_weight=finetuned_weight)
    write_model_card(staging, info)
    replace_folder(staging, out)
    return SavedStudent(changed, length)


def _scale_lora_update(weights_file: Path, finetuned_weight: float) -> int:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(weights_file), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(weights_file))
    scaled = [name for name in tensors if "lora_B" in name or "lora_embedding_B" in name]
    for name in scaled:
        tensors[name] = tensors[name] * finetuned_weight
    save_file(tensors, str(weights_file), metadata=metadata)
    return len(scaled)


def _average_full_model(
    folder: Path, base_model: str, finetuned_weight: float, trust_remote_code: bool
) -> int:
    import torch

    from .biencoder import load_biencoder

    model = load_biencoder(str(folder), trust_remote_code=trust_remote_code, device="cpu")
    base = load_biencoder(base_model, trust_remote_code=trust_remote_code, device="cpu").state_dict()
    changed = 0
    with torch.no_grad():
        for name, weights in model.state_dict().items():
            if weights.is_floating_point():
                weights.copy_(base[name] + finetuned_weight * (weights - base[name]))
                changed += 1
    model.save(str(folder), create_model_card=False)
    return changed


def _set_encoding_length(folder: Path, length: int) -> None:
    """Sentence-transformers truncates at its tokenizer's `model_max_length`, saved with the tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.model_max_length = length
    tokenizer.save_pretrained(str(folder))

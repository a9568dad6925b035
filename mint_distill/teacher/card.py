"""The adapter card: a README.md beside the PEFT weights saying what they are and how they were made."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..io import write_text_atomic


def write_adapter_card(
    adapter_dir: str | Path,
    *,
    summary: dict,
    hyperparameters: dict,
    seeds_file: str,
    seeds_sha256: str,
) -> Path:
    """Write `README.md` (Hugging Face model-card layout) into the adapter folder."""
    adapter_dir = Path(adapter_dir)
    front = {
        "library_name": "peft",
        "base_model": summary["base_model"],
        "tags": ["mint-distill", "narrative-driven-recommendation", "lora"],
    }
    rows = "\n".join(f"| {key} | {_cell(value)} |" for key, value in hyperparameters.items())
    epochs = summary["dev_loss_by_epoch"]
    by_epoch = ("; at the end of epoch " + ", ".join(f"{e}: {loss}" for e, loss in epochs.items())) if epochs else ""
    text = f"""---
{yaml.safe_dump(front, sort_keys=False).strip()}
---

# Mint teacher adapter

A LoRA adapter that makes `{summary["base_model"]}` write the narrative request (as posted on
Reddit) that a user with a given review history might write, in the Mint prompt format.
Made by `mint-distill tune-teacher`.

## Base model
- reference: `{summary["base_model"]}`
- weights sha256: `{summary["base_weights_sha256"]}`

## Data
- seed pairs: `{seeds_file}` (sha256 `{seeds_sha256}`)
- {summary["train_seeds"]} train seeds, {summary["dev_seeds"]} dev seeds; hand-written requests for real review histories
- mean prompt length: {summary["prompt_tokens_mean"]} tokens

## Hyperparameters
| key | value |
|---|---|
{rows}

## Results
- optimizer steps: {summary["steps"]} ({summary["train_seconds"]} s, {summary["processes"]} process(es))
- train loss (request tokens): first step {summary["train_loss_first"]}, last step {summary["train_loss_last"]}
- dev loss (request tokens): before tuning {summary["dev_loss_before"]}, after tuning {summary["dev_loss_after"]}{by_epoch}
- kept: the adapter of step {summary["kept_step"]} (epoch {summary["kept_epoch"]}; `select_by: {summary["select_by"]}`)

## Use
```python
from peft import PeftModel
from transformers import AutoModelForCausalLM

base = AutoModelForCausalLM.from_pretrained("<base model folder or hub id>")
teacher = PeftModel.from_pretrained(base, "{adapter_dir.name}").merge_and_unload()
```
"""
    path = adapter_dir / "README.md"
    write_text_atomic(path, text)
    return path


def _cell(value) -> str:
    return f"`{value}`" if isinstance(value, (list, str)) else str(value)

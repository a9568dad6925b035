"""What a trained student folder says about itself: `mint-student.json` and a model card.

`mint-student.json` is the machine-readable record (base model and its weights' sha256,
fine-tuning method, training settings and counts, dev measures, recipe provenance) that
domain-adapter bundles and reports read; `README.md` is the Hugging Face style card for people.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..io import read_json, write_json_atomic, write_text_atomic
from ..pipeline.manifest import library_versions

INFO_FILE = "mint-student.json"


def recorded(model_dir: str | Path, key: str) -> Any:
    """What a student folder's `mint-student.json` records under `key`, or None (no file or key)."""
    info = Path(model_dir).expanduser() / INFO_FILE
    return read_json(info).get(key) if info.is_file() else None
CARD_FILE = "README.md"

_TITLES = {"biencoder": "BiEnc-Mint", "crossencoder": "CrEnc-Mint"}
_PIPELINES = {"biencoder": "sentence-similarity", "crossencoder": "text-ranking"}


def base_model_identity(reference: str) -> dict[str, Any]:
    """Reference, resolved location and weights sha256 of the base model (sha None where unknown)."""
    from ..errors import MintError
    from ..models import resolve_model

    resolved = resolve_model(reference, check_hub=False)
    try:
        digest = resolved.weights_sha256()
    except (MintError, OSError, ValueError):  # a hub model not in the local cache
        digest = None
    return {"reference": reference, "location": resolved.location, "weights_sha256": digest}


def write_model_card(folder: str | Path, info: dict[str, Any]) -> None:
    """Write `mint-student.json` and `README.md` into a saved student folder."""
    folder = Path(folder)
    info = {**info, "versions": library_versions()}
    write_json_atomic(folder / INFO_FILE, info)
    write_text_atomic(folder / CARD_FILE, render_card(info))


def render_card(info: dict[str, Any]) -> str:
    kind = info["kind"]
    base = info["base_model"]
    front = {
        "library_name": "sentence-transformers",
        "pipeline_tag": _PIPELINES[kind],
        "base_model": base.get("hub_id") or base["reference"],
        "tags": [
            "mint-distill",
            "narrative-driven-recommendation",
            kind,
            *(["peft", "lora"] if info.get("finetune") == "lora" else []),
        ],
    }
    provenance = info.get("provenance") or {}
    title = f"{_TITLES[kind]}" + (
        f" ({provenance['recipe_name']})" if provenance.get("recipe_name") else ""
    )
    sections = [
        "---\n" + yaml.safe_dump(front, sort_keys=False) + "---",
        f"# {title}",
        _summary(info),
        _table("Training data", info.get("data_counts") or {}),
        _training(info),
        _dev(info),
        _table(
            "Provenance",
            {
                "recipe": provenance.get("recipe_name"),
                "recipe sha256": provenance.get("recipe_sha256"),
                "stage config hash": provenance.get("config_hash"),
                "base model": base["reference"],
                "base weights sha256": base.get("weights_sha256"),
                **{
                    f"{name} version": version
                    for name, version in (info.get("versions") or {}).items()
                },
            },
        ),
        _usage(kind, info.get("finetune")),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _summary(info: dict[str, Any]) -> str:
    kind = info["kind"]
    what = (
        "a bi-encoder that embeds narrative requests and catalog items into one space"
        if kind == "biencoder"
        else "a cross-encoder that scores a (narrative request, item) pair, for reranking a first stage's top items"
    )
    how = "LoRA adapter on" if info.get("finetune") == "lora" else "fine-tuned from"
    return (
        f"This is {what}, {how} `{info['base_model']['reference']}`, trained by "
        "mint-distill with the Mint method (arXiv 2306.02250): synthetic "
        "narrative requests written by a teacher LLM from users' review histories, filtered by a "
        "language model to the items that best explain each request."
    )


def _training(info: dict[str, Any]) -> str:
    training = info.get("training") or {}
    rows = {
        "loss": info.get("loss"),
        "max sequence length (training)": info.get("max_length"),
        "max sequence length (inference)": info.get("inference_max_length"),
        "weight of the fine-tuned model (WiSE-FT)": info.get("finetuned_weight"),
        "fine-tuning": info.get("finetune"),
        "LoRA": json.dumps(info["lora"]) if info.get("lora") else None,
        **{key.replace("_", " "): value for key, value in (training.get("settings") or {}).items()},
        "optimizer steps": training.get("steps"),
        "examples seen": training.get("examples_seen"),
        "stopped early": training.get("stopped_early"),
        "kept step (best on dev)": training.get("best_step"),
    }
    return _table("Training", rows)


def _dev(info: dict[str, Any]) -> str:
    dev = info.get("dev") or {}
    best = dev.get("best") or {}
    if not best:
        return "## Dev measures\n\nNo dev pairs: the last step was kept."
    if dev.get("first_stage"):
        reference, column = dev["first_stage"], "the bi-encoder's own order"
        what = (
            "Reranking the bi-encoder's top k for the held-out synthetic dev requests (their kept items "
            "as relevant); `fused_*`: the scores fused with the bi-encoder's at `fusion_weight`."
        )
    else:
        reference, column = dev.get("start") or {}, "before training"
        what = "On the held-out synthetic dev requests (their kept items as relevant), before training and at the kept step."
        if (info.get("finetuned_weight") or 1.0) < 1.0:
            what += " Both were measured before the kept step was averaged with the base model."
    lines = ["## Dev measures", "", what, "", f"| measure | {column} | kept step |", "|---|---|---|"]
    lines += [
        f"| {name} | {_fmt(reference.get(name))} | {_fmt(value)} |" for name, value in best.items()
    ]
    return "\n".join(lines)


def _usage(kind: str, finetune: str | None) -> str:
    if kind == "biencoder":
        code = (
            "from sentence_transformers import SentenceTransformer\n\n"
            'model = SentenceTransformer("path/to/this/folder")\n'
            'requests = model.encode(["Visiting Boston with my partner; we love quiet wine bars..."])\n'
            "items = model.encode(item_texts)\n"
            "scores = model.similarity(requests, items)"
        )
        note = (
            " The folder holds a PEFT adapter; its base model must be available."
            if finetune == "lora"
            else ""
        )
    else:
        code = (
            "from sentence_transformers import CrossEncoder\n\n"
            'model = CrossEncoder("path/to/this/folder")\n'
            "scores = model.predict([(request, item_text) for item_text in candidates])  # logits"
        )
        note = (
            " `fusion_weight` (in `mint-student.json`) was chosen for z(these logits) against z(the"
            " bi-encoder's scores), each z-normalised over a request's top `rerank_top_k` candidates."
        )
        if finetune == "lora":
            note += " The folder holds a PEFT adapter and the scoring head; its base model must be available."
    return f"## Usage\n\n```python\n{code}\n```\n{note}".rstrip()


def _table(title: str, rows: dict[str, Any]) -> str:
    shown = {key: value for key, value in rows.items() if value is not None}
    if not shown:
        return ""
    body = "\n".join(f"| {key} | {_fmt(value)} |" for key, value in shown.items())
    return f"## {title}\n\n| | |\n|---|---|\n{body}"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")

"""The bundle's README.md: a Hugging Face style model card built from its manifest and recipe."""

from __future__ import annotations

from typing import Any

import yaml

_PREFERRED_MEASURES = ("NDCG@5", "NDCG@10", "MAP", "MRR", "P@5", "R@100")


def render_card(manifest: dict[str, Any], recipe: dict | None) -> str:
    """Markdown with YAML front matter (library_name, base_model, tags, license)."""
    domain = manifest["domain"]
    biencoder = manifest["components"]["biencoder"]
    base = biencoder["base_model"]
    base_name = base["hub_id"] or base["reference"]
    front = {
        "library_name": "sentence-transformers",
        "base_model": base_name,
        "pipeline_tag": "sentence-similarity",
        "tags": [
            "sentence-transformers",
            "peft",
            "lora",
            "mint-distill",
            "narrative-driven-recommendation",
            f"domain-{domain}",
        ],
        "license": manifest.get("license", "other"),
    }
    sections = [
        "---\n" + yaml.safe_dump(front, sort_keys=False) + "---",
        f"# mint-distill domain adapter: `{domain}`",
        manifest.get("description") or "",
        (
            f"A LoRA adapter for the bi-encoder `{base_name}` that ranks `{domain}` items for narrative requests "
            '(long free-text requests such as "heading to Lisbon with my partner, we love quiet bars with live '
            'music..."). It was trained with the Mint method (arXiv 2306.02250): an LLM teacher wrote the request '
            "each user of a review dataset might post from their liked items, a language model kept the items that "
            "best explain each request, and the student encoder was tuned on the resulting (request, item) pairs."
        ),
        _usage(domain),
        _how_made(manifest, recipe),
        _training_data(manifest.get("training_data") or {}),
        _evaluation(manifest.get("evaluation") or {}),
        _components(manifest["components"]),
        _versions(manifest.get("versions") or {}),
        (
            "## Limitations and terms\n\n"
            "The training requests are synthetic (written by an LLM) and the items come from the training source "
            "named above; check that source's terms before using the adapter beyond research. The adapter only "
            "works on the exact base weights listed under Components (`mint-distill` checks their sha256). "
            "`mint-distill adapters verify` re-hashes every file of this bundle."
        ),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _usage(domain: str) -> str:
    return (
        "## Use it\n\n"
        "```python\n"
        "from mint_distill.adapters import load_bundle\n\n"
        f'model = load_bundle("adapters/{domain}")  # verifies the files and the base model\'s sha256\n'
        'embeddings = model.encode(["Looking for ... Any suggestions?"])\n'
        "```\n\n"
        "Without mint-distill, where the base model can be fetched from the Hugging Face hub:\n\n"
        "```python\n"
        "from sentence_transformers import SentenceTransformer\n\n"
        f'model = SentenceTransformer("adapters/{domain}/biencoder")\n'
        "```\n\n"
        "From the command line:\n\n"
        "```bash\n"
        f'mint-distill recommend --encoder adapters/{domain} --catalog items.jsonl "your request"\n'
        f"mint-distill export adapters/{domain} --out exports/{domain} --int8   # merged + ONNX for CPUs\n"
        "```"
    )


def _how_made(manifest: dict[str, Any], recipe: dict | None) -> str:
    rows: list[tuple[str, str]] = []
    recorded = manifest.get("recipe")
    if recorded:
        rows.append(("recipe", f"`{recorded['name']}` (`{recorded['file']}`, sha256 `{recorded['sha256'][:16]}…`)"))
    if recipe:
        source = _get(recipe, "data.source") or {}
        rows.append(("training source", f"`{source.get('format')}` from `{source.get('path')}`"))
        teacher = _get(recipe, "teacher") or {}
        if teacher.get("kind") == "llm":
            tuned = (
                "LoRA-tuned on `" + str(_get(teacher, "tuning.seeds")) + "`"
                if _get(teacher, "tuning.enabled")
                else "not tuned"
            )
            rows.append(
                (
                    "teacher",
                    f"`{teacher.get('model')}`, {tuned}, {_get(teacher, 'prompt.num_examples')} examples per prompt",
                )
            )
        else:
            rows.append(("teacher", f"`{teacher.get('kind')}`"))
        filtering = _get(recipe, "filter") or {}
        rows.append(
            (
                "filter",
                f"{filtering.get('method')} with `{filtering.get('model')}`, "
                f"keep fraction {filtering.get('keep_fraction')}",
            )
        )
        student = _get(recipe, "students.biencoder") or {}
        training = student.get("training") or {}
        inference_length = student.get("inference_max_seq_length") or "the same"
        rows.append(
            (
                "student training",
                f"{student.get('loss')} loss, {training.get('epochs')} epoch(s), "
                f"learning rate {training.get('learning_rate')}, "
                f"batch size {training.get('batch_size')}, max sequence length {student.get('max_seq_length')} "
                f"(inference: {inference_length})"
                + _averaging(student.get("finetuned_weight")),
            )
        )
    if not rows:
        return ""
    return "## How it was made\n\n| step | setting |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def _averaging(finetuned_weight: float | None) -> str:
    if finetuned_weight is None or finetuned_weight >= 1.0:
        return ""
    return f"; saved averaged with its base, the update scaled by {finetuned_weight} (WiSE-FT)"


def _training_data(summaries: dict[str, Any]) -> str:
    rows = [
        f"| {stage} | {key} | {_fmt(value)} |"
        for stage, summary in summaries.items()
        if isinstance(summary, dict)
        for key, value in summary.items()
        if isinstance(value, (int, float, str)) and not isinstance(value, bool)
    ]
    if not rows:
        return ""
    return "## Training data\n\n| stage | count | value |\n|---|---|---|\n" + "\n".join(rows)


def _evaluation(evaluation: dict[str, Any]) -> str:
    if not evaluation:
        return "## Evaluation\n\nNot evaluated (no evaluate stage output when the bundle was written)."
    table = _find_metric_table(evaluation)
    if table is None:
        rows = [f"| {key} | {_fmt(value)} |" for key, value in _flatten(evaluation)]
        return "## Evaluation\n\n| figure | value |\n|---|---|\n" + "\n".join(rows)
    measures = sorted({m for values in table.values() for m in values}, key=_measure_order)
    lines = ["| ranker | " + " | ".join(measures) + " |", "|---" * (len(measures) + 1) + "|"]
    for name, values in table.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(values.get(m, "")) for m in measures) + " |")
    return "## Evaluation\n\n" + "\n".join(lines)


def _find_metric_table(node: Any, depth: int = 0) -> dict[str, dict[str, float]] | None:
    """The first mapping of names to {measure: number} mappings, at most two levels down."""
    if not isinstance(node, dict) or depth > 2:
        return None
    if node and all(
        isinstance(v, dict) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v.values())
        for v in node.values()
    ):
        return node
    for value in node.values():
        found = _find_metric_table(value, depth + 1)
        if found is not None:
            return found
    return None


def _measure_order(name: str) -> tuple[int, str]:
    return (_PREFERRED_MEASURES.index(name) if name in _PREFERRED_MEASURES else len(_PREFERRED_MEASURES), name)


def _flatten(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [pair for key, value in node.items() for pair in _flatten(value, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), node)]


def _components(components: dict[str, Any]) -> str:
    lines = [
        "## Components\n",
        "| component | base model | base weights sha256 | LoRA r | alpha | target modules | adapter size |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in components.items():
        base, lora = entry["base_model"], entry["lora"]
        targets = lora["target_modules"]
        targets = ", ".join(targets) if isinstance(targets, list) else str(targets)
        lines.append(
            f"| `{name}/` | `{base['reference']}`"
            + (f" (`{base['hub_id']}`)" if base.get("hub_id") else "")
            + f" | `{base['weights_sha256'][:16]}…` | {lora['r']} | {lora['alpha']} | {targets} | "
            f"{entry['adapter_bytes'] / 1e6:.1f} MB |"
        )
    return "\n".join(lines)


def _versions(versions: dict[str, str]) -> str:
    if not versions:
        return ""
    return "## Library versions\n\n" + ", ".join(f"{name} {version}" for name, version in versions.items())


def _get(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)

"""Does a LoRA's `target_modules` name a layer of its model? Checked before a run starts, since
peft finds out only when that model's training begins: for a student, after every text stage."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..errors import MintError
from .resolver import resolve_model

if TYPE_CHECKING:
    from ..recipe.sections.base import LoraSpec

Head = Literal["none", "causal-lm", "sequence-classification"]
_AUTO_CLASSES = {
    "none": "AutoModel",
    "causal-lm": "AutoModelForCausalLM",
    "sequence-classification": "AutoModelForSequenceClassification",
}


def lora_target_problem(
    reference: str, lora: LoraSpec, key: str, *, head: Head = "none", trust_remote_code: bool = False
) -> str | None:
    """Why `lora.target_modules` would match no layer of the model `reference` with `head`, or None.

    The model is built from its config on the meta device (no weights are read). None too when the
    config is not in a folder here (a hub id, a missing model: model resolution reports those).
    With the `sequence-classification` head (a cross-encoder), only the encoder's layers count, under
    the names peft sees: the head is trained in full, not adapted.
    """
    if lora.target_modules == "all-linear":
        return None
    try:
        folder = Path(resolve_model(reference, check_hub=False).location)
    except MintError:
        return None
    if not (folder / "config.json").is_file():
        return None

    import torch
    import transformers
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = getattr(transformers, _AUTO_CLASSES[head]).from_config(config, trust_remote_code=trust_remote_code)
    wanted = LoraConfig(target_modules=lora.target_modules)
    modules = dict(model.named_modules())
    if head == "sequence-classification":
        encoder = f"{model.base_model_prefix}."
        modules = {name: module for name, module in modules.items() if name.startswith(encoder)}
    if any(check_target_module_exists(wanted, name) for name in modules if name):
        return None
    linear = sorted({name.rsplit(".", 1)[-1] for name, module in modules.items() if isinstance(module, torch.nn.Linear)})
    return (
        f"{key}.target_modules {lora.target_modules!r} names no layer of {reference}; "
        f"its linear layers are {', '.join(linear)} (or use all-linear)"
    )

"""Does a LoRA's `target_modules` name a layer of the encoder? Checked before a run starts, since
peft finds out only when the bi-encoder's training begins, after every text stage has run."""

from __future__ import annotations

from pathlib import Path

from ..errors import MintError
from ..recipe.sections.base import LoraSpec


def lora_target_problem(reference: str, lora: LoraSpec, key: str, *, trust_remote_code: bool = False) -> str | None:
    """Why `lora.target_modules` would match no layer of the encoder `reference`, or None.

    The encoder is built from its config on the meta device (no weights are read). None too when
    its config is not in a folder here (a hub id, a missing model: model resolution reports those).
    """
    if lora.target_modules == "all-linear":
        return None
    from ..models import resolve_model

    try:
        folder = Path(resolve_model(reference, check_hub=False).location)
    except MintError:
        return None
    if not (folder / "config.json").is_file():
        return None

    import torch
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        encoder = AutoModel.from_config(config, trust_remote_code=trust_remote_code)
    wanted = LoraConfig(target_modules=lora.target_modules)
    modules = dict(encoder.named_modules())
    if any(check_target_module_exists(wanted, name) for name in modules if name):
        return None
    linear = sorted({name.rsplit(".", 1)[-1] for name, module in modules.items() if isinstance(module, torch.nn.Linear)})
    return (
        f"{key}.target_modules {lora.target_modules!r} names no layer of {reference}; "
        f"its linear layers are {', '.join(linear)} (or use all-linear)"
    )

"""Base class shared by every recipe section: strict, typed, documented keys."""

from pydantic import BaseModel, ConfigDict

from ...models.embedded import EMBEDDED
from ...models.resolver import EMBEDDED_PREFIX


def check_embedded_kind(reference: str, needed: str, key: str, use: str) -> None:
    """Refuse an embedded model of another kind than `needed` at `key` (other models are not
    loaded to check); `use` says what the model is for, in the message."""
    if not reference.startswith(EMBEDDED_PREFIX):
        return
    embedded = EMBEDDED.get(reference.removeprefix(EMBEDDED_PREFIX))
    if embedded and embedded.kind != needed:
        wanted = [f"{EMBEDDED_PREFIX}{name}" for name, m in EMBEDDED.items() if m.kind == needed]
        raise ValueError(
            f"model `{reference}` is a {embedded.kind}; {use} needs a {needed} "
            f"(set {key} to one, e.g. {' or '.join(wanted)})"
        )


class Section(BaseModel):
    """A recipe section. Unknown keys are errors; values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)


class LoraSpec(Section):
    """peft LoRA hyperparameters (teacher, students and domain adapters use the same keys)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"

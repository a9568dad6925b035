"""Base class shared by every recipe section: strict, typed, documented keys."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A recipe section. Unknown keys are errors; values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)


class LoraSpec(Section):
    """peft LoRA hyperparameters (teacher, students and domain adapters use the same keys)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"

"""Base class shared by every recipe section: strict, typed, documented keys."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ...models.embedded import embedded_of_kind, embedded_of_other_kind


def check_embedded_kind(reference: str, needed: str, key: str, use: str) -> None:
    """Refuse an embedded model of another kind than `needed` at `key` (other models are not
    loaded to check); `use` says what the model is for, in the message."""
    embedded = embedded_of_other_kind(reference, needed)
    if embedded:
        raise ValueError(
            f"model `{reference}` is a {embedded.kind}; {use} needs a {needed} "
            f"(set {key} to one, e.g. {' or '.join(embedded_of_kind(needed))})"
        )


# A name that is also a folder or file name: an empty name, `..` or a path would lead outside
# the folder it is meant for (and a rerun clears stage folders there).
ONE_WORD = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"

# numpy (seeded through accelerate's and transformers' set_seed) takes 0 to 2**32 - 1; a seed
# outside that range would fail only when its stage starts, after the stages before it ran.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class Section(BaseModel):
    """A recipe section. Unknown keys are errors; values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)


class LoraSpec(Section):
    """peft LoRA hyperparameters (teacher, students and domain adapters use the same keys)."""

    r: int = Field(16, ge=1, description="rank of the update matrices")
    alpha: int = Field(32, ge=1, description="scaling numerator: the update is scaled by alpha / r")
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | str = Field("all-linear", min_length=1)

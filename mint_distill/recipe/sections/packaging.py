"""`package`: the domain adapter bundle and compact export."""

from __future__ import annotations

from pydantic import Field

from .base import Section


class PackageSection(Section):
    enabled: bool = True
    domain: str = "poi"
    bundle_dir: str | None = Field(None, description="where to write the bundle (default: the run folder)")
    onnx: bool = False
    int8: bool = True

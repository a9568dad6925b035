"""Compact encoders for CPU serving: merged checkpoints, ONNX, int8, parity checks, benchmark.

    from mint_distill.export import export_encoder, OnnxEncoder

    report = export_encoder("adapters/poi", "exports/poi", int8=True)   # prints parity
    encoder = OnnxEncoder("exports/poi", precision="int8")              # no torch import
    embeddings = encoder.encode(["Looking for quiet bars with live music in Lisbon ..."])

Names are imported on first use, so `OnnxEncoder` can be used without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ExportReport": ".exporter",
    "export_encoder": ".exporter",
    "ExportError": ".onnx",
    "OnnxEncoder": ".runtime",
    "is_onnx_export": ".runtime",
    "Parity": ".parity",
    "RankingParity": ".parity",
    "cosine_parity": ".parity",
    "ranking_parity": ".parity",
    "bench_export": ".bench",
    "SAMPLE_TEXTS": ".samples",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)

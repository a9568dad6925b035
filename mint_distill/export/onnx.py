"""Write a sentence-transformers model as ONNX (+ dynamic int8) in the layout its backend reads.

The transformer is exported with `torch.onnx.export` (TorchScript exporter: no extra
dependency) to `onnx/model.onnx`, with `last_hidden_state` as output, the layout of
`SentenceTransformer(folder, backend="onnx")`; pooling and normalisation stay outside the graph
and are recorded in `onnx_encoder.json` for the torch-free runtime (`runtime.OnnxEncoder`).
int8 (`onnx/model_qint8.onnx`) has int8 weights and quantizes activations to int8 at run time,
per tensor, or per block where calibration finds outliers (see `quantize_int8`); its lookup
tables are int8 with one scale per row (`embeddings`).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MintError
from ..io import atomic_path, write_json_atomic
from .calibration import input_spreads
from .embeddings import quantize_lookup_tables
from .runtime import POOLING_MODES, RUNTIME_CONFIG, RUNTIME_FORMAT

FP32_FILE = "onnx/model.onnx"
INT8_FILE = "onnx/model_qint8.onnx"
INT8_BLOCK = 128
# Rounding noise near 9% of the input's rms (see `calibration`); measured on the embedded encoders,
# it keeps 2 of MiniLM's 36 products and 18 of MPNet's 72 on the per-block kernel.
INT8_SPREAD_LIMIT = 80.0
INT8_LOOKUP_TABLES = "int8, one scale per row"  # recorded, so that older int8 exports are recognised
OPSET = 17
_INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")


class ExportError(MintError):
    """The model cannot be exported as asked."""


def runtime_layout(model) -> dict[str, Any]:
    """What the torch-free runtime needs besides the graph: pooling, normalisation, tokenizer
    settings. Raises an ExportError for module stacks it cannot reproduce."""
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    modules = list(model)
    if len(modules) < 2 or not isinstance(modules[0], Transformer) or not isinstance(modules[1], Pooling):
        raise ExportError(f"ONNX export supports Transformer + Pooling (+ Normalize) models; got {_names(modules)}")
    extra = modules[2:]
    if any(not isinstance(module, Normalize) for module in extra):
        raise ExportError(f"ONNX export supports Transformer + Pooling (+ Normalize) models; got {_names(modules)}")
    pooling = modules[1].pooling_mode
    if pooling not in POOLING_MODES:
        raise ExportError(
            f"pooling mode {pooling!r} is not supported by the ONNX runtime (supported: {', '.join(POOLING_MODES)})"
        )
    if getattr(model, "default_prompt_name", None):
        raise ExportError("models with a default prompt are not supported by the ONNX runtime")
    tokenizer = model.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise ExportError("the ONNX runtime needs a fast tokenizer (tokenizer.json)")
    return {
        "format": RUNTIME_FORMAT,
        "format_version": 1,
        "tokenizer": "tokenizer.json",
        "max_seq_length": int(model.max_seq_length),
        "pad_token": tokenizer.pad_token,
        "pad_id": int(tokenizer.pad_token_id),
        "pooling": pooling,
        "normalize": bool(extra),
        "dimension": int(model.get_embedding_dimension()),
        "similarity": getattr(model, "similarity_fn_name", None) or "cosine",
        "output": "last_hidden_state",
    }


def _names(modules) -> str:
    return " + ".join(type(module).__name__ for module in modules)


def export_onnx(model, folder: Path, opset: int = OPSET) -> Path:
    """Export the model's transformer to `folder/onnx/model.onnx`; return that path."""
    import torch

    transformer = model[0].model.eval()
    sample = model.tokenizer(
        ["a short text", "a somewhat longer text to give the sample two lengths"], padding=True, return_tensors="pt"
    )
    names = [name for name in _INPUT_ORDER if name in sample]

    class LastHiddenState(torch.nn.Module):
        def __init__(self, network):
            super().__init__()
            self.network = network

        def forward(self, *inputs):
            return self.network(**dict(zip(names, inputs, strict=True)), return_dict=True).last_hidden_state

    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
    destination = folder / FP32_FILE
    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(destination) as tmp, torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python conditions it freezes; the parity check verifies the graph.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", module=r"torch\.onnx")
        torch.onnx.export(
            LastHiddenState(transformer),
            tuple(sample[name] for name in names),
            str(tmp),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    return destination


def quantize_int8(
    source: Path,
    destination: Path,
    calibration: Iterable[Mapping[str, np.ndarray]],
    *,
    spread_limit: float = INT8_SPREAD_LIMIT,
    block_size: int = INT8_BLOCK,
) -> list[str]:
    """int8 weights, int8 arithmetic, with the activation scales each matrix product needs.

    Products with constant weights whose input spread (`calibration.input_spreads` over the
    `calibration` texts' features) is at most `spread_limit` quantize their input with one scale
    per tensor at run time (onnxruntime's dynamic quantization: the fast u8s8 kernels). The
    others, inputs with outliers, run onnxruntime's MatMulNBits (8 bits) with activations
    quantized per block of `block_size` (accuracy level 4): slower, but one scale per tensor
    would lose them (all-mpnet-base-v2's feed-forward products in layers 6-10 see values of 100
    against an rms near 0.5; quantized per tensor everywhere, its embeddings fell to a cosine of
    0.85 with fp32 on the sample requests). Embedding tables are int8 with one scale per row
    (`embeddings.quantize_lookup_tables`).

    Returns the names of the products left on the per-block kernel.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    spreads = input_spreads(source, calibration)
    per_block = sorted(node for node, spread in spreads.items() if spread > spread_limit)
    with (
        _quiet_quantizers(),
        tempfile.TemporaryDirectory(prefix=".quantize-", dir=destination.parent) as scratch,
        atomic_path(destination) as tmp,
    ):
        lookups = Path(scratch) / "lookups.onnx"
        model = onnx.load(str(source))
        quantize_lookup_tables(model)
        onnx.save(model, str(lookups))
        per_tensor = Path(scratch) / "per-tensor.onnx"
        quantize_dynamic(
            str(lookups),
            str(per_tensor),
            weight_type=QuantType.QInt8,
            per_channel=True,
            # 7-bit weights: on CPUs without VNNI onnxruntime's uint8 x int8 products saturate their
            # 16-bit sums (adapters/poi fell to a cosine of 0.04 with 8-bit weights there).
            reduce_range=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=per_block,
        )
        quantizer = _matmul_nbits_quantizer()(
            str(per_tensor), bits=8, block_size=block_size, is_symmetric=True, accuracy_level=4
        )
        quantizer.process()
        quantizer.model.save_model_to_file(str(tmp), use_external_data_format=False)
    return per_block


def _matmul_nbits_quantizer():
    """The MatMulNBits quantizer class; its module calls `logging.basicConfig(level=INFO)` on
    import, which would make every library log at INFO, so the root logger is restored after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return MatMulNBitsQuantizer


@contextlib.contextmanager
def _quiet_quantizers() -> Iterator[None]:
    """onnxruntime's quantizers log every node at INFO, and advise shape pre-processing on the
    root logger (its symbolic shape inference fails on these graphs; quantization works without)."""

    def keep(record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()

    root = logging.getLogger()
    chatty = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = chatty.level
    root.addFilter(keep)
    chatty.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeFilter(keep)
        chatty.setLevel(level)


def write_runtime_config(folder: Path, layout: dict[str, Any], models: dict[str, str], extra: dict[str, Any]) -> Path:
    path = folder / RUNTIME_CONFIG
    write_json_atomic(path, {**layout, "models": models, **extra})
    return path

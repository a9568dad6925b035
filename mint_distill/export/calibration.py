"""How spread out the inputs of an ONNX encoder's matrix products are, on calibration texts.

int8 with one scale per tensor (onnxruntime's dynamic quantization) rounds every activation of
a product's input to a step of (max - min) / 255. Where a few outlier values stretch that range
far beyond the typical magnitude, most activations fall into a handful of steps. The spread
`(max - min) / rms` measures this: the rounding noise is about spread / 880 of the input's rms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np


def weighted_matmuls(model) -> dict[str, str]:
    """Name of each MatMul node whose second input is a constant weight -> its first input."""
    constants = {initializer.name for initializer in model.graph.initializer}
    return {
        node.name: node.input[0]
        for node in model.graph.node
        if node.op_type == "MatMul" and node.input[1] in constants
    }


def input_spreads(model_path: Path, texts: Iterable[Mapping[str, np.ndarray]]) -> dict[str, float]:
    """(max - min) / rms of each weighted MatMul's input over the tokens of `texts`.

    Each element of `texts` is one text's features (batch of 1, so no padding enters the
    statistics), keyed by the graph's input names.
    """
    import onnx
    import onnxruntime

    model = onnx.load(str(model_path))
    products = weighted_matmuls(model)
    tensors = sorted(set(products.values()))
    graph_outputs = {output.name for output in model.graph.output}
    for name in tensors:
        if name not in graph_outputs:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    wanted = {node.name for node in session.get_inputs()}
    low = dict.fromkeys(tensors, np.inf)
    high = dict.fromkeys(tensors, -np.inf)
    squares = dict.fromkeys(tensors, 0.0)
    counts = dict.fromkeys(tensors, 0)
    for features in texts:
        values = session.run(tensors, {name: array for name, array in features.items() if name in wanted})
        for name, value in zip(tensors, values, strict=True):
            low[name] = min(low[name], float(value.min()))
            high[name] = max(high[name], float(value.max()))
            squares[name] += float(np.square(value, dtype=np.float64).sum())
            counts[name] += value.size
    spreads = {}
    for node, tensor in products.items():
        rms = np.sqrt(squares[tensor] / max(counts[tensor], 1))
        spreads[node] = (high[tensor] - low[tensor]) / rms if rms > 0 else 0.0
    return spreads

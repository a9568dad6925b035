"""int8 export: activation spread of each matrix product, and the kernel it chooses."""

from __future__ import annotations

import collections
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_adapters_support import make_base_encoder

from mint_distill.export import OnnxEncoder, export_encoder
from mint_distill.export.calibration import input_spreads, weighted_matmuls
from mint_distill.export.embeddings import quantize_lookup_tables
from mint_distill.export.onnx import FP32_FILE, quantize_int8


def _model(graph) -> onnx.ModelProto:
    """`graph` at opset 17, stamped with IR version 10: make_model stamps the installed onnx's newest,
    which an older onnxruntime refuses (onnx 1.23 writes 14, onnxruntime 1.30 reads up to 13)."""
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def _two_products(path, first_weight: np.ndarray, second_weight: np.ndarray) -> None:
    """x -> MatMul(first) -> Relu -> MatMul(second) -> y, with a MatMul of x by itself beside."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "first"], ["hidden"], name="first_product"),
            helper.make_node("Relu", ["hidden"], ["activated"], name="relu"),
            helper.make_node("MatMul", ["activated", "second"], ["y"], name="second_product"),
            helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0], name="transpose"),
            helper.make_node("MatMul", ["x", "xt"], ["gram"], name="activation_product"),
        ],
        "two-products",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3]),
            helper.make_tensor_value_info("gram", TensorProto.FLOAT, [None, None]),
        ],
        [numpy_helper.from_array(first_weight, "first"), numpy_helper.from_array(second_weight, "second")],
    )
    onnx.save(_model(graph), str(path))


def test_spread_is_range_over_rms_of_each_weighted_product_input(tmp_path):
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    _two_products(tmp_path / "model.onnx", first, second)
    texts = [rng.normal(size=(n, 4)).astype(np.float32) for n in (3, 6)]
    texts[1][2, 1] = 40.0  # an outlier: the spread is over all texts' tokens together

    spreads = input_spreads(tmp_path / "model.onnx", [{"x": x} for x in texts])

    assert set(spreads) == {"first_product", "second_product"}, "products of two activations have no weights"
    every_x = np.concatenate(texts)
    hidden = np.maximum(every_x @ first, 0)
    for name, values in (("first_product", every_x), ("second_product", hidden)):
        expected = (values.max() - values.min()) / np.sqrt(np.mean(values.astype(np.float64) ** 2))
        assert spreads[name] == pytest.approx(expected, rel=1e-5)


def _lookup(path, ids: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    vectors, again = session.run(None, {"ids": ids})
    assert np.array_equal(vectors, again)
    return vectors


def test_lookup_tables_keep_one_scale_per_row(tmp_path):
    rng = np.random.default_rng(0)
    table = rng.normal(size=(6, 8)).astype(np.float32)
    table[0] *= 100.0  # one row far larger than the rest: a scale for the whole table would flatten them
    table[5] = 0.0
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "ids"], ["vectors"], name="lookup"),
            helper.make_node("Gather", ["table", "ids"], ["again"], name="second_lookup"),
        ],
        "lookup",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [None, None])],
        [
            helper.make_tensor_value_info("vectors", TensorProto.FLOAT, [None, None, 8]),
            helper.make_tensor_value_info("again", TensorProto.FLOAT, [None, None, 8]),
        ],
        [numpy_helper.from_array(table, "table")],
    )
    model = _model(graph)

    assert quantize_lookup_tables(model) == ["lookup", "second_lookup"]
    onnx.save(model, str(tmp_path / "int8.onnx"))

    dtypes = [numpy_helper.to_array(i).dtype for i in model.graph.initializer]
    assert sorted(map(str, dtypes)) == ["float32", "int8"], "one int8 table and its row scales, shared"
    ids = np.array([[1, 0, 5], [4, 2, 3]], dtype=np.int64)
    vectors = _lookup(tmp_path / "int8.onnx", ids)
    expected = table[ids]
    step = np.abs(expected).max(axis=-1, keepdims=True) / 127.0
    assert np.all(np.abs(vectors - expected) <= step / 2 + 1e-6)
    assert np.all(vectors[ids != 5] != 0).item() and np.all(vectors[ids == 5] == 0)


@pytest.fixture(scope="module")
def fp32_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    export_encoder(make_base_encoder(root / "base"), root / "out", int8=False)
    return root / "out"


def _features(folder) -> list[dict[str, np.ndarray]]:
    encoder = OnnxEncoder(folder, "fp32")
    return [encoder.features([text]) for text in ("a short text", "a somewhat longer text about quiet bars and live jazz")]


def _op_counts(path) -> collections.Counter:
    return collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node)


@pytest.mark.parametrize("limit", [0.0, "median", float("inf")])
def test_products_above_the_spread_limit_run_per_block_the_rest_per_tensor(fp32_export, tmp_path, limit):
    source = fp32_export / FP32_FILE
    features = _features(fp32_export)
    spreads = input_spreads(source, features)
    products = len(weighted_matmuls(onnx.load(str(source))))
    if limit == "median":
        limit = float(np.median(list(spreads.values())))
    per_block = quantize_int8(source, tmp_path / "int8.onnx", features, spread_limit=limit)

    assert per_block == sorted(name for name, spread in spreads.items() if spread > limit)
    assert 0 < len(spreads) == products
    ops = _op_counts(tmp_path / "int8.onnx")
    assert ops["MatMulNBits"] == len(per_block)
    assert ops["MatMulInteger"] == products - len(per_block)
    quantized = onnx.load(str(tmp_path / "int8.onnx"))
    remaining = [n for n in quantized.graph.node if n.op_type == "MatMul"]
    assert all(n.name not in spreads for n in remaining), "every weighted product is quantized"
    tables = {i.name: i for i in quantized.graph.initializer}
    lookups = [tables[n.input[0]] for n in quantized.graph.node if n.op_type == "Gather" and n.input[0] in tables]
    assert lookups and {t.data_type for t in lookups} == {TensorProto.INT8, TensorProto.FLOAT}
    assert all(t.dims[1] == 1 for t in lookups if t.data_type == TensorProto.FLOAT), "float tables hold row scales"


def test_export_records_which_products_stay_per_block(tmp_path):
    out = tmp_path / "out"
    export_encoder(make_base_encoder(tmp_path / "base"), out)
    recorded = json.loads((out / "onnx_encoder.json").read_text())["int8"]
    nodes = {n.name: n.op_type for n in onnx.load(str(out / "onnx" / "model_qint8.onnx")).graph.node}
    assert recorded["spread_limit"] > 0
    assert sorted(name for name, op in nodes.items() if op == "MatMulNBits") == recorded["per_block_products"]


def test_cli_spread_limit_reaches_the_quantizer(tmp_path):
    from click.testing import CliRunner

    from mint_distill.cli import cli

    base = make_base_encoder(tmp_path / "base")
    result = CliRunner().invoke(cli, ["export", str(base), "--out", str(tmp_path / "out"), "--int8-spread-limit", "0"])
    assert result.exit_code == 0, result.output
    recorded = json.loads((tmp_path / "out" / "onnx_encoder.json").read_text())["int8"]
    products = weighted_matmuls(onnx.load(str(tmp_path / "out" / FP32_FILE)))
    assert recorded["spread_limit"] == 0 and len(recorded["per_block_products"]) == len(products)


def test_bench_redoes_exports_quantized_another_way(fp32_export, tmp_path):
    from mint_distill.export.bench import _current_export

    current = tmp_path / "current"
    export_encoder(make_base_encoder(tmp_path / "base"), current)
    assert _current_export(current)
    assert not _current_export(fp32_export), "no int8 record: made before spread-limited int8, or without int8"
    config = json.loads((current / "onnx_encoder.json").read_text())
    del config["int8"]["lookup_tables"]
    (current / "onnx_encoder.json").write_text(json.dumps(config))
    assert not _current_export(current), "made before lookup tables were quantized per row"
    assert not _current_export(tmp_path / "missing")

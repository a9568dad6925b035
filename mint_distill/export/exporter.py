"""`export_encoder`: merge LoRA into the base, write a plain sentence-transformers folder, ONNX
and int8 ONNX beside it, and check every variant against the PyTorch model."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..adapters.bundle import replace_folder
from ..errors import MintError
from ..io import output_problem, publish_modes, staging_folder, write_json_atomic
from ..pipeline.manifest import library_versions
from .onnx import (
    FP32_FILE,
    INT8_FILE,
    INT8_LOOKUP_TABLES,
    INT8_SPREAD_LIMIT,
    OPSET,
    export_onnx,
    quantize_int8,
    runtime_layout,
    write_runtime_config,
)
from .parity import (
    NDCG_GOAL_RELATIVE,
    Parity,
    RankingParity,
    cosine_parity,
    ranking_goal_met,
    ranking_parity,
)
from .runtime import is_onnx_export
from .samples import SAMPLE_TEXTS


@dataclass
class ExportReport:
    """What an export wrote and how closely each variant matches the PyTorch model."""

    folder: Path
    source: str
    files: dict[str, int] = field(default_factory=dict)
    parity: list[Parity] = field(default_factory=list)
    ranking: RankingParity | None = None
    notes: list[str] = field(default_factory=list)

    def parity_summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {p.variant: round(p.min_cosine, 6) for p in self.parity}
        if self.ranking is not None:
            summary["ndcg5"] = {name: round(value, 4) for name, value in self.ranking.ndcg5.items()}
        return summary

    def lines(self) -> list[str]:
        """Human-readable report: files, cosine parity per variant, NDCG@5 parity."""
        out = [f"exported {self.source} -> {self.folder}"]
        out += [f"  {name:<28} {size / 1e6:8.1f} MB" for name, size in self.files.items()]
        out.append(
            f"  parity with the PyTorch model on {self.parity[0].texts if self.parity else 0} sample texts "
            "(cosine similarity):"
        )
        for p in self.parity:
            out.append(
                f"    {p.variant:<12} min {p.min_cosine:.6f}  mean {p.mean_cosine:.6f}  "
                f"max |diff| {p.max_abs_difference:.2e}  (goal >= {p.goal}: {'met' if p.met else 'NOT met'})"
            )
        if self.ranking is not None:
            out.append(f"  NDCG@5 on {self.ranking.collection}, {self.ranking.requests} requests:")
            for name, value in self.ranking.ndcg5.items():
                if name == self.ranking.reference:
                    out.append(f"    {name:<12} {value:.4f}")
                    continue
                relative = self.ranking.relative_difference(name)
                met = "met" if ranking_goal_met(relative) else "NOT met"
                out.append(
                    f"    {name:<12} {value:.4f}  "
                    f"({relative:+.2%} relative; goal within {NDCG_GOAL_RELATIVE:.0%}: {met}; "
                    f"{self.ranking.requests_changed(name)} of {self.ranking.requests} requests differ, "
                    f"paired randomization p = {self.ranking.p_value(name):.2f})"
                )
        out += [f"  note: {note}" for note in self.notes]
        return out


EXPORT_RECORD = "mint-export.json"  # what an export came from; marks a folder export may replace


def _refuse_to_replace(out: Path, source: str | os.PathLike) -> None:
    """`out` is replaced whole: only an empty folder or an earlier export may be there (not any
    model folder: it could be the base of the adapter being exported), never the source, nor a
    folder inside it (an export inside a bundle would fail its verification)."""
    source_path = Path(source).expanduser()
    if source_path.exists() and out.resolve().is_relative_to(source_path.resolve()):
        raise MintError(f"--out {out} is at or inside the source {source}; export to a folder outside it")
    problem = output_problem(out)
    if problem:
        raise MintError(f"--out {out}: {problem}")
    if not out.exists():
        return
    if not out.is_dir():
        raise MintError(f"--out {out} is a file; exports are folders")
    if source_path.exists() and source_path.resolve().is_relative_to(out.resolve()):
        raise MintError(f"--out {out} holds the source {source}; export to another folder")
    earlier = (out / EXPORT_RECORD).is_file() or is_onnx_export(out)  # the latter: exports before the record
    if any(out.iterdir()) and not earlier:
        raise MintError(
            f"--out {out} is not empty and holds no earlier export (no {EXPORT_RECORD}), and it would be "
            "replaced whole; choose another folder or remove it"
        )


def export_encoder(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    onnx: bool = True,
    int8: bool = True,
    int8_spread_limit: float = INT8_SPREAD_LIMIT,
    base: str | None = None,
    texts: list[str] | tuple[str, ...] = SAMPLE_TEXTS,
    recipe=None,
    opset: int = OPSET,
) -> ExportReport:
    """Export an encoder to `out`, replacing an earlier export there once everything is written.

    `source` is an adapter bundle, a LoRA adapter folder (students' output; its base from
    `base` or the adapter config) or a plain model reference. Writes a merged
    sentence-transformers folder; with `onnx`, `onnx/model.onnx` and `onnx_encoder.json` (the
    torch-free runtime's config); with `int8` also `onnx/model_qint8.onnx` (`int8_spread_limit`:
    see `quantize_int8`). Every variant is
    compared with the PyTorch model on `texts`; with `recipe`, NDCG@5 on its test collection too.
    """
    from ..adapters.loading import load_encoder

    out = Path(out)
    _refuse_to_replace(out, source)
    model = load_encoder(source, base=base, device="cpu")
    texts = list(texts)
    reference = _encode(model, texts)
    _merge_in_place(model)
    report = ExportReport(folder=out, source=str(source))
    staging = staging_folder(out)
    try:
        model.save(str(staging))
        report.parity.append(cosine_parity("merged", reference, _encode(_reload(staging), texts)))
        if onnx:
            _write_onnx(model, staging, int8_spread_limit if int8 else None, opset, str(source))
            report.parity += _onnx_parity(staging, reference, texts)
        write_json_atomic(staging / EXPORT_RECORD, {"source": str(source), "parity": report.parity_summary()})
        report.files = _sizes(staging)
        publish_modes(staging)
        replace_folder(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if recipe is not None:
        _add_ranking_parity(report, model, recipe, onnx, int8)
    return report


def _encode(model, texts: list[str]) -> np.ndarray:
    return model.encode(texts, convert_to_numpy=True, batch_size=16, show_progress_bar=False)


def _merge_in_place(model) -> None:
    from peft import PeftModel

    transformer = model[0]
    if isinstance(transformer.model, PeftModel):
        transformer.model = transformer.model.merge_and_unload()


def _reload(folder: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu")


def _write_onnx(model, folder: Path, int8_spread_limit: float | None, opset: int, source: str) -> None:
    """fp32 ONNX, and int8 unless `int8_spread_limit` is None."""
    layout = runtime_layout(model)
    export_onnx(model, folder, opset)
    models = {"fp32": FP32_FILE}
    extra: dict[str, Any] = {"source": source, "opset": opset, "versions": _versions()}
    if int8_spread_limit is not None:
        per_block = quantize_int8(
            folder / FP32_FILE, folder / INT8_FILE, _calibration_features(model), spread_limit=int8_spread_limit
        )
        models["int8"] = INT8_FILE
        extra["int8"] = {
            "spread_limit": int8_spread_limit,
            "lookup_tables": INT8_LOOKUP_TABLES,
            "per_block_products": per_block,
        }
    write_runtime_config(folder, layout, models, extra)


def _calibration_features(model) -> list[dict[str, np.ndarray]]:
    """Each sample text's features alone, as the ONNX graph takes them."""
    return [
        dict(model.tokenizer([text], truncation=True, max_length=model.max_seq_length, return_tensors="np"))
        for text in SAMPLE_TEXTS
    ]


def _versions() -> dict[str, str]:
    import onnxruntime

    return {**library_versions(), "onnxruntime": onnxruntime.__version__}


def _onnx_parity(folder: Path, reference: np.ndarray, texts: list[str]) -> list[Parity]:
    from .runtime import OnnxEncoder, read_runtime_config

    return [
        cosine_parity(f"onnx-{precision}", reference, OnnxEncoder(folder, precision).encode(texts))
        for precision in read_runtime_config(folder)["models"]
    ]


def _sizes(folder: Path) -> dict[str, int]:
    weights = ("model.safetensors", FP32_FILE, INT8_FILE)
    return {name: (folder / name).stat().st_size for name in weights if (folder / name).is_file()}


def _add_ranking_parity(report: ExportReport, model, recipe, onnx: bool, int8: bool) -> None:
    from .runtime import OnnxEncoder

    encoders = {"pytorch": lambda texts: _encode(model, texts)}
    if onnx:
        for precision in ("fp32", "int8") if int8 else ("fp32",):
            encoder = OnnxEncoder(report.folder, precision)
            encoders[f"onnx-{precision}"] = encoder.encode
    result = ranking_parity(encoders, recipe, reference="pytorch")
    if isinstance(result, str):
        report.notes.append(result)
    else:
        report.ranking = result

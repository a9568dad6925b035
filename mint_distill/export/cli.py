"""`mint-distill export`: merged sentence-transformers folder, ONNX and int8 ONNX, with parity checks."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import MintError
from .onnx import INT8_SPREAD_LIMIT


@click.command("export")
@click.argument("source")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write: new, empty, or an earlier export (replaced when done).",
)
@click.option(
    "--base",
    metavar="MODEL",
    help="Base model of a LoRA adapter folder (default: the one its adapter_config.json names).",
)
@click.option(
    "--onnx/--no-onnx", default=True, show_default=True, help="Write onnx/model.onnx for the torch-free runtime."
)
@click.option(
    "--int8/--no-int8", default=True, show_default=True, help="Also write dynamically quantized onnx/model_qint8.onnx."
)
@click.option(
    "--int8-spread-limit",
    type=click.FloatRange(min=0),
    default=INT8_SPREAD_LIMIT,
    show_default=True,
    help="int8: matrix products whose input spread ((max - min) / rms on calibration texts) exceeds this "
    "quantize activations per block (closer to fp32, slower); the rest per tensor (fast).",
)
@click.option(
    "--recipe",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also compare NDCG@5 on this recipe's test collection.",
)
@click.option(
    "--texts",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Parity texts, one per line (default: built-in samples).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 2 when a parity goal is not met: min cosine >= 0.9999 (merged, ONNX fp32) or >= 0.99 (int8); "
    "NDCG@5 within 1%.",
)
def export(
    source: str,
    out: Path,
    base: str | None,
    onnx: bool,
    int8: bool,
    int8_spread_limit: float,
    recipe: Path | None,
    texts: Path | None,
    strict: bool,
) -> None:
    """Merge an encoder's LoRA into its base and write compact copies for CPU serving.

    SOURCE is an adapter bundle, a LoRA adapter folder (e.g. runs/NAME/average-biencoder/model),
    or any model reference (embedded:NAME, a folder, a hub id). OUT gets a plain
    sentence-transformers folder and, unless --no-onnx, onnx/model.onnx (+ model_qint8.onnx)
    with onnx_encoder.json for `mint-distill recommend` without torch, and mint-export.json (source
    and parity), which marks it as an export a later one may replace. Every export prints the
    cosine similarity of each variant to the PyTorch model; with --recipe, NDCG@5 too.

    \b
    Examples:
      mint-distill export adapters/poi --out exports/poi
      mint-distill export runs/pointrec/average-biencoder/model --out exports/pointrec --recipe recipes/pointrec.yaml
      mint-distill export embedded:all-minilm-l6-v2 --out exports/minilm --no-int8
    """
    from .exporter import export_encoder
    from .parity import ranking_goal_met

    loaded_recipe = None
    if recipe is not None:
        from ..recipe import load_recipe

        loaded_recipe = load_recipe(recipe)
    options = {}
    if texts is not None:
        from ..io import text_lines

        lines = [line.strip() for _, line in text_lines(texts) if line.strip()]
        if not lines:
            raise MintError(f"{texts}: no texts (one per line)")
        options["texts"] = lines
    report = export_encoder(
        source,
        out,
        onnx=onnx,
        int8=int8,
        int8_spread_limit=int8_spread_limit,
        base=base,
        recipe=loaded_recipe,
        **options,
    )
    for line in report.lines():
        click.echo(line)
    if strict:
        failed = [p.variant for p in report.parity if not p.met]
        if report.ranking is not None:
            failed += [
                name
                for name in report.ranking.ndcg5
                if name != report.ranking.reference and not ranking_goal_met(report.ranking.relative_difference(name))
            ]
        if failed:
            raise MintError(f"parity goals not met for: {', '.join(failed)} (see the report above)")

"""`mint-distill recommend`: rank a catalog for narrative requests."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import MintError
from .output import FORMATS
from .recommender import DEFAULT_RERANK_TOP_K


@click.command("recommend")
@click.argument("requests", nargs=-1)
@click.option(
    "--encoder",
    "-e",
    required=True,
    metavar="SPEC",
    help="ONNX export folder (no torch), bundle folder or installed domain, LoRA adapter folder, or model reference.",
)
@click.option(
    "--catalog",
    "-c",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON lines of {item_id, text[, name]}, e.g. runs/NAME/data/items.jsonl.",
)
@click.option("--pointrec-city", metavar="CITY", help="Use the Pointrec POIs of this city as the catalog instead.")
@click.option(
    "--data-dir",
    default="../shared/data",
    envvar="MINT_DISTILL_DATA_DIR",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Data folder holding pointrec/ (with --pointrec-city; env MINT_DISTILL_DATA_DIR).",
)
@click.option(
    "--requests",
    "request_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File of requests: one per line, or JSON lines with request (and request_id).",
)
@click.option("-k", "--top", "k", default=10, show_default=True, type=click.IntRange(1), help="Items per request.")
@click.option(
    "--rerank",
    metavar="SPEC",
    help="Cross-encoder to rerank with: bundle with a crossencoder (one trained with "
    "students.crossencoder.finetune: lora), CrossEncoder folder (a LoRA one loads on its recorded base) or reference.",
)
@click.option(
    "--rerank-top-k",
    type=click.IntRange(1),
    help="First-stage items the cross-encoder rescores. Default: as many as its fusion weight was "
    f"chosen over, when its folder records that, else {DEFAULT_RERANK_TOP_K}.",
)
@click.option(
    "--fusion-weight",
    type=click.FloatRange(0.0, 1.0),
    help="Weight of the cross-encoder's score against the encoder's, both z-normalised per request "
    "(1: the cross-encoder alone). Default: the weight its training chose on the synthetic dev split, "
    "when its folder records one, else the cross-encoder alone.",
)
@click.option(
    "--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True
)
@click.option(
    "--precision",
    type=click.Choice(["int8", "fp32"]),
    default="int8",
    show_default=True,
    help="Which model of an ONNX export.",
)
@click.option(
    "--base", metavar="MODEL", help="Base model for a LoRA adapter folder or bundle (default: the recorded one)."
)
@click.option(
    "--adapters-path",
    "adapter_paths",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Extra folder to look for installed bundles in (repeatable).",
)
@click.option(
    "--index-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where catalog embeddings are kept (default: beside the catalog).",
)
@click.option("--rebuild-index", is_flag=True, help="Recompute the catalog embeddings.")
def recommend(
    requests: tuple[str, ...],
    encoder: str,
    catalog: Path | None,
    pointrec_city: str | None,
    data_dir: Path,
    request_file: Path | None,
    k: int,
    rerank: str | None,
    rerank_top_k: int | None,
    fusion_weight: float | None,
    output_format: str,
    precision: str,
    base: str | None,
    adapter_paths: tuple[Path, ...],
    index_dir: Path | None,
    rebuild_index: bool,
) -> None:
    """Recommend catalog items for narrative requests.

    Requests come from the arguments, from --requests FILE, or from standard input (one per
    line; also when the only argument is `-`). The catalog is embedded once per encoder and
    kept beside it (a hidden .<catalog>.index/ folder; Pointrec cities under the cache folder).

    \b
    Examples:
      mint-distill recommend -e exports/poi -c runs/pointrec/data/items.jsonl "quiet bars with live jazz"
      mint-distill recommend -e adapters/poi --pointrec-city Lisbon --requests requests.txt --format jsonl
      cat requests.txt | mint-distill recommend -e embedded:all-minilm-l6-v2 -c items.jsonl -k 5
    """
    from ..console import console, stdout
    from .encoders import open_encoder
    from .index import build_or_load_index
    from .output import print_tables, write_jsonl, write_trec
    from .recommender import Recommender, open_reranker, recorded_reranking
    from .requests import numbered, parse_request_lines, read_request_file

    if (catalog is None) == (pointrec_city is None):
        raise click.UsageError("give exactly one of --catalog FILE and --pointrec-city CITY")
    if requests == ("-",):
        pairs = parse_request_lines(sys.stdin, "<stdin>")
    elif request_file is not None:
        given = numbered(requests)
        pairs = given + read_request_file(request_file, given)
    elif requests:
        pairs = numbered(requests)
    elif not sys.stdin.isatty():
        pairs = parse_request_lines(sys.stdin, "<stdin>")
    else:
        raise click.UsageError("no requests: pass them as arguments, with --requests FILE, or on standard input")
    if not pairs:
        raise MintError("no requests to answer (the input was empty)")

    items = _catalog(catalog, pointrec_city, data_dir)
    text_encoder = open_encoder(encoder, precision=precision, base=base, bundle_paths=list(adapter_paths))
    reranker = open_reranker(rerank, list(adapter_paths), base) if rerank else None  # a wrong one fails before indexing
    index = build_or_load_index(items, text_encoder, index_dir, rebuild=rebuild_index)
    if rerank:
        fusion_weight, rerank_top_k = recorded_reranking(rerank, fusion_weight, rerank_top_k, list(adapter_paths))
    console.print(
        f"{items.name}: {len(items)} items; encoder {text_encoder.description}; index {index.folder}",
        highlight=False,
        markup=False,
    )
    answers = Recommender(items, text_encoder, index, reranker, rerank_top_k, fusion_weight).recommend(pairs, k)
    if output_format == "jsonl":
        write_jsonl(answers, sys.stdout)
    elif output_format == "trec":
        write_trec(answers, sys.stdout)
    else:
        print_tables(answers, stdout)


def _catalog(catalog: Path | None, city: str | None, data_dir: Path):
    from .catalog import pointrec_city_catalog, read_jsonl_catalog

    if catalog is None and data_dir.exists() and not data_dir.is_dir():
        raise click.BadParameter(f"{data_dir} is a file, not a folder", param_hint="--data-dir")
    return read_jsonl_catalog(catalog) if catalog is not None else pointrec_city_catalog(city, data_dir)

"""Print answers: a readable table, JSON lines (one request per line), or a TREC run."""

from __future__ import annotations

import json
from typing import TextIO

from ..errors import DataError
from .recommender import Answer

FORMATS = ("table", "jsonl", "trec")


def write_jsonl(answers: list[Answer], stream: TextIO) -> None:
    for answer in answers:
        record = {
            "request_id": answer.request_id,
            "request": answer.request,
            "results": [r.as_dict() for r in answer.results],
        }
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_trec(answers: list[Answer], stream: TextIO, run_name: str = "mint-distill") -> None:
    """`qid Q0 item rank score run`, the final score (rerank score when reranked) in full: trec_eval
    re-sorts by score, so a rounded score would turn near ties into ties ranked by item id."""
    for answer in answers:
        _refuse_unsplittable("request id", answer.request_id)
        for result in answer.results:
            _refuse_unsplittable("item id", result.item_id)
    for answer in answers:
        for result in answer.results:
            score = result.rerank_score if result.rerank_score is not None else result.score
            stream.write(f"{answer.request_id} Q0 {result.item_id} {result.rank} {float(score)!r} {run_name}\n")


def _refuse_unsplittable(what: str, value: str) -> None:
    if len(value.split()) != 1 or value.strip() != value:
        raise DataError(f"{what} {value!r} cannot be a field of a TREC run (empty or holding whitespace); use --format jsonl")


def print_tables(answers: list[Answer], console, excerpt: int = 90) -> None:
    from rich.table import Table

    for answer in answers:
        reranked = any(r.rerank_score is not None for r in answer.results)
        table = Table(title=f"{answer.request_id}: {_shorten(answer.request, 100)}", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("item")
        table.add_column("score", justify="right")
        if reranked:
            table.add_column("rerank", justify="right")
        table.add_column("text")
        for result in answer.results:
            label = f"{result.name} ({result.item_id})" if result.name else result.item_id
            cells = [str(result.rank), label, f"{result.score:.3f}"]
            if reranked:
                cells.append(f"{result.rerank_score:.3f}")
            cells.append(_shorten(result.text, excerpt))
            table.add_row(*cells)
        console.print(table)


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"

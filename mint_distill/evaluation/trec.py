"""TREC run and qrels files, and the ranking order trec_eval uses.

A run is `{qid: {item_id: score}}`; qrels are `{qid: {item_id: grade}}`. trec_eval ignores the
rank column of a run file: it sorts each query's items by score, descending, and breaks ties
by item id, also descending. `ranked` uses that order, so the ranks written here are the ranks
trec_eval (and pytrec_eval) will evaluate.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..errors import DataError
from ..io import atomic_path, text_lines

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]

QRELS_FILE = "qrels.txt"  # beside an evaluation's runs/: the judgements its measures used


def ranked(scores: dict[str, float], depth: int | None = None) -> list[tuple[str, float]]:
    """(item id, score) pairs in trec_eval's order, cut to the first `depth`."""
    order = sorted(scores.items(), key=lambda pair: (pair[1], pair[0]), reverse=True)
    return order if depth is None else order[:depth]


def truncate(run: Run, depth: int) -> Run:
    """The run with at most `depth` items per query (trec_eval's top `depth`)."""
    return {qid: dict(ranked(scores, depth)) for qid, scores in run.items()}


def write_run(path: str | os.PathLike, run: Run, name: str, depth: int | None = None) -> int:
    """Write `run` atomically as `qid Q0 item rank score name` lines; returns the line count.

    Scores are written in full (shortest round-trip form), so the file ranks exactly as the run.
    """
    if not name or any(character.isspace() for character in name):
        raise ValueError(f"a TREC run name must be one word, got {name!r}")
    lines = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for qid in sorted(run):
            for rank, (item_id, score) in enumerate(ranked(run[qid], depth), start=1):
                if not math.isfinite(score):
                    raise ValueError(f"run {name}: query {qid}, item {item_id} has score {score}")
                handle.write(f"{qid} Q0 {item_id} {rank} {float(score)!r} {name}\n")
                lines += 1
    return lines


def read_run(path: str | os.PathLike) -> Run:
    """Read a TREC run file (`qid Q0 item rank score name`); the rank column is ignored."""
    run: Run = {}
    for number, fields in _rows(path, 6):
        try:
            score = float(fields[4])
        except ValueError:
            raise DataError(f"{path}, line {number}: score `{fields[4]}` is not a number") from None
        run.setdefault(fields[0], {})[fields[2]] = score
    return run


def read_qrels(path: str | os.PathLike) -> Qrels:
    """Read a TREC qrels file (`qid iteration item grade`)."""
    qrels: Qrels = {}
    for number, fields in _rows(path, 4):
        try:
            grade = int(fields[3])
        except ValueError:
            raise DataError(f"{path}, line {number}: relevance grade `{fields[3]}` is not an integer") from None
        qrels.setdefault(fields[0], {})[fields[2]] = grade
    return qrels


def write_qrels(path: str | os.PathLike, qrels: Qrels) -> None:
    """Write qrels atomically as `qid 0 item grade` lines."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for qid in sorted(qrels):
            handle.writelines(f"{qid} 0 {item_id} {grade}\n" for item_id, grade in sorted(qrels[qid].items()))


def _rows(path: str | os.PathLike, width: int):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    for number, line in text_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != width:
            raise DataError(f"{path}, line {number}: expected {width} fields, found {len(fields)}")
        yield number, fields

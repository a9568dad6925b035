"""Turn ranker specs into runs: build each ranker, rank every pool, write `runs/<name>.trec`."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..io import read_json, write_json_atomic
from ..memory import release_freed_memory
from ..models.precision import Precision, resolve_precision
from ..recipe.sections.evaluation import RankerSpec
from .collection import EvalCollection
from .rankers import (
    BM25Ranker,
    CrossEncoderScorer,
    DenseRanker,
    LikelihoodPairScorer,
    Ranker,
    Reranker,
)
from .trec import Run, read_run, write_run

SYSTEMS_FILE = "systems.json"


def make_ranker(
    spec: RankerSpec,
    runs: Mapping[str, Run],
    *,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
    precision: Precision = "float32",
) -> Ranker:
    """The ranker a spec describes; rerankers take their first stage from `runs`."""
    if spec.kind == "bm25":
        return BM25Ranker(k1=spec.k1, b=spec.b, stemmer=spec.stemmer)
    if spec.kind in ("dense", "biencoder"):
        return DenseRanker(spec.model, batch_size=batch_size, cache_dir=cache_dir, precision=precision)
    if spec.first_stage not in runs:
        raise ValueError(f"ranker `{spec.name}` reranks `{spec.first_stage}`, which has not run")
    if spec.kind == "crossencoder":
        scorer = CrossEncoderScorer(spec.model, batch_size=batch_size, cache_dir=cache_dir, precision=precision)
    else:
        scorer = LikelihoodPairScorer(
            spec.model, model_type=spec.model_type, quantization=spec.quantization, precision=precision, score=spec.score,
            max_item_tokens=spec.max_item_tokens, batch_size=batch_size, trust_remote_code=spec.trust_remote_code,
            cache_dir=cache_dir,
        )
    return Reranker(scorer, runs[spec.first_stage], spec.top_k, fusion_weight=spec.fusion_weight)


def produce_runs(
    collection: EvalCollection,
    specs: Sequence[RankerSpec],
    folder: str | os.PathLike,
    *,
    depth: int = 200,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
    precision: Precision = "float32",
    reuse: bool = False,
) -> tuple[dict[str, Run], dict[str, dict[str, Any]]]:
    """Rank the collection with each spec in order; returns runs and per-system details.

    Each run is written to `folder/runs/<name>.trec` and its details (spec, seconds, requests
    per second, work counters) to `folder/systems.json` as soon as it finishes; with `reuse`,
    runs that an earlier, interrupted call finished with the same spec are read back.
    """
    folder = Path(folder)
    precision = resolve_precision(precision)
    systems_path = folder / SYSTEMS_FILE
    details: dict[str, dict[str, Any]] = read_json(systems_path) if reuse and systems_path.is_file() else {}
    runs: dict[str, Run] = {}
    for spec in specs:
        run_path = folder / "runs" / f"{spec.name}.trec"
        done = details.get(spec.name, {})
        same = done.get("spec") == spec.model_dump(mode="json") and done.get("precision", "float32") == precision
        if reuse and same and run_path.is_file():
            runs[spec.name] = read_run(run_path)
            continue
        ranker = make_ranker(spec, runs, batch_size=batch_size, cache_dir=cache_dir, precision=precision)
        clock = time.perf_counter()
        runs[spec.name] = ranker.rank(collection, depth)
        seconds = time.perf_counter() - clock
        write_run(run_path, runs[spec.name], spec.name, depth)
        answered = len(runs[spec.name])
        details[spec.name] = {
            "spec": spec.model_dump(mode="json"),
            "precision": precision,
            "kind": spec.kind,
            "model": spec.model,
            "first_stage": spec.first_stage,
            "top_k": spec.top_k if spec.first_stage else None,
            "fusion_weight": spec.fusion_weight,
            "run_file": run_path.relative_to(folder).as_posix(),
            "seconds": round(seconds, 3),
            "requests_per_second": round(answered / seconds, 3) if seconds > 0 else None,
            "counters": dict(ranker.counters),
        }
        write_json_atomic(systems_path, details)
        del ranker  # its model is freed before the next ranker loads its own
        release_freed_memory()
    return runs, {spec.name: details[spec.name] for spec in specs}

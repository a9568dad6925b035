"""The resumable, shardable loop that turns user histories into gated synthetic requests.

Each process (rank r of w) takes every w-th pending request, writes what it finishes after
every batch to its own shard files under `<out>/.shards/`, and a rerun skips every request id
already in any shard, so a killed run finishes the rest with no duplicate and none lost, even
with another number of processes; a request that had failed the gates goes on from its next
attempt. `merge_shards` then writes `requests.jsonl` (accepted) and
`rejected.jsonl` (gave up after `max_retries`) in user order, atomically.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..console import progress_bar
from ..io import JsonlAppender, read_jsonl, write_jsonl_atomic
from .gates import GateSettings, check_request
from .generation import RequestSampler
from .histories import History
from .prefix import render_prefix, with_prefix
from .prompts import PromptBuilder, prompt_rng

SHARDS = ".shards"
REQUESTS = "requests.jsonl"
REJECTED = "rejected.jsonl"


@dataclass(frozen=True)
class Unit:
    """The `index`-th request wanted from a user."""

    history: History
    index: int

    @property
    def request_id(self) -> str:
        return f"{self.history.user_id}#{self.index}"


def work_units(users: Sequence[History], requests_per_user: int) -> list[Unit]:
    return [Unit(user, index) for user in users for index in range(requests_per_user)]


def origin_counts(origins: Iterable[str]) -> dict[str, int]:
    """How many histories or requests come from each origin (users, catalog), sorted by origin."""
    return dict(sorted(Counter(origins).items()))


def _shard_records(out_dir: Path, *prefixes: str) -> Iterator[dict]:
    """The records of every shard file whose name starts with one of `prefixes`, file by file."""
    for path in sorted((out_dir / SHARDS).glob("*.jsonl")):
        if path.name.startswith(prefixes):
            yield from read_jsonl(path)


def failed_attempts(out_dir: Path) -> dict[str, int]:
    """The last attempt at which each request failed the gates, in any shard."""
    last: dict[str, int] = {}
    for record in _shard_records(out_dir, "gates-"):
        last[record["request_id"]] = max(record["attempt"], last.get(record["request_id"], 0))
    return last


def finished_ids(out_dir: Path) -> set[str]:
    """Request ids already accepted or given up on, in any shard."""
    return {record["request_id"] for record in _shard_records(out_dir, "requests-", "rejected-")}


def synthesize(
    units: Sequence[Unit],
    out_dir: str | Path,
    *,
    builder: PromptBuilder,
    sampler: RequestSampler,
    gates: GateSettings,
    batch_size: int = 16,
    max_retries: int = 2,
    seed: int = 0,
    prompt_seed: int = 0,
    settings: dict | None = None,
    request_prefix: str | None = None,
    rank: int = 0,
    world: int = 1,
) -> dict:
    """Generate this rank's share of the unfinished units; return this session's counts.

    `seed` seeds the sampling, `prompt_seed` (`teacher.prompt.seed`) the few-shot examples each
    unit's attempts are shown.

    An accepted text is stored behind its history's `request_prefix` (`teacher.request_prefix`,
    see `prefix.render_prefix`); the gates judge the generated text alone.
    """
    out_dir = Path(out_dir)
    done = finished_ids(out_dir)
    mine = [
        unit
        for position, unit in enumerate(units)
        if position % world == rank and unit.request_id not in done
    ]
    scaffold = builder.template.scaffold_phrases()
    counts = {"generated_this_run": 0, "tokens_this_run": 0, "finished_this_run": 0}
    clock, cpu_clock = time.perf_counter(), time.process_time()
    shards = out_dir / SHARDS
    with (
        JsonlAppender(shards / f"requests-{rank}.jsonl") as accepted_out,
        JsonlAppender(shards / f"rejected-{rank}.jsonl") as rejected_out,
        JsonlAppender(shards / f"gates-{rank}.jsonl") as gates_out,
        progress_bar("generating requests", total=len(mine), unit="req") as bar,
    ):
        failed = failed_attempts(out_dir)  # a rerun goes on with the next attempt, not the first
        pending = [(unit, failed.get(unit.request_id, 0) + 1) for unit in mine]
        while pending:
            prompts = {
                unit.request_id: builder.build(
                    unit.history, prompt_rng(prompt_seed, unit.request_id, attempt)
                )
                for unit, attempt in pending
            }
            pending.sort(key=lambda work: -prompts[work[0].request_id].num_tokens)
            retry = []
            for start in range(0, len(pending), batch_size):
                batch = pending[start : start + batch_size]
                batch_prompts = [prompts[unit.request_id] for unit, _ in batch]
                sampled = sampler.sample(
                    [p.text for p in batch_prompts],
                    seed=zlib.crc32(f"{seed}:{batch[0][0].request_id}:{batch[0][1]}".encode()),
                )
                accepted, rejected, failures = [], [], []
                for (unit, attempt), prompt, output in zip(batch, batch_prompts, sampled):
                    reasons = check_request(
                        output.text,
                        prompt_text=prompt.text,
                        items=prompt.items,
                        scaffold=scaffold,
                        settings=gates,
                        finished=output.finished,
                    )
                    record = _record(
                        unit, prompt, output.text, attempt, settings or {}, request_prefix
                    )
                    if not reasons:
                        accepted.append(record)
                        continue
                    failures.append(
                        {"request_id": unit.request_id, "attempt": attempt, "reasons": reasons}
                    )
                    if attempt > max_retries:
                        rejected.append({**record, "reasons": reasons})
                    else:
                        retry.append((unit, attempt + 1))
                accepted_out.write_batch(accepted)
                rejected_out.write_batch(rejected)
                gates_out.write_batch(failures)
                tokens = sum(output.new_tokens for output in sampled)
                counts["generated_this_run"] += len(sampled)
                counts["tokens_this_run"] += tokens
                counts["finished_this_run"] += len(accepted) + len(rejected)
                bar.advance(len(accepted) + len(rejected), tokens=tokens)
            pending = retry
    counts["seconds_this_run"] = round(time.perf_counter() - clock, 2)
    counts["cpu_seconds_this_run"] = round(time.process_time() - cpu_clock, 2)
    return counts


def _record(
    unit: Unit, prompt, text: str, attempt: int, settings: dict, request_prefix: str | None
) -> dict:
    items = prompt.items
    return {
        "request_id": unit.request_id,
        "user_id": unit.history.user_id,
        "split": unit.history.split,
        "origin": unit.history.origin,
        "request": with_prefix(render_prefix(request_prefix, unit.history), text),
        "item_ids": [item.item_id for item in items],
        "sentences": [item.sentence for item in items],
        "attempts": attempt,
        "settings": {
            **settings,
            "examples": list(prompt.example_ids),
            "prompt_tokens": prompt.num_tokens,
        },
    }


def merge_shards(out_dir: str | Path, units: Sequence[Unit]) -> dict:
    """Write `requests.jsonl` and `rejected.jsonl` from the shards, in unit order; return counts."""
    out_dir = Path(out_dir)
    order = {unit.request_id: position for position, unit in enumerate(units)}
    counts: dict = {"duplicates_dropped": 0}
    for name, prefix, key in (
        (REQUESTS, "requests-", "requests"),
        (REJECTED, "rejected-", "rejected"),
    ):
        records: dict[str, dict] = {}
        for record in _shard_records(out_dir, prefix):
            if record["request_id"] in records:
                counts["duplicates_dropped"] += 1
                continue
            records[record["request_id"]] = record
        ordered = sorted(records.values(), key=lambda r: order.get(r["request_id"], len(order)))
        counts[key] = write_jsonl_atomic(out_dir / name, ordered)
    reasons: Counter = Counter()
    attempts = 0
    for record in _shard_records(out_dir, "gates-"):
        reasons.update(record["reasons"])
        attempts += 1
    counts["rejected_attempts"] = attempts
    counts["rejected_attempts_by_reason"] = dict(sorted(reasons.items()))
    return counts

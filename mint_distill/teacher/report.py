"""The teacher report: untuned vs tuned teacher vs the seed requests.

Rows (each measured with the same zero-shot encoder over the training catalog):
  untuned / tuned teacher (dev seeds)  one sample each for the dev seeds' histories (a paired
                                       comparison; identical prompts unless the untuned
                                       teacher is shown more few-shot examples);
  seed requests (dev seeds)            the hand-written requests of those users (the reference);
  untuned / tuned teacher (N users)    the same pairing on the first N users of the run;
  generated requests (all users)       every request the LLM wrote in generate (its real output; where
                                       the template wrote one origin's, the row names the other).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import MintError
from ..io import read_json
from .gates import GateSettings, check_request
from .generation import RequestSampler
from .histories import History
from .metrics import Catalog, distinct_n, duplicate_share
from .prompts import PromptBuilder, prompt_rng

REPORT_FILE = "teacher_report.md"
SAMPLES_FILE = "report_samples.jsonl"
WHEN_WRITTEN = (
    "a teacher report is written where an LLM teacher writes requests "
    "(teacher.kind or teacher.catalog_kind llm) and teacher.report.enabled is true"
)


def sample_once(
    histories: Sequence[History],
    *,
    builder: PromptBuilder,
    sampler: RequestSampler,
    gates: GateSettings,
    prompt_seed: int = 0,
    seed: int = 0,
    batch_size: int = 16,
) -> list[dict]:
    """One sample per history (no retries) with its gate verdict.

    Prompts depend only on `prompt_seed` (teacher.prompt.seed: which examples, in which order),
    the user and the builder, so two teachers given the same builder answer identical prompts;
    `seed` seeds the sampling.
    """
    scaffold = builder.template.scaffold_phrases()
    prompts = [builder.build(h, prompt_rng(prompt_seed, "report", h.user_id)) for h in histories]
    records = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        outputs = sampler.sample([p.text for p in chunk], seed=seed + start)
        for history, prompt, output in zip(histories[start : start + batch_size], chunk, outputs):
            reasons = check_request(
                output.text,
                prompt_text=prompt.text,
                items=prompt.items,
                scaffold=scaffold,
                settings=gates,
                finished=output.finished,
            )
            records.append(
                {
                    "user_id": history.user_id,
                    "request": output.text,
                    "reasons": reasons,
                    "examples": list(prompt.example_ids),
                    "items": [
                        {"item_id": i.item_id, "name": i.name, "city": i.city} for i in prompt.items
                    ],
                }
            )
    return records


def measure_row(name: str, records: Sequence[dict], catalog: Catalog, k: int) -> dict:
    """Round-trip retrievability, gate pass rate and diversity of one set of requests."""
    texts = [r["request"] for r in records]
    positives = [[catalog.resolve(item) for item in r["items"]] for r in records]
    retrieval = catalog.round_trip(
        texts, [[i for i in ids if i is not None] for ids in positives], k=k
    )
    passed = [not r.get("reasons") for r in records]
    return {
        "teacher": name,
        "requests": len(records),
        "pass_rate": round(sum(passed) / len(passed), 4) if passed else None,
        "retrieval_queries": retrieval["queries"],
        f"recall@{k}": retrieval[f"recall@{k}"],
        "mrr": retrieval["mrr"],
        "distinct_2": round(distinct_n(texts, 2), 4),
        "duplicate_share": round(duplicate_share(texts), 4),
        "mean_words": round(sum(len(t.split()) for t in texts) / len(texts), 1) if texts else None,
    }


def format_table(report: dict) -> str:
    """The report as a Markdown table."""
    k = report["k"]
    columns = [
        "teacher",
        "requests",
        "pass_rate",
        "retrieval_queries",
        f"recall@{k}",
        "mrr",
        "distinct_2",
        "duplicate_share",
        "mean_words",
    ]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in report["rows"]:
        lines.append(
            "| " + " | ".join("-" if row.get(c) is None else str(row[c]) for c in columns) + " |"
        )
    note = (
        f"Round-trip retrievability: each request queries the training catalog ({report['catalog_items']} items) "
        f"with `{report['encoder']}`; Recall@{k} and MRR of the user's own shown items. Untuned and "
        "tuned rows sample the same users once each, no retries."
    )
    shown = report.get("few_shot_examples")
    if shown:
        note += (
            f" Few-shot examples per prompt (at most, within the token budget): untuned teacher "
            f"{shown['untuned']}, tuned teacher {shown['tuned']}."
        )
    return "\n".join(lines) + "\n\n" + note + "\n"


def teacher_report(run_root: str | Path) -> dict:
    """The report stored by a finished teacher-report stage of the run folder `run_root`."""
    summary = Path(run_root) / "teacher-report" / "summary.json"
    if not summary.is_file():
        raise MintError(f"{summary} not found: run `mint-distill teacher-report RECIPE` ({WHEN_WRITTEN})")
    return read_json(summary)

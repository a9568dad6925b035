"""`teacher.kind: template`: requests from a pattern and the history's own sentences, no model.

The request for a history is `teacher.template.pattern` filled with the request prefix, the
sentences of `teacher.template.snippets` of its items (a choice seeded by the request id) and
the history's main category, sub-categories, city and country. It is the bar an LLM teacher has
to clear, and a real option without a good LLM. Records have the shape the LLM path writes
(docs/pipeline.md), so the filter and the students read them unchanged.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from ..data.text import render
from ..io import write_jsonl_atomic
from ..recipe.sections.teacher import TemplateTeacherSpec
from .histories import History, ShownItem
from .prefix import render_prefix, request_fields
from .synthesis import REQUESTS, Unit, origin_counts


def template_request(
    history: History,
    request_id: str,
    spec: TemplateTeacherSpec,
    request_prefix: str | None,
    seed: int,
) -> tuple[str, list[ShownItem]]:
    """The request for one history and the items whose sentences it uses."""
    chosen = random.Random(f"{seed}:{request_id}").sample(
        list(history.items), min(spec.snippets, len(history.items))
    )
    fields = {
        **request_fields(history),
        "prefix": render_prefix(request_prefix, history),
        "snippets": " ".join(item.sentence for item in chosen),
    }
    return render(spec.pattern, fields), chosen


def write_template_requests(
    units: Sequence[Unit],
    out_dir: str | Path,
    *,
    spec: TemplateTeacherSpec,
    request_prefix: str | None,
    seed: int,
) -> dict:
    """Write `requests.jsonl` for every unit; return counts (requests, and per origin)."""
    records = template_records(units, spec=spec, request_prefix=request_prefix, seed=seed)
    write_jsonl_atomic(Path(out_dir) / REQUESTS, records)
    return {
        "requests": len(records),
        "requests_by_origin": origin_counts(r["origin"] for r in records),
    }


def template_records(
    units: Sequence[Unit], *, spec: TemplateTeacherSpec, request_prefix: str | None, seed: int
) -> list[dict]:
    """One request record per unit, in the shape the LLM path writes."""
    records = []
    for unit in units:
        history = unit.history
        text, chosen = template_request(history, unit.request_id, spec, request_prefix, seed)
        records.append(
            {
                "request_id": unit.request_id,
                "user_id": history.user_id,
                "split": history.split,
                "origin": history.origin,
                "request": text,
                "item_ids": [item.item_id for item in history.items],
                "sentences": [item.sentence for item in history.items],
                "attempts": 1,
                "settings": {
                    "teacher": "template",
                    "pattern": spec.pattern,
                    "snippet_items": [item.item_id for item in chosen],
                },
            }
        )
    return records

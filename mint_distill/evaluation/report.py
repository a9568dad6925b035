"""Write an evaluation: `metrics.json`, `per_query.csv`, `coverage.csv`, `report.md`, `metrics.png`.

Everything shown (the Markdown table, the terminal table, the chart) is rendered from the
`metrics.json` document, so a report can be re-rendered from that file alone.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from ..io import write_json_atomic, write_text_atomic
from .compare import Evaluation

BETTER, WORSE = "▲", "▼"


def write_report(evaluation: Evaluation, folder: str | os.PathLike) -> dict[str, Path]:
    """Write every report file into `folder`; returns their paths by role."""
    from .chart import plot_measures

    folder = Path(folder)
    metrics = evaluation.to_json()
    paths = {
        "metrics": folder / "metrics.json",
        "per_query": folder / "per_query.csv",
        "coverage": folder / "coverage.csv",
        "report": folder / "report.md",
        "chart": folder / "metrics.png",
    }
    write_json_atomic(paths["metrics"], metrics)
    write_text_atomic(paths["per_query"], per_query_csv(evaluation))
    write_text_atomic(paths["coverage"], _csv(evaluation.coverage_by_request))
    write_text_atomic(paths["report"], render_markdown(metrics))
    plot_measures(metrics, paths["chart"])
    return paths


def per_query_csv(evaluation: Evaluation) -> str:
    """One row per (system, request) with every measure: the input of any further test."""
    rows = [
        {"system": system.name, "qid": qid, **{m: f"{system.per_query[m][qid]:.6f}" for m in evaluation.measures}}
        for system in evaluation.systems
        for qid in evaluation.qids
    ]
    return _csv(rows, ["system", "qid", *evaluation.measures])


def _csv(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns or (list(rows[0]) if rows else []), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def cell(metrics: dict[str, Any], system: str, measure: str) -> str:
    """`0.4123`, or `0.4123 (+0.0211)▲` with the delta and a mark when significant."""
    entry = metrics["systems"][system]
    value = f"{entry['means'][measure]:.4f}"
    comparison = entry.get("versus_reference", {}).get(measure)
    if comparison is None:
        return value
    mark = ""
    if comparison["significant"]:
        mark = BETTER if comparison["delta"] > 0 else WORSE
    return f"{value} ({comparison['delta']:+.4f}){mark}"


def coverage_lines(metrics: dict[str, Any]) -> list[str]:
    """What the numbers were computed on: pool, requests and how much of the judged set the pools hold."""
    coverage = metrics["coverage"]
    level = metrics["relevance_level"]
    total = coverage.get("requests_in_collection")
    lines = [
        f"Pool: `{metrics['pool']}`. Requests evaluated: {metrics['requests']}"
        + (f" of the collection's {total}" if total and total != metrics["requests"] else "")
        + (f" ({coverage['requests_with_empty_pool']} with an empty pool, scored 0)." if coverage.get("requests_with_empty_pool") else "."),
    ]
    shares = []
    for label, title in (("judged", "judged items"), ("relevant", "relevant items (grade >= 1)"), (f"grade{level}", f"grade >= {level} items")):
        if coverage.get(label):
            shares.append(f"{coverage[f'{label}_in_pool']:,} of {coverage[label]:,} {title} ({coverage[f'{label}_in_pool'] / coverage[label]:.1%})")
    if shares:
        lines.append("Coverage: the pools hold " + "; ".join(shares) + ".")
    if coverage.get("judgements"):
        lines.append(
            f"Of these requests' {coverage['judgements']:,} judgements, {coverage['judgements_with_text']:,} "
            f"({coverage['judgements_with_text'] / coverage['judgements']:.1%}) are of POIs with a record here."
        )
    fully_pooled = coverage.get("judged_in_pool") == coverage.get("judged")
    if coverage.get("condensed_qrels"):
        lines.append("Judgements of POIs with no record here were dropped (condensed qrels)"
                     + (": ideal rankings count only POIs a ranker can see." if fully_pooled else "."))
    if shares and not fully_pooled:
        lines.append("Judged items outside the pools cannot be retrieved but still count in the ideal ranking.")
    if coverage.get("min_pool_size"):
        lines.append(f"Only requests whose pool holds at least {coverage['min_pool_size']} POIs are evaluated.")
    if coverage.get("training_allowed_judged"):
        lines.append(
            "**Training may have used judged items**: catalog adaptation ran with data.catalog.exclude_judged "
            "false, so these figures are not a held-out test."
        )
    if coverage.get("training_excluded_judged") is not None:
        lines.append(
            f"Training used no judged item: the {coverage['training_excluded_judged']:,} judged POIs of the "
            "catalog were excluded from its pseudo-histories (catalog adaptation)."
        )
    if coverage.get("pooled_items_without_text"):
        lines.append(f"{coverage['pooled_items_without_text']:,} pooled items have no text and were left out of the pools.")
    return lines


def render_markdown(metrics: dict[str, Any]) -> str:
    measures = list(metrics["measures"])
    reference = metrics["reference"]
    significance = metrics["significance"]
    test = (
        "two-sided paired randomization test (every sign pattern when there are at most "
        f"{significance['resamples']:,}, else {significance['resamples']:,} random ones)"
        if significance["method"] == "randomization"
        else "two-sided paired t-test"
    )
    lines = [
        f"# Evaluation on {metrics['collection']}",
        "",
        *coverage_lines(metrics),
        "",
        "| system | " + " | ".join(measures) + " |",
        "|---|" + "---:|" * len(measures),
    ]
    for system in metrics["systems"]:
        label = f"{system} (reference)" if system == reference else system
        lines.append(f"| {label} | " + " | ".join(cell(metrics, system, m) for m in measures) + " |")
    lines += [
        "",
        (
            f"Deltas are differences of means against `{reference}`; {BETTER} / {WORSE}: significantly better / "
            f"worse (p < {significance['alpha']}, {test} over the {metrics['requests']} requests; no correction "
            "for multiple comparisons). Per-request scores: `per_query.csv`; pool coverage per request: "
            "`coverage.csv`."
        ),
        "",
        (
            "Measures (the same numbers as trec_eval on `qrels.txt`, the judgements evaluated, and "
            "`runs/<system>.trec`; e.g. `trec_eval -c -m ndcg_cut.5 qrels.txt runs/<system>.trec`):"
        ),
        "",
        *(f"- {name}: `{command}`" for name, command in metrics["measures"].items()),
    ]
    ran = {system: entry for system, entry in metrics["systems"].items() if "kind" in entry}
    if ran:
        lines += [
            "",
            "## Systems",
            "",
            "| system | kind | model | reranks | seconds | requests/s | work |",
            "|---|---|---|---|---:|---:|---|",
        ]
    for system, entry in ran.items():
        reranks = f"top {entry['top_k']} of {entry['first_stage']}" if entry.get("first_stage") else ""
        if entry.get("fusion_weight") is not None:
            reranks += f", fused at weight {entry['fusion_weight']:g}"
        seconds = entry.get("seconds")
        speed = entry.get("requests_per_second")
        work = ", ".join(f"{key.replace('_', ' ')} {value:,}" for key, value in entry.get("counters", {}).items())
        lines.append(
            f"| {system} | {entry.get('kind', '')} | {entry.get('model') or ''} | {reranks} | "
            f"{'' if seconds is None else f'{seconds:.1f}'} | {'' if speed is None else f'{speed:.2f}'} | {work} |"
        )
    lines += ["", "![measures](metrics.png)", ""]
    return "\n".join(lines)


def _terminal_cell(metrics: dict[str, Any], system: str, measure: str) -> str:
    """The value, and under it the delta (3 decimals) with its mark, to keep the table narrow."""
    entry = metrics["systems"][system]
    value = f"{entry['means'][measure]:.4f}"
    comparison = entry.get("versus_reference", {}).get(measure)
    if comparison is None:
        return value
    mark = (BETTER if comparison["delta"] > 0 else WORSE) if comparison["significant"] else ""
    return f"{value}\n[dim]{comparison['delta']:+.3f}[/]{mark}"


def print_table(metrics: dict[str, Any], console=None) -> None:
    """The system x measure table on the terminal (rich), with the coverage it ran on."""
    from rich.table import Table

    from ..console import stdout

    console = console or stdout
    table = Table(title=f"{metrics['collection']}: {metrics['requests']} requests, pool {metrics['pool']}")
    table.add_column("system", no_wrap=True)
    for measure in metrics["measures"]:
        table.add_column(measure, justify="right")
    for system in metrics["systems"]:
        label = f"{system} (ref)" if system == metrics["reference"] else system
        table.add_row(label, *(_terminal_cell(metrics, system, m) for m in metrics["measures"]))
    console.print(table)
    for line in coverage_lines(metrics):
        console.print(line, highlight=False, markup=False)


def print_report_of_run(run_root: Path) -> None:
    """The comparison table of a run's evaluate stage and the path of its report, when it has one."""
    from ..console import stdout
    from ..io import read_json

    folder = Path(run_root) / "evaluate"
    if not (folder / "metrics.json").is_file():
        return
    print_table(read_json(folder / "metrics.json"))
    stdout.print(f"report: {folder / 'report.md'}", highlight=False, markup=False)

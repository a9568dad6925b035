"""Grouped bar chart of each system's mean scores, rendered from `metrics.json`."""

from __future__ import annotations

import os
from typing import Any

from ..io import atomic_path


def plot_measures(metrics: dict[str, Any], path: str | os.PathLike) -> None:
    """One group of bars per measure, one bar per system; significant differences are marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    measures = list(metrics["measures"])
    systems = list(metrics["systems"])
    width = 0.8 / max(len(systems), 1)
    positions = np.arange(len(measures))
    figure, axes = plt.subplots(figsize=(max(6.0, 1.4 * len(measures) + 0.25 * len(systems)), 4.6))
    for index, system in enumerate(systems):
        entry = metrics["systems"][system]
        values = [entry["means"][m] for m in measures]
        label = f"{system} (reference)" if system == metrics["reference"] else system
        bars = axes.bar(positions + (index - (len(systems) - 1) / 2) * width, values, width, label=label)
        for bar, measure in zip(bars, measures):
            comparison = entry.get("versus_reference", {}).get(measure)
            if comparison and comparison["significant"]:
                axes.annotate("*", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    axes.set_xticks(positions, measures)
    axes.set_ylim(0, 1)
    axes.set_ylabel("mean over requests")
    axes.set_title(
        f"{metrics['collection']}: {metrics['requests']} requests, pool {metrics['pool']} "
        f"(* p < {metrics['significance']['alpha']} vs {metrics['reference']})",
        fontsize=10,
    )
    axes.legend(fontsize=8, ncols=min(4, len(systems)), loc="upper center", bbox_to_anchor=(0.5, -0.09), frameon=False)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)

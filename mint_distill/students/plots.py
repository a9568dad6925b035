"""The loss curve of a training log: training loss per step, dev measures at each evaluation."""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_path, read_jsonl


def plot_training_log(log_path: str | Path, png_path: str | Path, title: str = "") -> None:
    """Write a PNG of `log.jsonl`: training loss (and dev loss) on the left axis, dev ranking
    measures on the right, the kept (best) step marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = list(read_jsonl(log_path))
    steps = [r for r in records if "loss" in r]
    evals = [r for r in records if r.get("dev")]
    figure, left = plt.subplots(figsize=(8, 4.5))
    left.plot(
        [r["step"] for r in steps],
        [r["loss"] for r in steps],
        color="tab:blue",
        alpha=0.5,
        label="train loss",
    )
    if len(steps) >= 10:
        window = max(2, len(steps) // 20)
        smoothed = [
            sum(r["loss"] for r in steps[max(0, i - window + 1) : i + 1]) / min(window, i + 1)
            for i in range(len(steps))
        ]
        left.plot(
            [r["step"] for r in steps],
            smoothed,
            color="tab:blue",
            label=f"train loss (mean of {window})",
        )
    if any("loss" in r["dev"] for r in evals):
        dev = [r for r in evals if "loss" in r["dev"]]
        left.plot(
            [r["step"] for r in dev],
            [r["dev"]["loss"] for r in dev],
            "o-",
            color="tab:orange",
            label="dev loss",
        )
    best = [r["step"] for r in evals if r.get("best")]
    if best:
        left.axvline(best[-1], color="grey", linestyle=":", label=f"kept step {best[-1]}")
    left.set_xlabel("optimizer step")
    left.set_ylabel("loss")
    handles = left.get_legend_handles_labels()[0]
    ranking = [name for name in ("mrr@10", "recall@10") if any(name in r["dev"] for r in evals)]
    if ranking:
        right = left.twinx()
        for name, color in zip(ranking, ("tab:green", "tab:purple")):
            points = [r for r in evals if name in r["dev"]]
            right.plot(
                [r["step"] for r in points],
                [r["dev"][name] for r in points],
                "s--",
                color=color,
                label=f"dev {name}",
            )
        right.set_ylabel("dev ranking measure")
        handles += right.get_legend_handles_labels()[0]
    left.legend(handles=handles, loc="upper right", fontsize="small")
    left.set_title(title or "training")
    figure.tight_layout()
    png_path = Path(png_path)
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)

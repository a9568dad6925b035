"""Terminal output: logging, progress bars with rates, and the --quiet switch."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

console = Console(stderr=True)
stdout = Console()
_state = {"quiet": False, "debug": False}
T = TypeVar("T")


class _DropMissingKernelHint(logging.Filter):
    """bitsandbytes, imported by peft, looks for an optional 4-bit kernel on the model hub on CPUs
    with AVX512-BF16 and warns at every import when it is missing. Its built-in CPU kernels serve
    instead, and the hint it gives (`pip install kernels`) would still need the hub."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to load CPU gemm_4bit_forward")


_MISSING_KERNEL_HINT = _DropMissingKernelHint()

# peft before 0.22 asks every model it wraps for transformers' deprecated `is_gradient_checkpointing`,
# which warns at each LoRA model built; the fix is theirs, not something a user of a recipe can change.
_PEFT_ASKS_DEPRECATED_PROPERTY = r"`is_gradient_checkpointing` is deprecated"


def setup_logging(quiet: bool = False, debug: bool = False) -> None:
    _state.update(quiet=quiet, debug=debug)
    bitsandbytes_cpu = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if debug:
        bitsandbytes_cpu.removeFilter(_MISSING_KERNEL_HINT)
    else:
        bitsandbytes_cpu.addFilter(_MISSING_KERNEL_HINT)
        warnings.filterwarnings("ignore", _PEFT_ASKS_DEPRECATED_PROPERTY, FutureWarning)
    logger = logging.getLogger("mint_distill")
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.handlers = [h for h in logger.handlers if not isinstance(h, RichHandler)]
    handler = RichHandler(console=console, show_path=debug, rich_tracebacks=debug, markup=False)
    handler.setLevel(logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO))
    logger.addHandler(handler)
    logger.propagate = False
    if quiet:
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
        os.environ["TQDM_DISABLE"] = "1"


def is_quiet() -> bool:
    return _state["quiet"]


def logging_like_this_process() -> dict:
    """`initializer` and `initargs` for a process pool whose processes should filter and show
    output as this one does: a spawned process starts from Python's defaults."""
    return {"initializer": setup_logging, "initargs": (_state["quiet"], _state["debug"])}


class _RateColumn(ProgressColumn):
    """Items per second, plus any `rates` field counters (e.g. tokens) per second."""

    def render(self, task) -> Text:
        elapsed = task.elapsed or 0.0
        if not elapsed:
            return Text("")
        unit = task.fields.get("unit", "it")
        parts = [f"{task.completed / elapsed:.1f} {unit}/s"]
        for name, value in task.fields.get("counters", {}).items():
            parts.append(f"{value / elapsed:.0f} {name}/s")
        return Text(" ".join(parts), style="progress.data.speed")


class Bar:
    """Handle on one progress bar: `advance(n, tokens=...)` adds to the count and counters."""

    def __init__(self, progress: Progress | None, task_id):
        self._progress, self._task = progress, task_id
        self.counters: dict[str, float] = {}

    def advance(self, n: float = 1, **counters: float) -> None:
        for name, value in counters.items():
            self.counters[name] = self.counters.get(name, 0) + value
        if self._progress is not None:
            self._progress.update(self._task, advance=n, counters=dict(self.counters))


@contextlib.contextmanager
def progress_bar(description: str, total: float | None, unit: str = "it", completed: float = 0) -> Iterator[Bar]:
    if is_quiet():
        yield Bar(None, None)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
    )
    with progress:
        task_id = progress.add_task(description, total=total, completed=completed, unit=unit, counters={})
        yield Bar(progress, task_id)


def track(iterable: Iterable[T], description: str, total: float | None = None, unit: str = "it") -> Iterator[T]:
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with progress_bar(description, total, unit) as bar:
        for item in iterable:
            yield item
            bar.advance()

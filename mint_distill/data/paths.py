"""Where the data lives: `data.data_dir` (with `${VAR:-default}` expanded) and paths under it."""

from __future__ import annotations

from pathlib import Path

from ..environment import expand_variables


def expand(value: str) -> str:
    """Expand `${VAR}` and `${VAR:-default}` (the recipe loader does this for values written in YAML;
    schema defaults arrive here unexpanded)."""
    return expand_variables(value, "data.data_dir")


def data_dir(configured: str) -> Path:
    """The data folder; relative paths are relative to the current folder."""
    return Path(expand(configured)).expanduser()


def under(base: Path, path: str) -> Path:
    """`path` if absolute, else `base / path`."""
    candidate = Path(expand(path)).expanduser()
    return candidate if candidate.is_absolute() else base / candidate

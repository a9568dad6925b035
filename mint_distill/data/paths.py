"""Where the data lives: `data.data_dir` (with `${VAR:-default}` expanded) and paths under it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import RecipeError

_ENV = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def expand(value: str) -> str:
    """Expand `${VAR}` and `${VAR:-default}` (the recipe loader does this for values written in YAML;
    schema defaults arrive here unexpanded)."""

    def substitute(match: re.Match) -> str:
        name, default = match.group("name"), match.group("default")
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise RecipeError(
                f"data.data_dir uses ${{{name}}} but the environment variable {name} is not set"
            )
        return default

    return _ENV.sub(substitute, value)


def data_dir(configured: str) -> Path:
    """The data folder; relative paths are relative to the current folder."""
    return Path(expand(configured)).expanduser()


def under(base: Path, path: str) -> Path:
    """`path` if absolute, else `base / path`."""
    candidate = Path(expand(path)).expanduser()
    return candidate if candidate.is_absolute() else base / candidate

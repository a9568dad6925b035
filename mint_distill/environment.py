"""`${VAR}` and `${VAR:-default}` in recipe values, with the shell's meaning."""

from __future__ import annotations

import os
import re

from .errors import RecipeError

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def expand_variables(text: str, where: str = "recipe") -> str:
    """`text` with each `${VAR}` replaced by its value and each `${VAR:-default}` by its value, or
    by `default` where VAR is unset or empty (as in a shell: `VAR= mint-distill run ...` must not
    turn a data folder into the current folder). `where` names the value in the error."""

    def substitute(match: re.Match) -> str:
        name, default = match.group("name"), match.group("default")
        value = os.environ.get(name)
        if default is not None and not value:
            return default
        if value is None:
            raise RecipeError(f"{where} uses ${{{name}}} but the environment variable {name} is not set")
        return value

    return _VARIABLE.sub(substitute, text)

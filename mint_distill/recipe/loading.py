"""Read a recipe: YAML, `extends`, `${ENV:-default}` values, dotted overrides, strict validation."""

from __future__ import annotations

import copy
import difflib
import os
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from ..environment import expand_variables
from ..errors import RecipeError
from .schema import Recipe


def load_recipe(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load, merge, override and validate a recipe file."""
    raw = _read_with_extends(Path(path), chain=())
    for override in overrides:
        apply_override(raw, override)
    try:
        raw = _expand_env(raw)
    except RecipeError as error:
        raise RecipeError(f"{path}: {error}") from None
    try:
        return Recipe.model_validate(raw)
    except ValidationError as error:
        raise RecipeError(format_validation_error(error, source=str(path), overrides=overrides)) from None


def _read_with_extends(path: Path, chain: tuple[Path, ...]) -> dict:
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise RecipeError(f"recipe `extends` forms a cycle: {cycle}")
    if not path.is_file():
        extended_by = f" (extended by {chain[-1]})" if chain else ""
        raise RecipeError(f"recipe file not found: {path}{extended_by}")
    document = read_yaml_file(path) or {}
    if not isinstance(document, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of keys, got {type(document).__name__}")
    parents = document.pop("extends", None)
    if parents is None:
        return document
    parents = [parents] if isinstance(parents, str) else parents
    if not isinstance(parents, list) or not all(isinstance(parent, str) for parent in parents):
        raise RecipeError(f"{path}: `extends` must be a recipe file or a list of them, got {parents!r}")
    merged: dict = {}
    for parent in parents:
        merged = deep_merge(merged, _read_with_extends(path.parent / parent, (*chain, path)))
    return deep_merge(merged, document)


def read_yaml_file(path: Path) -> Any:
    """A YAML file's value; invalid YAML, a key given twice or bytes that are not UTF-8 are a
    RecipeError naming the file (and the line)."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except yaml.YAMLError as error:
        raise RecipeError(f"{path}: not valid YAML: {error}") from None
    except RecipeError as error:  # from _StrictLoader
        raise RecipeError(f"{path}:{error}") from None
    except UnicodeDecodeError as error:
        raise RecipeError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason})") from None


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (it keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`, merged by PyYAML
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, typing.Hashable):
                raise RecipeError(f"{line}: a key must be a plain value, got {key!r}")
            if key in seen:
                raise RecipeError(f"{line}: key `{key}` is given twice (first on line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def deep_merge(base: dict, update: dict) -> dict:
    """Mappings merge key by key, except that an empty mapping clears the base's; any other value
    (lists included) replaces the base value."""
    result = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and value and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _expand_env(value: Any, key: str = "") -> Any:
    """`value` with `${VAR}` expanded in every string; errors name the dotted `key`."""
    if isinstance(value, dict):
        return {name: _expand_env(item, f"{key}.{name}" if key else str(name)) for name, item in value.items()}
    if isinstance(value, list):
        return [_expand_env(item, f"{key}.{index}") for index, item in enumerate(value)]
    if isinstance(value, str):
        return expand_variables(value, f"`{key}`")
    return value


def apply_override(raw: dict, override: str) -> None:
    """Apply `dotted.key=value` to a raw recipe dict; the value is parsed as YAML."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise RecipeError(f"override `{override}` must look like key.path=value (e.g. teacher.tuning.lora.r=8)")
    parts = key.split(".")
    fields = check_key_path(parts, origin=f"override `{override}`")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[_list_index(node, part, parts[: depth + 1], override)]
            continue
        if not isinstance(node.get(part), (dict, list)):
            node[part] = _unset_container(fields[depth])
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, parts, override)] = value
    else:
        node[last] = value


def _unset_container(field: FieldInfo | None) -> dict | list:
    """What an override writes into a key the recipe leaves unset: the field's default list or
    mapping, so that `evaluation.rankers.2.model=...` edits the default rankers and
    `data.item_text.main_categories.Bars=...` adds to the default entries, else a mapping."""
    default = field.get_default(call_default_factory=True) if field is not None else None
    if isinstance(default, (list, dict)):
        return TypeAdapter(field.annotation).dump_python(default, mode="json")
    return {}


def _list_index(node: list, part: str, parts: list[str], override: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise RecipeError(
            f"override `{override}`: `{'.'.join(parts)}` needs a list index below {len(node)}"
        )
    return int(part)


def check_key_path(parts: list[str], origin: str) -> list[FieldInfo | None]:
    """The schema field that each part of a dotted key names (None for a list index); a
    RecipeError naming the first part that the schema does not have."""
    annotation: Any = Recipe
    fields: list[FieldInfo | None] = []
    for depth, part in enumerate(parts):
        annotation = _unwrap_optional(annotation)
        here = ".".join(parts[:depth]) or "the top level"
        if typing.get_origin(annotation) is list:
            if not part.isdigit():
                raise RecipeError(f"{origin}: `{here}` is a list; address an item by index ({here}.0)")
            annotation = typing.get_args(annotation)[0]
            fields.append(None)
            continue
        if typing.get_origin(annotation) is dict:  # any key names an entry: `ablations.filter-none`
            annotation = typing.get_args(annotation)[1]
            fields.append(None)
            continue
        if not _is_model(annotation):
            raise RecipeError(f"{origin}: `{here}` is a plain value and has no key `{part}`")
        if part not in annotation.model_fields:
            raise RecipeError(_unknown_key_message(".".join(parts[: depth + 1]), part, annotation, origin))
        field = annotation.model_fields[part]
        fields.append(field)
        annotation = field.annotation
    return fields


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unwrap_optional(annotation: Any) -> Any:
    """`X | None` -> X, preferring a model or list member of a wider union."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return annotation
    members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    structured = [m for m in members if _is_model(m) or typing.get_origin(m) in (list, dict)]
    return (structured or members)[0]


def _unknown_key_message(path: str, key: str, model: type[BaseModel], origin: str) -> str:
    allowed = sorted(model.model_fields)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    return f"{origin}: unknown key `{path}`.{hint} Allowed keys here: {', '.join(allowed)}."


def format_validation_error(error: ValidationError, source: str, overrides: Sequence[str] = ()) -> str:
    """One line per problem; a problem with a key that an override set names that override."""
    lines = [f"{source}: the recipe is not valid:"]
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"])
        lines.extend(_one_problem(item, path) + _set_by(path, overrides))
    return "\n".join(lines)


def _set_by(path: str, overrides: Sequence[str]) -> list[str]:
    """The last override that set `path`, a key inside it or the section holding it."""
    setting = [
        override
        for override in overrides
        if (key := override.partition("=")[0]) == path or key.startswith(f"{path}.") or path.startswith(f"{key}.")
    ]
    return [f"    (set on the command line: `{setting[-1]}`)"] if setting else []


def _one_problem(item: dict, path: str) -> list[str]:
    if item["type"] == "extra_forbidden":
        try:
            check_key_path([str(part) for part in item["loc"]], origin="recipe")
        except RecipeError as unknown:
            return [f"  - {unknown}".replace("recipe: ", "", 1)]
    if item["type"] == "missing":
        return [f"  - `{path}` is required but missing."]
    if not path:  # a check across sections: its message names the keys
        return [f"  - {item['msg'].removeprefix('Value error, ')}."]
    return [f"  - `{path}`: {item['msg']}; got {item.get('input')!r}."]

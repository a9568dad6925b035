"""The recipe's precision keys, and what each one runs at on this machine."""

from __future__ import annotations

import copy
from typing import Any

# Dotted key -> whether it is a training's mixed precision (no / bf16 / fp16) rather than an
# inference precision (float32 / bfloat16).
PRECISION_KEYS: dict[str, bool] = {
    "teacher.tuning.mixed_precision": True,
    "teacher.generation.precision": False,
    "filter.precision": False,
    "students.biencoder.training.mixed_precision": True,
    "students.negatives.precision": False,
    "students.crossencoder.training.mixed_precision": True,
    "evaluation.precision": False,
}


def resolve_here(precision: str, training: bool) -> str:
    """What `precision` runs at on the device models load on."""
    from ..models.precision import default_device_type, resolve_mixed_precision, resolve_precision

    device_type = default_device_type()
    if training:
        return resolve_mixed_precision(precision, use_cpu=device_type == "cpu")
    return resolve_precision(precision, device_type)


def precision_settings(dump: dict[str, Any]) -> dict[str, str]:
    """Dotted key -> precision, from a recipe's `model_dump(mode="json")`."""
    return {key: _parent(dump, key)[key.rsplit(".", 1)[-1]] for key in PRECISION_KEYS}


def with_auto_resolved(dump: dict[str, Any]) -> dict[str, Any]:
    """A copy of a recipe's dump with each `auto` precision replaced by what it runs at here.

    Stage fingerprints are taken from it, so they follow the arithmetic a stage does: a stage
    run at an explicit bf16 stays fresh when the key becomes `auto` on a CPU where `auto` is
    bf16, and reruns on one where it is float32.
    """
    resolved = copy.deepcopy(dump)
    for key, training in PRECISION_KEYS.items():
        parent, leaf = _parent(resolved, key), key.rsplit(".", 1)[-1]
        if parent[leaf] == "auto":
            parent[leaf] = resolve_here("auto", training)
    return resolved


def _parent(dump: dict[str, Any], key: str) -> dict[str, Any]:
    node = dump
    for part in key.split(".")[:-1]:
        node = node[part]
    return node

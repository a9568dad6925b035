"""Precision: float32, or bfloat16 where the hardware runs it natively.

bfloat16 makes the embedded models 1.3-1.7x faster on CPUs with AVX512-BF16 or AMX (and on
Ampere or newer GPUs) at a small cost in agreement with float32. On other CPUs PyTorch emulates
it, and a training step of MPNet took 36x as long as in float32 on an AVX2-only CPU. So `auto`
(inference) and mixed precision `auto` (training) pick bfloat16 only where it is native; an
explicit bfloat16 is kept, with a warning where it is emulated.

Two ways to run inference: `cast` converts an inference-only model's weights (fastest),
`autocast` runs the enclosed forward passes in bfloat16 and leaves shared models untouched.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Annotated, Literal

from pydantic import BeforeValidator

log = logging.getLogger(__name__)

Precision = Literal["auto", "float32", "bfloat16"]
ResolvedPrecision = Literal["float32", "bfloat16"]


def _yaml_no(value):
    """YAML 1.1 reads an unquoted `no` as false; for a mixed-precision key it means "no"."""
    return "no" if value is False else value


MixedPrecision = Annotated[Literal["auto", "no", "fp16", "bf16"], BeforeValidator(_yaml_no)]

# CPU features with which PyTorch computes bfloat16 natively: x86 (AVX512-BF16, AMX) and Arm.
NATIVE_BF16_CPU_FEATURES = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


def default_device_type() -> str:
    """Where models load when no device is given: the GPU if there is one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def native_bf16(device_type: str) -> bool:
    """Whether `device_type` ("cpu", "cuda") computes bfloat16 natively."""
    import torch

    if device_type == "cuda":
        # By default torch also says yes where it only emulates bfloat16 (before Ampere).
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return device_type == "cpu" and _cpu_has_native_bf16()


@functools.cache
def _cpu_has_native_bf16() -> bool:
    import torch

    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is None:  # older torch
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    found = capabilities()
    return any(found.get(feature) for feature in NATIVE_BF16_CPU_FEATURES)


def resolve_precision(precision: Precision, device_type: str | None = None) -> ResolvedPrecision:
    """The precision a model on `device_type` (default: where models load) runs at."""
    if precision == "auto":
        return "bfloat16" if native_bf16(device_type or default_device_type()) else "float32"
    return precision


def resolve_mixed_precision(requested: str, use_cpu: bool) -> str:
    """The Accelerate `mixed_precision` a training runs with.

    `auto` is bf16 where the device computes it natively, else fp16 on a GPU and none on the
    CPU; fp16 needs a GPU and means none on the CPU.
    """
    import torch

    on_gpu = torch.cuda.is_available() and not use_cpu
    if requested == "auto":
        if native_bf16("cuda" if on_gpu else "cpu"):
            return "bf16"
        return "fp16" if on_gpu else "no"
    if requested == "fp16" and not on_gpu:
        log.warning("mixed_precision fp16 needs a GPU; training in float32 on the CPU")
        return "no"
    return requested


def training_mixed_precision(requested: str, use_cpu: bool) -> str:
    """`resolve_mixed_precision` for a training about to start, warning where its bf16 is emulated."""
    import torch

    resolved = resolve_mixed_precision(requested, use_cpu)
    warn_if_emulated(resolved, "cuda" if torch.cuda.is_available() and not use_cpu else "cpu")
    return resolved


def emulated(precision: str, device_type: str) -> bool:
    """Whether `precision` (resolved) is a bfloat16 that `device_type` only emulates."""
    return precision in ("bfloat16", "bf16") and not native_bf16(device_type)


def warn_if_emulated(precision: str, device_type: str) -> None:
    """Log, once per process, that the bfloat16 (`bf16`) asked for is emulated on `device_type`."""
    if emulated(precision, device_type):
        _warn_emulated(device_type)


@functools.cache
def _warn_emulated(device_type: str) -> None:
    lacking = {"cpu": "CPU has no AVX512-BF16 or AMX", "cuda": "GPU predates Ampere"}.get(device_type, device_type)
    log.warning(
        "bfloat16 was asked for, but this %s, so PyTorch emulates it (on a CPU, tens of times slower "
        "than float32); precision `auto` picks float32 here",
        lacking,
    )


def autocast(precision: Precision, device_type: str):
    """A context that runs the enclosed forward passes at `precision` on `device_type` ("cpu", "cuda")."""
    resolved = resolve_precision(precision, device_type)
    if resolved == "float32":
        return contextlib.nullcontext()
    warn_if_emulated(resolved, device_type)
    import torch

    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)


def cast(model, precision: Precision):
    """`model` with its floating-point weights in `precision` (in place, for inference only)."""
    resolved = resolve_precision(precision, model.device.type)
    if resolved == "float32":
        return model
    warn_if_emulated(resolved, model.device.type)
    import torch

    return model.to(torch.bfloat16)

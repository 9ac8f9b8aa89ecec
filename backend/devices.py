"""Where a job runs and at what precision: the devices this machine has, 'auto' resolved, autocast contexts.

torch is imported inside the functions: the API validates options without paying for it at import time.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager

from backend.runtime import cpu_model

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,2})?)$")
PRECISIONS = ("fp32", "bf16", "fp16")


class DeviceError(ValueError):
    """A device or precision this machine cannot provide; the message names what exists."""


def available_devices() -> list[dict]:
    """Every device a job can use here, CPU first, with its name and memory in bytes."""
    import psutil
    import torch

    out = [{"device": "cpu", "name": cpu_model(), "memory_bytes": psutil.virtual_memory().total, "bf16_autocast": True}]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            out.append(
                {
                    "device": f"cuda:{i}",
                    "name": props.name,
                    "memory_bytes": props.total_memory,
                    "capability": f"{props.major}.{props.minor}",
                    "bf16_autocast": bool(torch.cuda.is_bf16_supported()),
                }
            )
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append({"device": "mps", "name": "Apple Metal (MPS)", "memory_bytes": None, "bf16_autocast": False})
    return out


def _names() -> list[str]:
    names = [d["device"] for d in available_devices()]
    return names + (["cuda"] if any(n.startswith("cuda:") for n in names) else [])


def check_device(name: object) -> str:
    """`name` when this machine has that device ('auto' always); DeviceError naming the ones it has otherwise."""
    if not isinstance(name, str) or not DEVICE_PATTERN.match(name.strip().lower()):
        raise DeviceError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}.")
    name = name.strip().lower()
    if name != "auto" and name not in _names():
        raise DeviceError(
            f"device {name!r} is not available on this machine; available: "
            f"{['auto', *[n for n in _names() if n != 'cuda']]}."
        )
    return name


def resolve_device(name: str | None):
    """The torch.device a job runs on: 'auto' (or None) is CUDA when present, else the CPU."""
    import torch

    name = check_device(name or "auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def default_precision(device) -> str:
    """bf16 on a CUDA device that supports it (autocast, fp32 weights), fp32 elsewhere."""
    import torch

    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def check_precision(precision: object, device) -> str:
    """`precision` when the device can run it: fp32 anywhere, bf16 on CPU and CUDA (bf16-capable), fp16 on CUDA."""
    import torch

    if precision not in PRECISIONS:
        raise DeviceError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}.")
    if precision == "fp16" and device.type != "cuda":
        raise DeviceError(f"precision 'fp16' needs a CUDA device; this job runs on {device}: use 'fp32' or 'bf16'.")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError(f"{device} does not support bf16; use 'fp16' or 'fp32'.")
    if precision == "bf16" and device.type == "mps":
        raise DeviceError("bf16 autocast is not offered on mps here; use 'fp32'.")
    return precision


def autocast(device, precision: str) -> Callable[[], ContextManager]:
    """A factory of the context forward passes run under: autocast to bf16/fp16, or nothing for fp32."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def synchronize(device) -> None:
    """Wait for queued kernels, so that a timer read afterwards measures them."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)

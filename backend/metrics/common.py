"""Helpers shared by the metric modules: measuring without side effects, units. (The layers pruning acts on and
the parameter counts are backend.nnstats', which pruning shares.)"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

Batch = Mapping[str, torch.Tensor]
Predict = Callable[[nn.Module, Batch], torch.Tensor]

MB = 1_000_000  # every *_mb figure in this package is decimal megabytes (1 MB = 1,000,000 bytes)
MB_NOTE = "MB = 1,000,000 bytes (decimal megabytes)"

CONV_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def pruned_attributes(model: nn.Module) -> list[tuple[nn.Module, str, Any]]:
    """(module, name, current value) of every attribute that a pruning pre-hook rewrites on forward."""
    saved = []
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            name = getattr(hook, "_tensor_name", None)
            if name is not None and hasattr(module, name):
                saved.append((module, name, getattr(module, name)))
    return saved


@contextlib.contextmanager
def measuring(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the duration; afterwards every module's train/eval flag and pruned weights are as before."""
    modes = [(m, m.training) for m in model.modules()]
    pruned = pruned_attributes(model)
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
        # The pruning pre-hook replaced `weight` with a tensor made under inference_mode; put the old one back.
        for module, name, value in pruned:
            setattr(module, name, value)


def finite(value: Any) -> float | None:
    """A float, or None when the value is missing or not finite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def ratio(numerator: Any, denominator: Any) -> float | None:
    """numerator / denominator, or None when either is unknown or the denominator is 0."""
    num, den = finite(numerator), finite(denominator)
    if num is None or den is None or den == 0:
        return None
    return num / den


def batch_size_of(batch: Batch) -> int:
    """Number of samples in a batch dict (the first dimension of its first tensor)."""
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
    raise ValueError("batch has no tensor with a batch dimension")

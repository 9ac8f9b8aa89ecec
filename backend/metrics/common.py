"""Helpers shared by the metric modules: measuring without side effects, effective weights, units."""

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

# The weight layers counted for FLOPs; those of them not tied to an embedding are the ones L1 pruning acts on.
PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
PRUNABLE_SCOPE = (
    "weights of the Conv/Linear layers L1 pruning acts on; biases, norms, embeddings and weights "
    "tied to an embedding (T5's lm_head) excluded"
)
CONV_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def effective_param(module: nn.Module, name: str) -> torch.Tensor:
    """A parameter as the forward pass sees it: `name_orig * name_mask` for a pruned-but-not-removed one."""
    orig, mask = getattr(module, f"{name}_orig", None), getattr(module, f"{name}_mask", None)
    if isinstance(orig, torch.Tensor) and isinstance(mask, torch.Tensor):
        # Computed here, not read from module.weight: that attribute is only refreshed by the next forward.
        return (orig * mask).detach()
    return getattr(module, name).detach()


def weight_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name, module) for every Conv/Linear layer that has a weight."""
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE_TYPES) and _has_weight(module):
            yield name, module


def prunable_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """The Conv/Linear layers pruning acts on and sparsity is measured over: those whose weight is not an embedding's.

    A weight tied to an embedding (T5's lm_head shares the input embedding) is left out: pruning it would
    prune the embedding too.
    """
    tied = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    for name, module in weight_layers(model):
        if id(getattr(module, "weight_orig", None) if hasattr(module, "weight_orig") else module.weight) not in tied:
            yield name, module


def _has_weight(module: nn.Module) -> bool:
    return isinstance(getattr(module, "weight", None), torch.Tensor) or hasattr(module, "weight_orig")


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

"""Counting a torch model's weights: the layers pruning acts on (and sparsity is measured over) and exact parameter
counts. Plain torch, no other backend module: pruning uses it below the metrics, and the metrics measure with it."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

# The weight layers counted for FLOPs; those of them not tied to an embedding are the ones L1 pruning acts on.
PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
PRUNABLE_SCOPE = (
    "weights of the Conv/Linear layers L1 pruning acts on; biases, norms, embeddings and weights "
    "tied to an embedding (T5's lm_head) excluded"
)


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


def _unique_params(model: nn.Module):
    """(module, local name, parameter) for every distinct parameter; tied weights are counted once."""
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) not in seen:
                seen.add(id(param))
                yield module, name, param


def count_parameters(model: nn.Module) -> dict:
    """{"total", "nonzero", "trainable"}: exact counts; nonzero uses orig*mask for pruned-but-not-removed weights."""
    total = nonzero = trainable = 0
    with torch.no_grad():
        for module, name, param in _unique_params(model):
            effective = name[:-5] if name.endswith("_orig") and hasattr(module, f"{name[:-5]}_mask") else name
            total += param.numel()
            nonzero += int(torch.count_nonzero(effective_param(module, effective)))
            trainable += param.numel() if param.requires_grad else 0
    return {"total": total, "nonzero": nonzero, "trainable": trainable}

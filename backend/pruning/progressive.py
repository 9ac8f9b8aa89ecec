"""Progressive L1 unstructured pruning with torch.nn.utils.prune, made permanent at the end."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import prune

from backend.nnstats import prunable_layers
from backend.pruning import PruningStep


def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, "weight") for every layer pruning acts on (the same layers sparsity is measured over)."""
    return [(module, "weight") for _, module in prunable_layers(model)]


def schedule(target: float, steps: int) -> list[float]:
    """Cumulative sparsity after each step, cubic (Zhu & Gupta 2017): big cuts early, gentle ones near the end."""
    return [target * (1.0 - (1.0 - k / steps) ** 3) for k in range(1, steps + 1)]


def _pruned_count(module: nn.Module, name: str) -> int:
    mask = getattr(module, f"{name}_mask", None)
    return 0 if mask is None else int((mask == 0).sum())


# How each criterion picks the weights to zero: torch.nn.utils.prune's own unstructured methods.
CRITERIA = {"l1": prune.L1Unstructured, "random": prune.RandomUnstructured}


def prune_to(params: list[tuple[nn.Module, str]], target: float, scope: str = "global", criterion: str = "l1") -> None:
    """Raise the unstructured sparsity of `params` to `target` (by L1 magnitude, or at random), as an exact count.

    Counts, not fractions, are handed to torch's pruning: fractions are rounded at every step, and the
    roundings would pile up over the steps. Weights already pruned stay pruned (torch's PruningContainer
    picks the new ones among the rest).
    """
    method = CRITERIA[criterion]
    if scope == "global":
        total = sum(getattr(m, n).numel() for m, n in params)
        extra = round(target * total) - sum(_pruned_count(m, n) for m, n in params)
        if extra > 0:
            prune.global_unstructured(params, pruning_method=method, amount=extra)
        return
    for module, name in params:
        extra = round(target * getattr(module, name).numel()) - _pruned_count(module, name)
        if extra > 0:
            method.apply(module, name, amount=extra)


def achieved_sparsity(params: list[tuple[nn.Module, str]]) -> float:
    """Zeros among the pruned weights, exactly."""
    zeros = sum(int((getattr(m, n) == 0).sum()) for m, n in params)
    total = sum(getattr(m, n).numel() for m, n in params)
    return zeros / max(1, total)


def make_permanent(model: nn.Module) -> int:
    """prune.remove everywhere: weights become plain parameters; no *_orig or *_mask remains. Returns the count."""
    removed = 0
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
                removed += 1
    return removed


def progressive_prune(
    model: nn.Module,
    target: float,
    steps: int,
    *,
    scope: str = "global",
    criterion: str = "l1",
    after_step: Callable[[PruningStep], None] | None = None,
) -> list[float]:
    """Prune to `target` in `steps` steps, calling `after_step(PruningStep)` (fine-tune, validate) after each."""
    params = prunable_weights(model)
    reached = []
    for step, goal in enumerate(schedule(target, steps), start=1):
        prune_to(params, goal, scope, criterion)
        reached.append(achieved_sparsity(params))
        if after_step is not None:
            after_step(PruningStep(step=step, target_sparsity=goal, achieved_sparsity=reached[-1]))
    make_permanent(model)
    return reached


@torch.no_grad()
def has_masks(model: nn.Module) -> bool:
    """True when any *_orig parameter or *_mask buffer is left."""
    names = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
    return any(n.endswith("_orig") or n.endswith("_mask") for n in names)

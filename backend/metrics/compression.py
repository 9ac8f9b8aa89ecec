"""Compression: exact parameter counts (effective weights of pruned layers), layer counts and sparsity."""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from backend.nnstats import PRUNABLE_SCOPE, effective_param, prunable_layers
from backend.nnstats import count_parameters as count_parameters  # one of this module's public names

from .common import CONV_TYPES

LAYERS_COUNTED = (
    "Conv = nn.Conv1d/2d/3d modules, Linear = nn.Linear modules, Embedding = nn.Embedding modules; "
    "weight_layers = their sum; transformer_blocks = outermost repeated modules (items of a "
    "ModuleList) that contain an attention module, e.g. DistilBERT TransformerBlock, T5 T5Block"
)


def _is_attention(module: nn.Module) -> bool:
    return "attention" in type(module).__name__.lower() or isinstance(module, nn.MultiheadAttention)


def _transformer_blocks(model: nn.Module) -> Counter:
    """Class-name counts of the outermost ModuleList items that contain an attention module."""
    blocks: Counter = Counter()
    found: list[nn.Module] = []
    for module in model.modules():  # pre-order, so an outer block is seen before the layers inside it
        if not isinstance(module, nn.ModuleList):
            continue
        for item in module:
            inside_found = any(item is sub for block in found for sub in block.modules())
            if not inside_found and not _is_attention(item) and any(_is_attention(m) for m in item.modules()):
                found.append(item)
                blocks[type(item).__name__] += 1
    return blocks


def count_layers(model: nn.Module) -> dict:
    """Conv, Linear and Embedding module counts, total weight layers and transformer blocks, with what is counted."""
    conv = sum(isinstance(m, CONV_TYPES) for m in model.modules())
    linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    embedding = sum(isinstance(m, nn.Embedding) for m in model.modules())
    blocks = _transformer_blocks(model)
    return {
        "conv": conv,
        "linear": linear,
        "embedding": embedding,
        "weight_layers": conv + linear + embedding,
        "transformer_blocks": sum(blocks.values()),
        "transformer_block_types": dict(blocks),
        "counted": LAYERS_COUNTED,
    }


def sparsity(model: nn.Module) -> dict:
    """Fraction of zero weights over the layers pruning acts on: global (exact, shared weights once) and per layer."""
    per_layer: dict[str, float] = {}
    zeros = elements = 0
    seen: set[int] = set()
    with torch.no_grad():
        for name, module in prunable_layers(model):
            weight = effective_param(module, "weight")
            layer_zeros = int(weight.numel() - torch.count_nonzero(weight))
            per_layer[name] = layer_zeros / weight.numel() if weight.numel() else 0.0
            key = id(getattr(module, "weight_orig", None) if hasattr(module, "weight_orig") else module.weight)
            if key not in seen:
                seen.add(key)
                zeros += layer_zeros
                elements += weight.numel()
    return {
        "global_sparsity": zeros / elements if elements else 0.0,
        "zero_weights": zeros,
        "weights": elements,
        "per_layer": per_layer,
        "scope": PRUNABLE_SCOPE,
    }

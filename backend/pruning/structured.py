"""Progressive structured pruning: structure is physically removed after every step, so removed FLOPs can become
milliseconds, with KD fine-tuning between steps (the pipeline's after_step).

CNNs lose output channels, found with torch-pruning's dependency graph (residual additions and depthwise
convolutions keep matching widths); the classifier's outputs are kept. Transformers lose attention heads (the
query/key/value rows and output-projection columns of a head go together, so every remaining head keeps its
full head dimension) and FFN units, the same count in every block, so the model's config still describes it.

`sparsity` is the fraction of prunable structure removed: of the prunable convolutions' output channels, or of
each block's heads and FFN units. Kept widths are rounded to a multiple of `structured_round_to` (8 by default),
the multiple CPU and GPU kernels vectorise over. Importance: `l1` (weight magnitude of the unit) or `taylor`
(|weight x gradient| of the job's fine-tuning loss, the distillation loss where the job distils, on a train
batch; Molchanov et al. 2019).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backend.options import Option
from backend.pruning import PruningMethod, PruningStep

IMPORTANCE = Option(
    "structured_importance",
    "string",
    default="l1",
    choices=("l1", "taylor"),
    help="structured: rank channels / heads / FFN units by weight magnitude (l1) or by |weight x gradient| of "
    "the fine-tuning loss on a train batch (taylor)",
    label="Structured importance",
    group="pruning",
    owner="pruning_method:structured",
)
ROUND_TO = Option(
    "structured_round_to",
    "integer",
    default=8,
    minimum=1,
    maximum=64,
    help="structured: kept channel and FFN-unit counts are rounded to a multiple of this",
    label="Round widths to",
    group="pruning",
    owner="pruning_method:structured",
)
TAYLOR_BATCH = 64  # train examples the Taylor importance's gradient is taken on


@dataclass
class TransformerParts:
    """A transformer's prunable structure, named by the model's registry entry.

    `blocks`: per block, the attention's (query, key, value, output) Linear layers as (owner, attribute) pairs
    (None where heads are not pruned) and the FFN's (input, output) Linear layers as (owner, attribute) pairs.
    `head_dim`: the width of one head. `set_heads(block_index, n)` and `set_ffn_width(n)` tell the model (and its
    config) the new counts.
    """

    attention: list[tuple[tuple[Any, str], ...] | None]
    ffn: list[tuple[tuple[Any, str], tuple[Any, str]]]
    head_dim: int
    set_heads: Callable[[int, int], None]
    set_ffn_width: Callable[[int], None]


def rounded_keep(total: int, fraction_removed: float, multiple: int) -> int:
    """Units to keep when `fraction_removed` of `total` go, rounded to the nearest `multiple` (at least one)."""
    keep = total * (1.0 - fraction_removed)
    if total <= multiple:
        return max(1, int(round(keep)))
    return int(min(total, max(multiple, multiple * round(keep / multiple))))


def run(model, config, after_step, context=None) -> dict:
    """Remove config.sparsity of the prunable structure in config.pruning_steps steps (cubic schedule)."""
    if context is None:
        raise ValueError("structured pruning needs the job's context (train batch, loss, model structure)")
    importance = getattr(config, "structured_importance", IMPORTANCE.default)
    round_to = int(getattr(config, "structured_round_to", ROUND_TO.default))
    parts = context.transformer_parts(model) if context.transformer_parts is not None else None
    if context.family == "text":
        if parts is None:
            raise ValueError("structured pruning: this model's registry entry does not name its heads and FFN units")
        return _prune_transformer(model, config, after_step, context, importance, round_to)
    return _prune_cnn(model, config, after_step, context, importance, round_to)


# ---- CNNs: torch-pruning ------------------------------------------------------------------------------


def _conv_channels(model, keep: list) -> int:
    from torch import nn

    kept = {id(m) for m in keep}
    return sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d) and id(m) not in kept)


def _prune_cnn(model, config, after_step, context, importance: str, round_to: int) -> dict:
    import torch_pruning as tp

    from backend.pruning.progressive import schedule
    from backend.pruning.structural import channel_floor_ratios

    keep = context.keep_layers(model)
    batch = context.train_batch(TAYLOR_BATCH)
    inputs = batch["pixel_values"][:1]
    targets = schedule(config.sparsity, config.pruning_steps)
    pruner = tp.pruner.BasePruner(
        model,
        inputs,
        importance=tp.importance.TaylorImportance()
        if importance == "taylor"
        else tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=config.sparsity,
        pruning_ratio_dict=channel_floor_ratios(model, config.sparsity, round_to, keep),
        iterative_steps=config.pruning_steps,
        # the schedule's targets, each capped by the layer's ratio (channel_floor_ratios lowers a few layers')
        iterative_pruning_ratio_scheduler=lambda ratio, _steps: [0.0, *(min(t, ratio) for t in targets)],
        ignored_layers=keep,
        round_to=round_to,
    )
    before = _conv_channels(model, keep)
    for step, goal in enumerate(targets, start=1):
        model.eval()
        if importance == "taylor":
            model.zero_grad(set_to_none=True)
            context.loss(model, batch).backward()
        pruner.step()
        model.zero_grad(set_to_none=True)
        after = _conv_channels(model, keep)
        after_step(PruningStep(step=step, target_sparsity=goal, achieved_sparsity=1.0 - after / max(1, before)))
    after = _conv_channels(model, keep)
    return {
        "scope": "output channels of every convolution but the classifier's, coupled layers pruned together "
        "(torch-pruning dependency graph)",
        "schedule": "cubic",
        "criterion": _criterion_text(importance),
        "round_to": round_to,
        "structure": {
            "conv_channels_before": before,
            "conv_channels_after": after,
            "removed_fraction": 1.0 - after / max(1, before),
        },
        "sparsity_meaning": "fraction of the prunable convolutions' output channels removed (weights that remain "
        "are dense: global_sparsity counts zeros, not removed structure)",
    }


def _criterion_text(importance: str) -> str:
    if importance == "taylor":
        return f"Taylor: |weight x gradient| of the fine-tuning loss on {TAYLOR_BATCH} train examples, summed per unit"
    return "L1 magnitude of each unit's weights"


# ---- transformers: heads and FFN units ------------------------------------------------------------------


def _importance(weight, taylor: bool):
    """Per weight: |weight x gradient| (Taylor) or |weight| (L1)."""
    return (weight * weight.grad).abs().detach() if taylor else weight.detach().abs()


def _head_scores(attention: tuple, head_dim: int, taylor: bool):
    """Per head: the summed importance of its query/key/value rows and its output-projection columns."""
    q, k, v, o = (getattr(owner, name) for owner, name in attention)
    heads = q.out_features // head_dim
    rows = sum(_importance(lin.weight, taylor).reshape(heads, -1).sum(1) for lin in (q, k, v))
    cols = _importance(o.weight, taylor).reshape(o.out_features, heads, head_dim).sum((0, 2))
    return rows + cols


def _ffn_scores(ffn: tuple, taylor: bool):
    """Per FFN unit: the summed importance of its input row and its output column."""
    (owner_in, name_in), (owner_out, name_out) = ffn
    lin_in, lin_out = getattr(owner_in, name_in), getattr(owner_out, name_out)
    return _importance(lin_in.weight, taylor).sum(1) + _importance(lin_out.weight, taylor).sum(0)


def _keep_heads(attention: tuple, idx, head_dim: int) -> None:
    """Slice the attention's layers down to the heads in `idx` (each head's rows and columns whole)."""
    import torch

    from backend.pruning.structural import slice_linear

    rows = (idx[:, None] * head_dim + torch.arange(head_dim, device=idx.device)).reshape(-1)
    for n, (owner, name) in enumerate(attention):
        setattr(owner, name, slice_linear(getattr(owner, name), rows, 1 if n == 3 else 0))


def _keep_ffn(ffn: tuple, idx) -> None:
    from backend.pruning.structural import slice_linear

    (owner_in, name_in), (owner_out, name_out) = ffn
    setattr(owner_in, name_in, slice_linear(getattr(owner_in, name_in), idx, 0))
    setattr(owner_out, name_out, slice_linear(getattr(owner_out, name_out), idx, 1))


def _width(parts: TransformerParts) -> tuple[int, int]:
    """(attention width over all blocks, FFN units over all blocks)."""
    heads = sum(getattr(*a[0]).out_features for a in parts.attention if a is not None)
    ffn = sum(getattr(*f[0]).out_features for f in parts.ffn)
    return heads, ffn


def _prune_transformer(model, config, after_step, context, importance: str, round_to: int) -> dict:
    import torch

    from backend.pruning.progressive import schedule

    parts = context.transformer_parts(model)
    head_dim = parts.head_dim
    heads0 = [None if a is None else getattr(*a[0]).out_features // head_dim for a in parts.attention]
    ffn0 = getattr(*parts.ffn[0][0]).out_features
    att_before, ffn_before = _width(parts)
    batch = context.train_batch(TAYLOR_BATCH) if importance == "taylor" else None
    device = next(model.parameters()).device
    for step, goal in enumerate(schedule(config.sparsity, config.pruning_steps), start=1):
        model.eval()
        if batch is not None:
            model.zero_grad(set_to_none=True)
            context.loss(model, batch).backward()
        parts = context.transformer_parts(model)
        ffn_keep = rounded_keep(ffn0, goal, round_to)
        for i, (attention, ffn) in enumerate(zip(parts.attention, parts.ffn, strict=True)):
            if attention is not None:
                keep = max(1, int(round(heads0[i] * (1.0 - goal))))
                scores = _head_scores(attention, head_dim, batch is not None)
                if keep < scores.numel():
                    _keep_heads(attention, torch.topk(scores, keep).indices.sort().values.to(device), head_dim)
                    parts.set_heads(i, keep)
            scores = _ffn_scores(ffn, batch is not None)
            if ffn_keep < scores.numel():
                _keep_ffn(ffn, torch.topk(scores, ffn_keep).indices.sort().values.to(device))
        parts.set_ffn_width(ffn_keep)
        model.to(device).zero_grad(set_to_none=True)
        att, ffn = _width(context.transformer_parts(model))
        removed = 1.0 - (att + ffn) / max(1, att_before + ffn_before)
        after_step(PruningStep(step=step, target_sparsity=goal, achieved_sparsity=removed))
    att, ffn = _width(context.transformer_parts(model))
    heads_now = [
        None if a is None else getattr(*a[0]).out_features // head_dim
        for a in context.transformer_parts(model).attention
    ]
    if any(h is None for h in heads0):
        notes = {"heads_note": "heads are not pruned in this model (its registry entry names no attention): FFN only"}
    else:
        notes = {}
    return {
        "scope": "attention heads (whole heads: query/key/value rows and output columns together) and FFN units "
        "of every block, the same count in every block",
        "schedule": "cubic",
        "criterion": _criterion_text(importance),
        "round_to": round_to,
        "structure": {
            "heads_per_block_before": heads0,
            "heads_per_block_after": heads_now,
            "head_dim": head_dim,
            "ffn_units_per_block_before": ffn0,
            "ffn_units_per_block_after": ffn // max(1, len(parts.ffn)),
            "attention_width_before": att_before,
            "attention_width_after": att,
            "ffn_units_before": ffn_before,
            "ffn_units_after": ffn,
            "removed_fraction": 1.0 - (att + ffn) / max(1, att_before + ffn_before),
            **notes,
        },
        "sparsity_meaning": "fraction of each block's heads and FFN units removed (heads counted by their width); "
        "the weights that remain are dense: global_sparsity counts zeros, not removed structure",
        "whole_blocks": "not removed: the student already keeps half the teacher's blocks (structural_ratio)",
    }


METHOD = PruningMethod(
    name="structured",
    description="Progressive structured pruning: channels (CNNs, torch-pruning dependency graph) or attention "
    "heads and FFN units (transformers) physically removed step by step, widths rounded to a multiple of 8, KD "
    "fine-tuning after each step; fewer FLOPs that a dense runtime turns into lower latency.",
    run=run,
    options=(IMPORTANCE, ROUND_TO),
)

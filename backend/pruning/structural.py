"""The building blocks of the student, a physically smaller copy of the teacher: each model's recipe (its registry
entry) combines them, and backend.models.student.make_student applies the recipe.

CNNs lose channels by L1-magnitude structural pruning (torch-pruning), the classifier's output kept.
Transformers keep half their layers (evenly spread, first and last kept), initialised from the teacher's
(as DistilBERT itself was made), and drop the FFN units of smallest L1 magnitude.
"""

from __future__ import annotations

import copy

import torch
import torch_pruning as tp
from torch import nn

CNN_ROUND_TO = 4  # the structural student's channel counts are multiples of this


def prune_cnn_channels(
    teacher: nn.Module, ratio: float, example_inputs: torch.Tensor, keep_layers: list[nn.Module]
) -> tuple[nn.Module, dict]:
    """Remove `ratio` of the channels of every prunable layer, by L1 magnitude, with torch-pruning."""
    student = copy.deepcopy(teacher).eval().requires_grad_(True)  # torch-pruning traces the autograd graph
    ignored = _twins(teacher, student, {id(m) for m in keep_layers})
    pruner = tp.pruner.BasePruner(
        student,
        example_inputs,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=ratio,
        pruning_ratio_dict=channel_floor_ratios(student, ratio, CNN_ROUND_TO, ignored),
        ignored_layers=ignored,
        round_to=CNN_ROUND_TO,
    )
    pruner.step()
    convs = lambda m: [x.out_channels for x in m.modules() if isinstance(x, nn.Conv2d)]  # noqa: E731
    before, after = sum(convs(teacher)), sum(convs(student))
    summary = {
        "method": "torch-pruning L1-magnitude channel pruning",
        "ratio": ratio,
        "removed": f"{before - after:,} of {before:,} convolution output channels "
        f"({(before - after) / before:.0%}); classifier outputs kept",
        "details": {"conv_channels_teacher": before, "conv_channels_student": after},
    }
    return student, summary


def channel_floor_ratios(model: nn.Module, ratio: float, round_to: int, ignored: list[nn.Module]) -> dict:
    """torch-pruning's per-layer ratios (`pruning_ratio_dict`) that leave every prunable convolution at least
    `round_to` output channels, for the layers where `ratio` would leave fewer.

    torch-pruning rounds a layer's kept channels down to a multiple of `round_to`; when that is 0, its dependency
    check refuses to remove every channel and skips the layer's whole group, which then keeps ALL its channels.
    So without this floor a larger ratio could give a larger network: ResNet-18 (quick) at 0.95 kept its
    64-channel stage whole (23.9 M FLOPs, against 0.8 M at 0.9). A capped layer keeps `round_to` channels."""
    skip = {id(m) for m in ignored}
    caps = {}
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and id(m) not in skip:
            cap = max(0.0, 1.0 - (round_to + 0.5) / m.out_channels)  # int(out_channels * (1 - cap)) == round_to
            if cap < ratio:
                caps[m] = cap
    return caps


def _twins(teacher: nn.Module, student: nn.Module, ids: set[int]) -> list[nn.Module]:
    """The student's copies of the teacher modules whose ids are given (deepcopy keeps module order)."""
    pairs = zip(teacher.modules(), student.modules(), strict=True)
    return [s for t, s in pairs if id(t) in ids]


def keep_half_the_layers(n: int) -> list[int]:
    """Half the layers (rounded up), evenly spread, the first and the last always kept.

    As DistilBERT itself was made: 12 -> [0, 2, 4, 7, 9, 11]. Keeping the last layer matters: the head was
    trained on its output (measured on the quick DistilBERT: 4 -> [0, 2] distilled to 84%, [0, 3] to 98%+).
    """
    keep = (n + 1) // 2
    if keep <= 1:
        return [n - 1] if n else []
    return sorted({round(i * (n - 1) / (keep - 1)) for i in range(keep)})


def ffn_keep(w_in: torch.Tensor, w_out: torch.Tensor, ratio: float) -> torch.Tensor:
    """Indices of the FFN units with the largest L1 norm (input rows plus output columns), in order."""
    score = w_in.abs().sum(dim=1) + w_out.abs().sum(dim=0)
    k = max(1, int(round(score.numel() * (1.0 - ratio))))
    return torch.topk(score, k).indices.sort().values


def slice_linear(layer: nn.Linear, idx: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear keeping the output (dim 0) or input (dim 1) units in `idx`."""
    weight = layer.weight.detach().index_select(dim, idx).clone()
    out_f, in_f = weight.shape
    new = nn.Linear(in_f, out_f, bias=layer.bias is not None)
    new.weight.data.copy_(weight)
    if layer.bias is not None:
        new.bias.data.copy_(layer.bias.detach() if dim == 1 else layer.bias.detach()[idx])
    return new


def text_summary(
    what: str,
    n_before: int,
    kept: list[int],
    ffn_before: int,
    ffn_after: int,
    ratio: float,
    block_map: dict[str, list[int]] | None = None,
) -> dict:
    """What the transformer recipe removed; `block_map[stack][j]` is the teacher block student block j was
    initialised from (the layer mapping of the distillation losses beyond the logits; default: one stack,
    "encoder", with the kept blocks)."""
    return {
        "method": "layer selection (half the blocks, evenly spread, first and last kept, initialised from "
        "the teacher) + L1-magnitude FFN-unit pruning",
        "ratio": ratio,
        "removed": f"{n_before - len(kept)} of {n_before} {what}; FFN width {ffn_before} -> {ffn_after} per block",
        "details": {
            "blocks_teacher": n_before,
            "blocks_student": len(kept),
            "kept_block_indices": kept,
            "ffn_units_teacher": ffn_before,
            "ffn_units_student": ffn_after,
            "block_map": block_map if block_map is not None else {"encoder": list(kept)},
        },
    }

"""2:4 semi-structured sparsity: in every group of 4 consecutive input weights of a row, the 2 of smallest
magnitude are zeroed (the pattern NVIDIA's sparse tensor cores and torch.sparse's semi-structured tensors run).

Linear weights are grouped along their input features; convolution weights along their input channels at each
kernel position (as NVIDIA's ASP does), where a group of the convolution has a multiple of 4 input channels
(depthwise convolutions are left dense). The mask is fixed once (torch.nn.utils.prune custom masks), the model
is KD fine-tuned with it, and the mask is made permanent. The pattern fixes the sparsity at 50% of every layer
it covers: the job's `sparsity` and `pruning_steps` do not apply. A speedup needs a sparse kernel: PyTorch has
one for 2:4 Linear weights on CUDA GPUs of compute capability 8.0 or later (measured in the report's
semi-structured block); elsewhere the dense runtimes see half-zero weights and run as fast as before.
"""

from __future__ import annotations

from backend.pruning import PruningMethod, PruningStep

N, M = 2, 4  # keep N of every M


def nm_mask(weight, n: int = N, m: int = M):
    """The N:M mask of a Linear (out, in) or Conv (out, in/groups, kh, kw) weight: 1 for the `n` largest |w| of
    every `m` consecutive input weights (input channels at each kernel position for a Conv)."""
    import torch

    w = weight.detach()
    if w.dim() == 2:
        grouped = w.abs().reshape(w.shape[0], -1, m)
        keep = torch.zeros_like(grouped).scatter_(-1, grouped.topk(n, dim=-1).indices, 1.0)
        return keep.reshape(w.shape)
    moved = w.abs().permute(0, 2, 3, 1)  # (out, kh, kw, in): groups along the input channels
    grouped = moved.reshape(*moved.shape[:3], -1, m)
    keep = torch.zeros_like(grouped).scatter_(-1, grouped.topk(n, dim=-1).indices, 1.0)
    return keep.reshape(moved.shape).permute(0, 3, 1, 2).contiguous()


def covered(module) -> bool:
    """Whether the layer's input dimension splits into groups of 4 (conv: per group of the convolution)."""
    from torch import nn

    if isinstance(module, nn.Linear):
        return module.in_features % M == 0
    return isinstance(module, nn.Conv2d) and (module.in_channels // module.groups) % M == 0


def run(model, config, after_step, context=None) -> dict:
    """Mask every covered layer 2:4 by magnitude, fine-tune with the mask fixed (after_step), make it permanent."""
    from torch.nn.utils import prune

    from backend.nnstats import prunable_layers
    from backend.pruning.progressive import achieved_sparsity, make_permanent

    layers = list(prunable_layers(model))
    chosen = [(name, module) for name, module in layers if covered(module)]
    for _, module in chosen:
        prune.custom_from_mask(module, "weight", nm_mask(module.weight))
    params = [(module, "weight") for _, module in layers]
    after_step(PruningStep(step=1, target_sparsity=0.5, achieved_sparsity=achieved_sparsity(params)))
    make_permanent(model)
    linear = sum(1 for _, m in chosen if type(m).__name__ == "Linear")
    return {
        "scope": f"{len(chosen)} of {len(layers)} prunable layers ({linear} Linear, {len(chosen) - linear} Conv); "
        "left dense: layers whose (per-group) input width is not a multiple of 4",
        "pattern": "2:4 (2 of every 4 consecutive input weights kept)",
        "schedule": "one step, mask fixed during fine-tuning",
        "criterion": "L1 magnitude within each group of 4",
        "covered_layers": [name for name, _ in chosen],
        "sparsity_meaning": "50% of every covered layer, fixed by the pattern; the job's sparsity and "
        "pruning_steps do not apply",
    }


METHOD = PruningMethod(
    name="nm_2_4",
    description="2:4 semi-structured sparsity (2 of every 4 consecutive input weights zeroed, by magnitude) of "
    "Linear and Conv weights, mask fixed during KD fine-tuning; faster only where a sparse kernel runs it "
    "(torch.sparse semi-structured tensors, Linear layers, CUDA GPUs of compute capability 8.0+).",
    run=run,
)

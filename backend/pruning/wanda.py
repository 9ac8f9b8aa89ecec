"""Wanda (Sun et al. 2023, "A Simple and Effective Pruning Approach for Large Language Models"): one shot, no
fine-tuning. A weight's score is |W_ij| x ||X_j||_2, the L2 norm of its input feature over a calibration batch of
the train split (forward hooks on every prunable layer); in every output row the `sparsity` fraction of lowest
scores is zeroed. For a convolution, X_j is the unfolded input patch element (input channel, kernel position)
the weight multiplies, so the score is exact. The baseline of what pruning alone does.
"""

from __future__ import annotations

from backend.options import Option
from backend.pruning import PruningMethod, PruningStep

CALIBRATION = Option(
    "wanda_calibration_samples",
    "integer",
    default=128,
    minimum=1,
    maximum=2048,
    help="wanda: train examples whose input activations weigh the weights",
    label="Wanda calibration samples",
    group="pruning",
    owner="pruning_method:wanda",
)


def input_norms(module, inputs):
    """Per input feature of the layer: the sum over the batch (and tokens / positions) of the squared input."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    x = inputs.detach().float()
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1]).pow(2).sum(0)
    sums = 0
    for chunk in x.split(8):  # unfolded patches are kh x kw times the input: a few examples at a time
        patches = F.unfold(chunk, module.kernel_size, module.dilation, module.padding, module.stride)
        sums = sums + patches.pow(2).sum((0, 2))  # per (input channel, kernel position), channels outermost
    per_group = module.in_channels // module.groups
    return sums.reshape(module.groups, per_group * module.kernel_size[0] * module.kernel_size[1]).to(torch.float32)


def wanda_mask(weight, sq_norms, fraction: float):
    """Keep-mask of a layer: per output row, the `fraction` of weights with the lowest |W| x ||X|| zeroed.

    `sq_norms`: squared input norms, (in_features,) for a Linear, (groups, in/groups x kh x kw) for a Conv."""
    import torch

    w = weight.detach().reshape(weight.shape[0], -1)
    norms = sq_norms.sqrt()
    if norms.dim() == 2:  # conv: each output channel reads its own group's inputs
        norms = norms.repeat_interleave(weight.shape[0] // norms.shape[0], dim=0)
    score = w.abs() * norms.to(w.device)
    k = int(round(fraction * w.shape[1]))
    mask = torch.ones_like(w)
    if k > 0:
        mask.scatter_(1, score.topk(k, dim=1, largest=False).indices, 0.0)
    return mask.reshape(weight.shape)


def calibrate(model, layers, forward, batch) -> dict:
    """Squared input norms of every layer over one forward pass of `batch` (forward hooks)."""
    import torch

    norms: dict = {}

    def hook(name, module):
        def record(_module, args) -> None:
            value = input_norms(module, args[0])
            norms[name] = value if name not in norms else norms[name] + value

        return record

    handles = [module.register_forward_pre_hook(hook(name, module)) for name, module in layers]
    try:
        model.eval()
        with torch.no_grad():
            forward(model, batch)
    finally:
        for handle in handles:
            handle.remove()
    return norms


def run(model, config, after_step, context=None) -> dict:
    """Score, mask and make permanent in one step; the pipeline validates after it and does not fine-tune."""
    from torch.nn.utils import prune

    from backend.nnstats import prunable_layers
    from backend.pruning.progressive import achieved_sparsity, make_permanent

    if context is None:
        raise ValueError("wanda needs the job's context (a calibration batch and the forward pass)")
    samples = int(getattr(config, "wanda_calibration_samples", CALIBRATION.default))
    layers = list(prunable_layers(model))
    batch = context.train_batch(samples)
    norms = calibrate(model, layers, context.forward, batch)
    unseen = [name for name, _ in layers if name not in norms]
    for name, module in layers:
        if name in norms:
            prune.custom_from_mask(module, "weight", wanda_mask(module.weight, norms[name], config.sparsity))
    params = [(module, "weight") for _, module in layers]
    after_step(PruningStep(step=1, target_sparsity=config.sparsity, achieved_sparsity=achieved_sparsity(params)))
    make_permanent(model)
    return {
        "scope": "per output row of every prunable layer",
        "schedule": "one shot",
        "criterion": "|weight| x L2 norm of its input over the calibration batch (Wanda)",
        "calibration_samples": int(next(iter(batch.values())).shape[0]),
        "layers_without_input": unseen,
        "fine_tuning": "none: a one-shot method, measured as pruned (what pruning alone does)",
    }


METHOD = PruningMethod(
    name="wanda",
    description="Wanda: one-shot pruning by |weight| x input-activation norm (calibration batch of the train "
    "split), per output row, with no fine-tuning: the baseline of what pruning alone does.",
    run=run,
    options=(CALIBRATION,),
    fine_tunes=False,
)

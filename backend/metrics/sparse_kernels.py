"""What a 2:4 semi-structured sparse kernel buys: the student's Linear layers whose weights already have the 2:4
pattern (at most 2 nonzeros in every 4 consecutive input weights) run as torch.sparse semi-structured tensors,
timed interleaved against the same model dense, at the same half precision, on the job's CUDA device.

Only CUDA GPUs of compute capability 8.0 or later have the kernel (cuSPARSELt / CUTLASS); elsewhere the speedup is
null with that reason. Any model is checked, whatever pruned it: the pattern is read from the weights.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from .common import Batch, Predict
from .efficiency import measure_latency

MIN_CAPABILITY = (8, 0)
# torch's semi-structured layout needs each dimension to be a multiple of these (the larger CUTLASS minimum)
MIN_ROWS, MIN_COLS = 64, 128


def has_2_4_pattern(weight: torch.Tensor) -> bool:
    """Whether every group of 4 consecutive input weights of every row has at most 2 nonzeros."""
    if weight.dim() != 2 or weight.shape[1] % 4:
        return False
    return bool(((weight.detach().reshape(-1, 4) != 0).sum(1) <= 2).all())


def eligible_layers(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """Linear layers with the 2:4 pattern and a shape the semi-structured kernels accept."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and module.out_features % MIN_ROWS == 0
        and module.in_features % MIN_COLS == 0
        and has_2_4_pattern(module.weight)
    ]


def no_kernel_reason(device: torch.device) -> str | None:
    """Why this device has no 2:4 sparse kernel, or None when it has one."""
    if device.type != "cuda":
        return (
            f"no sparse kernel on this device ({device.type}): torch.sparse semi-structured (2:4) tensors run only "
            f"on CUDA GPUs of compute capability {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]} or later; dense "
            "runtimes multiply the zeros"
        )
    capability = torch.cuda.get_device_capability(device)
    if capability < MIN_CAPABILITY:
        return f"no sparse kernel on this GPU: compute capability {capability[0]}.{capability[1]} is below 8.0"
    return None


def semi_structured_speed(
    model: nn.Module,
    predict: Predict,
    example_batch: Callable[[int], Batch],
    *,
    runs: int = 30,
    batch_sizes: tuple[int, ...] = (1, 32),
) -> dict:
    """Dense against 2:4-sparse execution of the same weights (fp16 on CUDA), interleaved; null with a reason
    where there is no kernel or no eligible layer."""
    layers = eligible_layers(model)
    device = next(model.parameters()).device
    out: dict = {
        "eligible_layers": [name for name, _ in layers],
        "pattern": "2:4 along the input features of Linear weights",
        "device": str(device),
    }
    reason = no_kernel_reason(device) or (None if layers else "no Linear layer has the 2:4 pattern and a shape "
                                          "the kernel accepts (multiples of 64 x 128)")  # fmt: skip
    if reason:
        return {**out, "speedup": None, "speedup_reason": reason}
    from torch.sparse import to_sparse_semi_structured

    dense = copy.deepcopy(model).eval().half()
    sparse = copy.deepcopy(dense)
    names = {name for name, _ in layers}
    for name, module in sparse.named_modules():
        if name in names:
            module.weight = nn.Parameter(to_sparse_semi_structured(module.weight.detach()), requires_grad=False)

    def half_batch(n: int) -> Batch:
        return {k: v.half() if v.is_floating_point() else v for k, v in example_batch(n).items()}

    latency = measure_latency(
        {"dense_fp16": dense, "sparse_2_4_fp16": sparse},
        predict,
        half_batch,
        batch_sizes=batch_sizes,
        runs=runs,
        pair=("dense_fp16", "sparse_2_4_fp16"),
    )
    return {**out, "speedup": latency["speedup"], "speedup_ci": latency["speedup_ci"], "latency": latency}

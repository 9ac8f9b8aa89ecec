"""Complexity: FLOPs/MACs with FlopCounterMode on eager attention, sparse-FLOP savings, memory (space)."""

from __future__ import annotations

import copy
import weakref

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from backend.nnstats import weight_layers

from .common import MB, MB_NOTE, Batch, Predict, batch_size_of, measuring, pruned_attributes
from .compression import sparsity
from .efficiency import param_buffer_bytes

DENSE_FLOPS_NOTE = (
    "Dense FLOPs do not fall with unstructured sparsity: a zero weight is still multiplied by "
    "dense kernels. sparse_flops is what skipping every zero weight would save (each Conv/Linear "
    "layer's FLOPs x its weight sparsity); flops_if_zeros_skipped is flops minus that."
)
FLOPS_METHOD = (
    "torch.utils.flop_counter.FlopCounterMode over one predict() call on a copy of the model in eval "
    "mode with eager attention (SDPA counts 0 on CPU); FLOPs = 2 x MACs; the mask multiply of a "
    "pruned-but-not-removed layer is not counted"
)


def _eager_copy(model: nn.Module) -> tuple[nn.Module, str]:
    """A deep copy in eval mode with eager attention where the model has a choice; and what it uses."""
    # A pruned-but-not-removed weight is a non-leaf tensor that deepcopy refuses: hand it a detached copy.
    memo = {
        id(value): value.detach().clone() for _, _, value in pruned_attributes(model) if isinstance(value, torch.Tensor)
    }
    clone = copy.deepcopy(model, memo).eval()
    config = getattr(clone, "config", None)
    if config is None or not hasattr(config, "_attn_implementation"):
        return clone, "not applicable (no attention implementation setting)"
    if hasattr(clone, "set_attn_implementation"):
        clone.set_attn_implementation("eager")
    else:  # older transformers: the config attribute is what the attention layers read
        config._attn_implementation = "eager"
    return clone, str(config._attn_implementation)


def _count_layer_flops(clone: nn.Module, counter: FlopCounterMode) -> dict[str, int]:
    """Hooks on the copy that add each Conv/Linear call's FLOPs to its layer, whatever the call path.

    The counter's own per-module table names modules by call path: T5's generate() calls the encoder directly,
    so its layers would appear under another root and be missed.
    """
    per_layer = {name: 0 for name, _ in weight_layers(clone)}
    started: dict[str, int] = {}

    def hooks(name: str):
        def before(_module, _args) -> None:
            started[name] = counter.get_total_flops()

        def after(_module, _args, _output) -> None:
            per_layer[name] += counter.get_total_flops() - started[name]

        return before, after

    for name, module in weight_layers(clone):
        before, after = hooks(name)
        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)
    return per_layer


def count_flops(model: nn.Module, predict: Predict, batch: Batch) -> dict:
    """Total and per-sample FLOPs and MACs, Conv/Linear breakdown, and the FLOPs skipping zeros would save."""
    clone, attention = _eager_copy(model)
    counter = FlopCounterMode(display=False)
    per_layer = _count_layer_flops(clone, counter)  # hooks on the copy only
    with counter, torch.inference_mode():
        predict(clone, batch)
    total = int(counter.get_total_flops())
    layer_sparsity = sparsity(clone)["per_layer"]
    saved = sum(per_layer[name] * layer_sparsity.get(name, 0.0) for name in per_layer)
    bs = batch_size_of(batch)
    return {
        "flops": total,
        "macs": total // 2,
        "batch_size": bs,
        "flops_per_sample": total / bs,
        "macs_per_sample": total / 2 / bs,
        "gflops_per_sample": total / bs / 1e9,
        "conv_linear_flops": sum(per_layer.values()),
        "per_layer_flops": per_layer,
        "sparse_flops": saved,
        "sparse_flops_per_sample": saved / bs,
        "flops_if_zeros_skipped": total - saved,
        "attention_implementation": attention,
        "method": FLOPS_METHOD,
        "note": DENSE_FLOPS_NOTE,
    }


class _LiveTensorTracker(TorchDispatchMode):
    """Tracks bytes of tensor storages created by ops and still referenced; keeps the peak."""

    def __init__(self, preexisting: set[int]) -> None:
        super().__init__()
        self.preexisting, self.live = preexisting, {}
        self.current = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self._track(leaf)
        return out

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr == 0 or ptr in self.preexisting:  # weights, buffers and inputs are not activations
            return
        entry = self.live.setdefault(ptr, [storage.nbytes(), 0])
        if entry[1] == 0:
            self.current += entry[0]
            self.peak = max(self.peak, self.current)
        entry[1] += 1
        weakref.finalize(tensor, self._release, ptr)

    def _release(self, ptr: int) -> None:
        entry = self.live.get(ptr)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                self.current -= entry[0]
                del self.live[ptr]


def _storage_ptrs(model: nn.Module, batch: Batch) -> set[int]:
    tensors = [*model.parameters(), *model.buffers(), *(v for v in batch.values() if isinstance(v, torch.Tensor))]
    return {t.untyped_storage().data_ptr() for t in tensors}


def space_complexity(model: nn.Module, predict: Predict, batch: Batch) -> dict:
    """Parameter memory and the peak bytes of live intermediate tensors during one predict() call."""
    with measuring(model), torch.inference_mode():
        tracker = _LiveTensorTracker(_storage_ptrs(model, batch))
        with tracker:
            predict(model, batch)
    params = {id(p): p for p in model.parameters()}.values()
    return {
        "param_memory_mb": sum(p.numel() * p.element_size() for p in params) / MB,
        "param_buffer_mb": param_buffer_bytes(model) / MB,
        "peak_activation_mb": tracker.peak / MB,
        "batch_size": batch_size_of(batch),
        "activation_method": "a TorchDispatchMode records the storage of every tensor an op returns and frees "
        "it when the last Python reference dies; the peak of the live total over one "
        "predict() call, weights, buffers and inputs excluded (kernel scratch space is not "
        "seen)",
        "unit_note": MB_NOTE,
    }

"""Exact parameter counts and sparsity for pruned models; size on disk; measuring leaves the model as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from backend.metrics.complexity import count_flops, space_complexity
from backend.metrics.compression import count_layers, count_parameters, sparsity
from backend.metrics.efficiency import measure_latency, memory_footprint, model_size, time_full_pass

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Hand counts for the toy model below.
LIN_W, LIN_B, CONV_W, CONV_B = 10 * 5, 5, 4 * 2 * 3 * 3, 4
TOTAL = LIN_W + LIN_B + CONV_W + CONV_B  # 131
LIN_PRUNED, CONV_PRUNED = 20, 36


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.bn = nn.BatchNorm2d(4, affine=False)  # buffers only: no parameters to count
        self.lin = nn.Linear(10, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.conv(x)).mean(dim=(2, 3))  # [B, 4]
        return self.lin(torch.cat([h, h[:, :2], h[:, :2], h[:, :2]], dim=1))  # [B, 10]


def predict(model, batch):
    return model(batch["x"]).argmax(-1)


def pruned_toy(remove: bool) -> Toy:
    torch.manual_seed(0)
    model = Toy()
    with torch.no_grad():  # make sure no weight is zero before pruning, so the hand counts are exact
        for p in model.parameters():
            p.copy_(p.sign().where(p != 0, torch.ones_like(p)) * (p.abs() + 0.01))
    prune.l1_unstructured(model.lin, "weight", amount=LIN_PRUNED)  # an int amount prunes exactly that many
    prune.l1_unstructured(model.conv, "weight", amount=CONV_PRUNED)
    if remove:
        prune.remove(model.lin, "weight")
        prune.remove(model.conv, "weight")
    return model


@pytest.mark.parametrize("remove", [False, True])
def test_pruned_counts_and_sparsity_are_exact(remove):
    model = pruned_toy(remove)
    counts = count_parameters(model)
    assert counts == {"total": TOTAL, "nonzero": TOTAL - LIN_PRUNED - CONV_PRUNED, "trainable": TOTAL}
    sp = sparsity(model)
    assert sp["per_layer"] == {"conv": CONV_PRUNED / CONV_W, "lin": LIN_PRUNED / LIN_W}
    assert sp["global_sparsity"] == (LIN_PRUNED + CONV_PRUNED) / (LIN_W + CONV_W)


def test_nonzero_uses_current_orig_times_mask():
    model = pruned_toy(remove=False)
    with torch.no_grad():  # training changed weight_orig since the last forward: module.weight is stale
        model.lin.weight_orig.zero_()
    assert count_parameters(model)["nonzero"] == TOTAL - LIN_W - CONV_PRUNED


def test_frozen_and_tied_parameters():
    emb = nn.Embedding(7, 3)
    head = nn.Linear(3, 7, bias=False)
    head.weight = emb.weight  # tied, as T5 ties its embeddings
    model = nn.Sequential(emb, head)
    emb.weight.requires_grad_(False)
    assert count_parameters(model) == {"total": 21, "nonzero": 21, "trainable": 0}
    size = model_size(model)
    assert 21 * 4 < size["dense_bytes"] < 21 * 4 + 200  # the tied tensor is stored once
    layers = count_layers(model)
    assert (layers["embedding"], layers["linear"], layers["weight_layers"]) == (1, 1, 2)


def test_size_dense_and_compressed():
    torch.manual_seed(0)
    dense, sparse = nn.Linear(200, 200), nn.Linear(200, 200)
    prune.l1_unstructured(sparse, "weight", amount=0.9)
    d, s = model_size(dense), model_size(sparse)
    assert d["dense_bytes"] == s["dense_bytes"]  # masks are folded in: same tensors, same dense bytes
    assert s["compressed_bytes"] < 0.5 * d["compressed_bytes"]  # what 90% zeros buy on disk
    assert d["model_size_mb"] == d["dense_bytes"] / 1e6
    quick = model_size(sparse, compress=False)
    assert quick["dense_bytes"] == s["dense_bytes"] and quick["compressed_bytes"] is None
    assert quick["compressed_size_mb_reason"]


def test_size_of_pruned_model_counts_every_layer():
    torch.manual_seed(0)
    model = nn.Sequential(*(nn.Linear(64, 64) for _ in range(4)))  # equal shapes: no tensor may be mistaken for another
    before = model_size(model)["dense_bytes"]
    prune.global_unstructured([(m, "weight") for m in model], pruning_method=prune.L1Unstructured, amount=0.5)
    assert model_size(model)["dense_bytes"] == before
    for m in model:
        prune.remove(m, "weight")
    assert model_size(model)["dense_bytes"] == before


def test_transformer_blocks_of_torch_encoder():
    layer = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, batch_first=True)
    model = nn.TransformerEncoder(layer, num_layers=3, enable_nested_tensor=False)
    assert count_layers(model)["transformer_blocks"] == 3


def snapshot(model: nn.Module) -> tuple:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    attrs = (model.lin.weight, model.conv.weight)
    return state, modes, attrs


@pytest.mark.parametrize("remove", [False, True])
def test_measuring_does_not_change_the_model(remove):
    model = pruned_toy(remove)
    model.train()
    model.bn.eval()  # a mixed mode must come back exactly as it was
    batch = {"x": torch.randn(4, 2, 6, 6)}
    state, modes, attrs = snapshot(model)
    count_parameters(model), sparsity(model), model_size(model), count_layers(model)
    memory_footprint(model, predict, batch)
    count_flops(model, predict, batch)
    space_complexity(model, predict, batch)
    time_full_pass(model, predict, [batch, (batch, torch.zeros(4))])
    measure_latency(
        {"teacher": model, "student": model},
        predict,
        lambda bs: {"x": torch.randn(bs, 2, 6, 6)},
        batch_sizes=(1,),
        runs=30,
        warmup=1,
    )
    after_state, after_modes, after_attrs = snapshot(model)
    assert after_modes == modes
    assert after_state.keys() == state.keys()
    assert all(torch.equal(after_state[k], state[k]) for k in state)  # BatchNorm running stats untouched
    assert all(a is b for a, b in zip(after_attrs, attrs, strict=True))  # pruned weight attributes put back


def test_memory_footprint_reports_weights_and_rss():
    model = nn.Linear(1000, 1000)
    mem = memory_footprint(model, lambda m, b: m(b["x"]).argmax(-1), {"x": torch.randn(64, 1000)})
    assert mem["param_buffer_mb"] == pytest.approx((1000 * 1000 + 1000) * 4 / 1e6)
    assert mem["peak_rss_increase_mb"] >= 0 and mem["rss_samples"] >= 1

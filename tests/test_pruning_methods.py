"""The pruning methods that buy speed (structured, nm_2_4) and the one-shot baseline (wanda): their shape and mask
invariants, and FLOPs against milliseconds (realised fraction, speedup intervals, the summary's verdict)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
)

from backend import pruning
from backend.metrics.realised import bought_nothing, flops_against_speed
from backend.metrics.sparse_kernels import eligible_layers, has_2_4_pattern, semi_structured_speed
from backend.metrics.stats import median_ratio_interval
from backend.metrics.summary import _pruning_speed
from backend.models.onnx_export import export_onnx
from backend.models.zoo import bert, distilbert
from backend.pruning import PruningContext, progressive
from backend.pruning.nm_2_4 import nm_mask
from backend.pruning.structured import rounded_keep
from backend.pruning.wanda import calibrate, input_norms, wanda_mask
from tests.engine_helpers import tiny_job


def _config(**kw):
    return SimpleNamespace(
        **{"sparsity": 0.5, "pruning_steps": 2, "structured_importance": "l1", "structured_round_to": 8, **kw}
    )


def _vision_context(x: torch.Tensor, y: torch.Tensor) -> PruningContext:
    return PruningContext(
        family="vision",
        train_batch=lambda n: {"pixel_values": x[:n], "labels": y[:n]},
        forward=lambda m, b: m(b["pixel_values"]),
        loss=lambda m, b: F.cross_entropy(m(b["pixel_values"]), b["labels"]),
        keep_layers=lambda m: [m.fc] if hasattr(m, "fc") else [m.classifier[-1]],
    )


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


# ---- structured: CNNs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "importance"), [("resnet18", "l1"), ("resnet18", "taylor"), ("mobilenetv2", "l1")]
)
def test_structured_cnn_removes_channels_in_multiples_of_8_and_exports(tmp_path, model_id, importance):
    torch.manual_seed(0)
    build = torchvision.models.resnet18 if model_id == "resnet18" else torchvision.models.mobilenet_v2
    model = build(num_classes=5).eval()
    classifier = model.fc if model_id == "resnet18" else model.classifier[-1]
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 5, (8,))
    before = [c.out_channels for c in _convs(model)]
    steps = []
    info = pruning.get_method("structured").run(
        model, _config(structured_importance=importance), steps.append, _vision_context(x, y)
    )
    after = [c.out_channels for c in _convs(model)]
    assert sum(after) < 0.6 * sum(before)  # half the channels gone, physically
    assert all(c % 8 == 0 for c in after)
    assert classifier.out_features == 5 and model(x).shape == (8, 5)
    assert [s.step for s in steps] == [1, 2] and steps[-1].achieved_sparsity == pytest.approx(0.5, abs=0.05)
    assert info["structure"]["conv_channels_after"] == sum(after)
    exported = export_onnx(model_id, model, {"pixel_values": x[:2]}, tmp_path / "onnx")
    assert (tmp_path / "onnx" / exported["files"]["model"]).stat().st_size > 0


def test_structured_cnn_at_high_sparsity_leaves_no_layer_whole():
    """At sparsity 0.9 in one step a 64-channel layer would round to 0 kept channels (multiples of 8), which
    torch-pruning answers by skipping the layer's group; the floor keeps 8 there and every convolution loses
    channels."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=5).eval()
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 5, (8,))
    before = [c.out_channels for c in _convs(model)]
    pruning.get_method("structured").run(
        model, _config(sparsity=0.9, pruning_steps=1), lambda _step: None, _vision_context(x, y)
    )
    after = [c.out_channels for c in _convs(model)]
    assert all(8 <= a < b and a % 8 == 0 for a, b in zip(after, before, strict=True)), after
    assert sum(after) < 0.15 * sum(before)
    assert model(x).shape == (8, 5)


def test_taylor_and_l1_rank_channels_differently():
    torch.manual_seed(0)
    base = torchvision.models.resnet18(num_classes=5).eval()
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 5, (8,))
    kept = {}
    for importance in ("l1", "taylor"):
        model = copy.deepcopy(base)
        pruning.get_method("structured").run(
            model, _config(structured_importance=importance, pruning_steps=1), lambda s: None, _vision_context(x, y)
        )
        kept[importance] = model.conv1.weight.detach().clone()
    assert kept["l1"].shape == kept["taylor"].shape and not torch.equal(kept["l1"], kept["taylor"])


def test_rounded_keep_rounds_to_the_multiple_and_keeps_something():
    assert rounded_keep(256, 0.5, 8) == 128
    assert rounded_keep(100, 0.5, 8) == 48
    assert rounded_keep(100, 0.99, 8) == 8
    assert rounded_keep(6, 0.5, 8) == 3  # narrower than the multiple: plain rounding


# ---- structured: transformers -------------------------------------------------------------------------


def _tiny(model_id: str) -> nn.Module:
    torch.manual_seed(0)
    if model_id == "distilbert":
        config = DistilBertConfig(
            vocab_size=100, dim=64, n_layers=2, n_heads=4, hidden_dim=128, max_position_embeddings=32, num_labels=3
        )
        return DistilBertForSequenceClassification(config).eval()
    config = BertConfig(
        vocab_size=100,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=32,
        num_labels=3,
    )
    return BertForSequenceClassification(config).eval()


PARTS = {"distilbert": distilbert.transformer_parts, "bert": bert.transformer_parts}


def _text_context(model_id: str, batch: dict) -> PruningContext:
    def forward(m, b):
        return m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits

    return PruningContext(
        family="text",
        train_batch=lambda n: {k: v[:n] for k, v in batch.items()},
        forward=forward,
        loss=lambda m, b: F.cross_entropy(forward(m, b), b["labels"]),
        transformer_parts=PARTS[model_id],
    )


def _masked_reference(model: nn.Module, model_id: str, kept_heads: list, kept_units: list) -> nn.Module:
    """The unpruned model with the removed heads' and FFN units' contributions zeroed: what removal must equal."""
    ref = copy.deepcopy(model)
    parts = PARTS[model_id](ref)
    with torch.no_grad():
        for attention, ffn, heads, units in zip(parts.attention, parts.ffn, kept_heads, kept_units, strict=True):
            out = getattr(*attention[3])
            cols = torch.ones(out.in_features, dtype=torch.bool)
            cols[torch.cat([torch.arange(h * parts.head_dim, (h + 1) * parts.head_dim) for h in heads])] = False
            out.weight[:, cols] = 0.0
            lin_in, lin_out = getattr(*ffn[0]), getattr(*ffn[1])
            drop = torch.ones(lin_in.out_features, dtype=torch.bool)
            drop[units] = False
            lin_out.weight[:, drop] = 0.0
    return ref


@pytest.mark.parametrize("model_id", ["distilbert", "bert"])
def test_structured_transformer_removes_heads_and_ffn_units_and_equals_masking(tmp_path, model_id):
    model = _tiny(model_id)
    batch = {
        "input_ids": torch.randint(0, 100, (4, 12)),
        "attention_mask": torch.ones(4, 12, dtype=torch.long),
        "labels": torch.randint(0, 3, (4,)),
    }
    parts = PARTS[model_id](model)
    # which heads and units L1 importance keeps at 50% (one step): the largest, computed here independently
    kept_heads, kept_units = [], []
    for attention, ffn in zip(parts.attention, parts.ffn, strict=True):
        q, k, v, o = (getattr(*a).weight.detach().abs() for a in attention)
        score = (q + k + v).reshape(4, -1).sum(1) + o.reshape(o.shape[0], 4, -1).sum((0, 2))
        kept_heads.append(sorted(score.topk(2).indices.tolist()))
        unit = getattr(*ffn[0]).weight.detach().abs().sum(1) + getattr(*ffn[1]).weight.detach().abs().sum(0)
        kept_units.append(sorted(unit.topk(64).indices.tolist()))
    reference = _masked_reference(model, model_id, kept_heads, kept_units)
    info = pruning.get_method("structured").run(
        model, _config(pruning_steps=1), lambda s: None, _text_context(model_id, batch)
    )
    structure = info["structure"]
    assert structure["heads_per_block_after"] == [2, 2] and structure["ffn_units_per_block_after"] == 64
    parts = PARTS[model_id](model)
    for attention, ffn in zip(parts.attention, parts.ffn, strict=True):
        assert [getattr(*a).out_features for a in attention[:3]] == [2 * parts.head_dim] * 3
        assert getattr(*attention[3]).in_features == 2 * parts.head_dim
        assert getattr(*ffn[0]).out_features == 64 == getattr(*ffn[1]).in_features
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        assert torch.allclose(model(**inputs).logits, reference(**inputs).logits, atol=1e-5)
    exported = export_onnx(model_id, model, inputs, tmp_path / "onnx")
    assert all((tmp_path / "onnx" / name).stat().st_size > 0 for name in exported["files"].values())


# ---- nm_2_4 -------------------------------------------------------------------------------------------


def test_nm_2_4_keeps_at_most_2_of_every_4_and_the_mask_survives_fine_tuning():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise: 1 input channel per group, left dense
        nn.Flatten(),
        nn.Linear(8 * 6 * 6, 12),
        nn.Linear(12, 3),
    )
    x = torch.randn(5, 4, 6, 6)

    def fine_tune(_step) -> None:  # training with the mask on: masked weights must stay zero
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()

    info = pruning.get_method("nm_2_4").run(model, _config(), fine_tune)
    assert not progressive.has_masks(model)
    conv, depthwise, lin1, lin2 = model[0].weight, model[1].weight, model[3].weight, model[4].weight
    assert (conv.permute(0, 2, 3, 1).reshape(-1, 4) != 0).sum(1).max() <= 2
    for w in (lin1, lin2):
        assert (w.reshape(-1, 4) != 0).sum(1).max() <= 2 and (w == 0).float().mean() == 0.5
    assert (depthwise != 0).all()
    assert info["covered_layers"] == ["0", "3", "4"]


def test_nm_mask_keeps_the_two_largest_of_each_group():
    w = torch.tensor([[0.1, -3.0, 2.0, 0.5, 1.0, 1.5, -0.2, 0.3]])
    assert nm_mask(w).tolist() == [[0, 1, 1, 0, 1, 1, 0, 0]]


# ---- wanda --------------------------------------------------------------------------------------------


def _brute_force_linear(weight: torch.Tensor, x: torch.Tensor, fraction: float) -> torch.Tensor:
    out_f, in_f = weight.shape
    rows = x.reshape(-1, in_f)
    mask = torch.ones_like(weight)
    for i in range(out_f):
        scores = []
        for j in range(in_f):
            norm = sum(float(rows[n, j]) ** 2 for n in range(rows.shape[0])) ** 0.5
            scores.append((abs(float(weight[i, j])) * norm, j))
        for _, j in sorted(scores)[: round(fraction * in_f)]:
            mask[i, j] = 0.0
    return mask


def test_wanda_keeps_the_weights_a_brute_force_reference_keeps():
    torch.manual_seed(0)
    layer = nn.Linear(10, 6)
    x = torch.randn(3, 5, 10) * torch.linspace(0.1, 3.0, 10)  # input features of very different sizes
    norms = calibrate(layer, [("layer", layer)], lambda m, b: m(b["x"]), {"x": x})["layer"]
    mask = wanda_mask(layer.weight, norms, 0.4)
    assert torch.equal(mask, _brute_force_linear(layer.weight.detach(), x, 0.4))
    # and it is not plain magnitude pruning: the activations changed the choice
    assert not torch.equal(mask, _brute_force_linear(layer.weight.detach(), torch.ones_like(x), 0.4))


@pytest.mark.parametrize("groups", [1, 2])
def test_wanda_conv_scores_each_weight_by_the_patches_it_multiplies(groups):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, stride=2, groups=groups)
    x = torch.randn(2, 4, 7, 7)
    got = wanda_mask(conv.weight, input_norms(conv, x), 0.5)
    # brute force: each output channel o, weight (c, i, j) multiplies x[n, g*C/g + c, 2p+i-1, 2q+j-1] over n, p, q
    per_group, out_per_group = 4 // groups, 6 // groups
    padded = F.pad(x, (1, 1, 1, 1))
    expected = torch.ones_like(conv.weight)
    for o in range(6):
        g = o // out_per_group
        scores = []
        for c in range(per_group):
            for i in range(3):
                for j in range(3):
                    patch = padded[:, g * per_group + c, i : i + 7 : 2, j : j + 7 : 2]
                    scores.append(
                        (abs(float(conv.weight.detach()[o, c, i, j])) * float(patch.pow(2).sum().sqrt()), (c, i, j))
                    )
        for _, (c, i, j) in sorted(scores)[: round(0.5 * per_group * 9)]:
            expected[o, c, i, j] = 0.0
    assert torch.equal(got, expected)


def test_wanda_is_one_shot_and_asks_for_no_fine_tuning():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.randn(32, 8)
    context = PruningContext(
        family="vision", train_batch=lambda n: {"x": x[:n]}, forward=lambda m, b: m(b["x"]), loss=None
    )
    steps = []
    info = pruning.get_method("wanda").run(model, _config(sparsity=0.25), steps.append, context)
    assert pruning.get_method("wanda").fine_tunes is False and len(steps) == 1
    assert not progressive.has_masks(model) and info["calibration_samples"] == 32
    for layer in (model[0], model[2]):  # per output row exactly the fraction
        assert ((layer.weight == 0).sum(1) == round(0.25 * layer.in_features)).all()


# ---- FLOPs against milliseconds ------------------------------------------------------------------------


def _latency(b1: float, b32: float) -> dict:
    return {"speedup": {"batch_1": b1, "batch_32": b32}, "speedup_ci": {"batch_1": [b1 - 0.1, b1 + 0.1]}}


def test_realised_fraction_is_speedup_over_flops_ratio_and_flags_no_speedup():
    block = flops_against_speed(4.0, 8.0, {"pytorch": _latency(2.0, 3.0), "onnxruntime": _latency(1.05, 1.0)})
    rows = block["runtimes"]["pytorch"]
    assert rows["batch_1"]["realised_fraction"] == 0.5 and rows["batch_32"]["realised_fraction"] == 0.75
    assert rows["batch_1"]["realised_fraction_ci"] == pytest.approx([1.9 / 4, 2.1 / 4])
    assert rows["batch_32"]["speedup_ci"] is None and "speedup_ci_reason" in rows["batch_32"]
    assert rows["batch_1"]["realised_fraction_if_zeros_skipped"] == 0.25
    assert bought_nothing(block) == ["onnxruntime"]
    missing = flops_against_speed(4.0, 4.0, {"onnxruntime": "the ONNX export failed"})
    assert missing["runtimes"]["onnxruntime"] is None and missing["runtimes"]["onnxruntime_reason"]


def test_summary_says_when_pruning_bought_no_speedup():
    def ctx(s1: float, s32: float) -> dict:
        effect = {
            "flops_ratio": 1.0,
            "flops_ratio_if_zeros_skipped": 2.0,
            "nonzero_parameter_ratio": 2.0,
            "latency": {"speedup": {"batch_1": s1, "batch_32": s32}},
        }
        return {"measurements": {"pruning_effect": effect}, "pruning": {"method": "l1_unstructured"}}

    assert "bought no measured speedup (below 1.1x)" in _pruning_speed(ctx(1.02, 0.97))
    assert "bought no" not in _pruning_speed(ctx(1.02, 1.5))


def test_median_ratio_interval_brackets_the_ratio_of_medians():
    assert median_ratio_interval([2.0] * 10, [1.0] * 10) == [2.0, 2.0]
    g = torch.Generator().manual_seed(0)
    slow = (2.0 + torch.rand(40, generator=g)).tolist()
    fast = (1.0 + 0.5 * torch.rand(40, generator=g)).tolist()
    low, high = median_ratio_interval(slow, fast)
    point = float(torch.tensor(slow).median() / torch.tensor(fast).median())
    assert low < point < high and high - low < 1.0
    assert median_ratio_interval([1.0], [1.0]) is None


# ---- a whole job --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_structured_resnet18_job_runs_end_to_end(tmp_path):
    result = tiny_job(
        tmp_path, "resnet18", pruning_method="structured", sparsity=0.5, pruning_steps=2, pretrained=False
    )
    report = result.report
    pruned = report["pruning_analysis"]
    structure = pruned["method_details"]["structure"]
    assert structure["conv_channels_after"] < 0.6 * structure["conv_channels_before"]
    effect = pruned["pruning_effect"]
    assert effect["flops_ratio"] > 2.0 and effect["total_parameters"]["after"] < effect["total_parameters"]["before"]
    flops_vs_speed = report["teacher_vs_student_comparison"]["flops_vs_speed"]
    for runtime in ("pytorch", "onnxruntime"):  # the pruned student exported and ran in both runtimes
        row = flops_vs_speed["runtimes"][runtime]["batch_1"]
        assert row["realised_fraction"] == pytest.approx(row["speedup"] / flops_vs_speed["flops_ratio"])
        assert row["speedup_ci"][0] <= row["speedup"] <= row["speedup_ci"][1]
    assert report["efficiency_improvements"]["runtimes"]["onnxruntime"] is not None
    assert (result.out_dir / "onnx" / "student").is_dir()
    stages = {row["stage"]: row for row in report["learning_outcomes"]["accuracy_by_stage"]}
    assert stages["student_kd"]["test_accuracy"] is not None  # measured on the unpruned, wider student


# ---- the 2:4 sparse kernel ------------------------------------------------------------------------------


def test_2_4_layers_are_found_and_without_a_kernel_the_speedup_is_null_with_the_reason():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 3))
    dense_eligible = eligible_layers(model)
    with torch.no_grad():
        model[0].weight.mul_(nm_mask(model[0].weight))
    assert has_2_4_pattern(model[0].weight) and not has_2_4_pattern(model[2].weight)
    assert dense_eligible == [] and [name for name, _ in eligible_layers(model)] == ["0"]
    block = semi_structured_speed(model, lambda m, b: m(b["x"]).argmax(-1), lambda n: {"x": torch.randn(n, 128)})
    assert block["eligible_layers"] == ["0"]
    assert block["speedup"] is None and "no sparse kernel on this device (cpu)" in block["speedup_reason"]

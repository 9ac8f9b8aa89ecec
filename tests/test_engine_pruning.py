"""Structural students and progressive L1 pruning."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from backend.data.synthetic_text import generate
from backend.metrics.compression import count_parameters, sparsity
from backend.models.student import make_student
from backend.models.zoo import bert, mobilenetv2, resnet18
from backend.models.zoo.distilbert import build as build_distilbert
from backend.models.zoo.t5_small import build as build_t5
from backend.pruning import progressive

# one intra-op thread, as a job gets on a 2-core machine (backend.runtime.set_torch_threads)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))


@pytest.mark.parametrize("steps", [3, 5])
def test_progressive_pruning_reaches_target_and_leaves_no_masks(steps):
    torch.manual_seed(0)
    model = _cnn()
    seen = []
    reached = progressive.progressive_prune(
        model, 0.3, steps, after_step=lambda d: seen.append((d.step, d.achieved_sparsity))
    )
    assert [s for s, _ in seen] == list(range(1, steps + 1))
    assert all(a < b for a, b in itertools.pairwise(reached))  # sparsity rises step by step
    assert not progressive.has_masks(model)
    names = [n for n, _ in model.named_parameters()]
    assert "0.weight" in names and not any(n.endswith("_orig") for n in names)
    weights = [model[0].weight, model[3].weight]
    zeros = sum(int((w == 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    assert zeros == round(0.3 * total)  # exactly the target, counted by hand
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_layerwise_scope_prunes_each_layer_to_target():
    model = _cnn()
    params = progressive.prunable_weights(model)
    progressive.prune_to(params, 0.5, scope="layerwise")
    progressive.make_permanent(model)
    per_layer = sparsity(model)["per_layer"]
    assert per_layer["0"] == pytest.approx(0.5, abs=1 / 216) and per_layer["3"] == pytest.approx(0.5, abs=1e-3)


def test_cubic_schedule():
    sched = progressive.schedule(0.3, 3)
    assert sched[-1] == pytest.approx(0.3) and sched[0] > 0.3 / 3  # bigger cuts first


def test_tied_lm_head_is_not_pruned():
    texts, _ = generate(300)
    model, _ = build_t5(preset="quick", class_names=["negative", "positive"], train_texts=texts, pretrained=False)
    modules = {id(m) for m, _ in progressive.prunable_weights(model)}
    assert id(model.lm_head) not in modules
    assert len(modules) > 10


def test_measured_sparsity_counts_exactly_the_pruned_layers():
    """T5's tied lm_head is neither pruned nor counted: the measured global sparsity is the target, exactly."""
    texts, _ = generate(300)
    model, _ = build_t5(preset="quick", class_names=["negative", "positive"], train_texts=texts, pretrained=False)
    progressive.progressive_prune(model, 0.4, 2)
    measured = sparsity(model)
    pruned = progressive.prunable_weights(model)
    assert measured["weights"] == sum(m.weight.numel() for m, _ in pruned)
    assert measured["global_sparsity"] == pytest.approx(0.4, abs=1e-6)
    assert "lm_head" not in measured["per_layer"] and "lm_head" in measured["scope"]


@pytest.mark.parametrize(
    "builder,model_id,ratio", [(resnet18.build, "resnet18", 0.5), (mobilenetv2.build, "mobilenetv2", 0.4)]
)
def test_cnn_student_is_smaller_and_runs(builder, model_id, ratio):
    teacher = builder(class_names=[str(i) for i in range(10)])[0].eval().requires_grad_(False)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student, summary = make_student(model_id, teacher, ratio, torch.randn(1, 3, 32, 32))
    assert summary["student_parameters"] < 0.5 * summary["teacher_parameters"]
    assert student(torch.randn(2, 3, 32, 32)).shape == (2, 10)  # classifier width kept
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())  # teacher untouched


@pytest.mark.parametrize("builder,model_id", [(resnet18.build, "resnet18"), (mobilenetv2.build, "mobilenetv2")])
def test_cnn_student_shrinks_with_every_step_of_the_ratio_to_the_limit(builder, model_id):
    """A larger ratio never gives a larger student. torch-pruning skips a whole layer group whose rounded kept
    width would be 0, which left ResNet-18's 64-channel stage whole at 0.95 (more FLOPs than at 0.5); the floor
    keeps 4 channels there instead."""
    teacher = builder(class_names=[str(i) for i in range(10)])[0].eval().requires_grad_(False)
    convs = lambda m: [c.out_channels for c in m.modules() if isinstance(c, nn.Conv2d)]  # noqa: E731
    widths = []
    for ratio in (0.5, 0.7, 0.9, 0.95):
        student, _ = make_student(model_id, teacher, ratio, torch.randn(1, 3, 32, 32))
        widths.append(convs(student))
        assert all(w >= 4 and w % 4 == 0 for w in widths[-1])
    totals = [sum(w) for w in widths]
    assert totals == sorted(totals, reverse=True) and len(set(totals)) == len(totals), totals
    assert all(s < t for s, t in zip(widths[-1], convs(teacher), strict=True))  # no layer left whole at 0.95


@pytest.mark.parametrize(
    "builder,model_id", [(build_distilbert, "distilbert"), (build_t5, "t5-small"), (bert.build, "bert")]
)
def test_transformer_student_keepskeep_half_the_layers_layer_from_teacher(builder, model_id):
    texts, _ = generate(300)
    teacher, tok = builder(preset="quick", class_names=["negative", "positive"], train_texts=texts, pretrained=False)
    student, summary = make_student(model_id, teacher.eval(), 0.5)
    assert summary["details"]["kept_block_indices"][:2] == [0, 3]  # 4 blocks: the first and the last
    assert count_parameters(student)["total"] < 0.5 * count_parameters(teacher)["total"]
    enc = tok(texts[:3], return_tensors="pt", padding=True)
    if model_id == "distilbert":
        t_attn = teacher.distilbert.transformer.layer[3].attention.q_lin.weight
        assert torch.equal(student.distilbert.transformer.layer[1].attention.q_lin.weight, t_attn)
        assert student(**enc).logits.shape == (3, 2)
    elif model_id == "bert":
        t_attn = teacher.bert.encoder.layer[3].attention.self.query.weight
        assert torch.equal(student.bert.encoder.layer[1].attention.self.query.weight, t_attn)
        assert student.config.num_hidden_layers == 2 and student.config.intermediate_size == 256
        assert student(**enc).logits.shape == (3, 2)
    else:
        assert torch.equal(
            student.encoder.block[1].layer[0].SelfAttention.q.weight,
            teacher.encoder.block[3].layer[0].SelfAttention.q.weight,
        )
        out = student.generate(**enc, max_new_tokens=3)
        assert out.shape[0] == 3


def test_half_the_layers_evenly_spread_with_first_and_last_as_distilbert_was_made():
    from backend.pruning.structural import keep_half_the_layers

    assert keep_half_the_layers(12) == [0, 2, 4, 7, 9, 11]  # DistilBERT's own choice of BERT-base layers
    assert keep_half_the_layers(6) == [0, 2, 5] and keep_half_the_layers(4) == [0, 3] and keep_half_the_layers(2) == [1]
    assert keep_half_the_layers(1) == [0] and keep_half_the_layers(0) == []

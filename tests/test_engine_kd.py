"""The distillation loss and the training loop."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from backend.data.datasets import TensorSet
from backend.kd.callbacks import CallbackList, Callbacks, JobCancelled
from backend.kd.loop import TEACHER_LOGITS, TrainSettings, evaluate, train, with_teacher_logits
from backend.kd.loss import distillation_loss
from backend.models import adapters
from backend.models.adapters import VisionAdapter

# one intra-op thread, as a job gets on a 2-core machine (backend.runtime.set_torch_threads)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_kd_loss_matches_hand_computation():
    s = torch.tensor([[1.0, 2.0, 0.5]])
    t = torch.tensor([[2.0, 0.0, 1.0]])
    y = torch.tensor([1])
    T, alpha = 3.0, 0.7
    p_t = [math.exp(v / T) for v in (2.0, 0.0, 1.0)]
    p_t = [v / sum(p_t) for v in p_t]
    p_s = [math.exp(v / T) for v in (1.0, 2.0, 0.5)]
    p_s = [v / sum(p_s) for v in p_s]
    kl = sum(a * math.log(a / b) for a, b in zip(p_t, p_s, strict=True))
    ce = -math.log(math.exp(2.0) / sum(math.exp(v) for v in (1.0, 2.0, 0.5)))
    terms = distillation_loss(s, t, y, temperature=T, alpha=alpha)
    assert terms["kd_loss"].item() == pytest.approx(kl, rel=1e-5)
    assert terms["ce_loss"].item() == pytest.approx(ce, rel=1e-5)
    assert terms["loss"].item() == pytest.approx(alpha * T * T * kl + (1 - alpha) * ce, rel=1e-5)


def test_kd_loss_ignores_padding_rows_and_reduces_to_ce():
    s, t = torch.randn(4, 5), torch.randn(4, 5)
    y = torch.tensor([1, -100, 3, -100])
    full = distillation_loss(s, t, y, alpha=0.5)
    kept = distillation_loss(s[[0, 2]], t[[0, 2]], y[[0, 2]], alpha=0.5)
    assert torch.allclose(full["loss"], kept["loss"])
    only_ce = distillation_loss(s, t, y, alpha=0.0)
    assert torch.allclose(only_ce["loss"], only_ce["ce_loss"])
    assert distillation_loss(s, s.clone(), y)["kd_loss"].abs().item() < 1e-6


def _tiny_data(n: int = 64) -> TensorSet:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    return TensorSet({"pixel_values": x, "labels": y})


def _net() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(192, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))


def test_teacher_is_unchanged_by_kd_and_student_learns():
    torch.manual_seed(0)
    teacher, student, data = _net(), _net(), _tiny_data()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in student.state_dict().items()}
    rows = train(
        student,
        VisionAdapter(),
        data,
        TrainSettings(epochs=2, learning_rate=1e-2, batch_size=16),
        phase="distill",
        callbacks=CallbackList(),
        teacher=teacher,
    )
    assert len(rows) == 8 and all(r["kd_loss"] is not None for r in rows)
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k])
    assert not teacher.training  # frozen in eval mode
    assert any(not torch.equal(v, student_before[k]) for k, v in student.state_dict().items())


def test_gradient_clipping_bounds_the_update():
    torch.manual_seed(0)
    model, data = nn.Sequential(nn.Flatten(), nn.Linear(192, 2)), _tiny_data(16)
    with torch.no_grad():
        model[1].weight.mul_(1000)  # a huge loss, huge raw gradients
    before = model[1].weight.clone()
    train(
        model,
        VisionAdapter(),
        data,
        TrainSettings(epochs=1, learning_rate=1e-3, batch_size=16, max_grad_norm=1e-3),
        phase="teacher",
        callbacks=CallbackList(),
    )
    # AdamW's step is ~lr per weight whatever the gradient; weight decay scales by (1 - lr*wd).
    assert (model[1].weight - before * (1 - 1e-3 * 0.01)).abs().max().item() < 2e-3


def test_callbacks_see_every_step_and_stop_flag_cancels():
    class Stopper(Callbacks):
        def __init__(self):
            self.steps = []

        def on_step_end(self, phase, step, total, losses, eta_s):
            self.steps.append((phase, step, total, eta_s))

        def should_stop(self):
            return len(self.steps) >= 3

    stopper = Stopper()
    with pytest.raises(JobCancelled):
        train(
            _net(),
            VisionAdapter(),
            _tiny_data(),
            TrainSettings(epochs=5, learning_rate=1e-3, batch_size=8),
            phase="teacher",
            callbacks=CallbackList(stopper),
        )
    assert [s[1] for s in stopper.steps] == [1, 2, 3]
    assert all(s[2] == 40 and s[3] >= 0 for s in stopper.steps)


def test_evaluate_restores_mode():
    model = _net().train()
    result = evaluate(model, VisionAdapter(), _tiny_data())
    assert 0.0 <= result["accuracy"] <= 1.0 and result["loss"] > 0
    assert model.training


def _kd_twice(student_factory, teacher, adapter, data, settings):
    """The same KD run with the teacher run at every step and with its logits computed once."""
    results = []
    for precompute in (False, True):
        torch.manual_seed(1)
        student = student_factory()
        teacher.train()  # handed over in training mode: both paths must switch its dropout off
        kd_data = with_teacher_logits(teacher, adapter, data)[0] if precompute else data
        rows = train(student, adapter, kd_data, settings, phase="distill", callbacks=CallbackList(), teacher=teacher)
        results.append((rows, student))
    return results


def test_teacher_logits_computed_once_give_the_same_kd_run():
    torch.manual_seed(0)
    teacher, data = _net(), _tiny_data()  # the teacher has dropout: eval mode makes its logits fixed
    (online, s1), (cached, s2) = _kd_twice(
        _net, teacher, VisionAdapter(), data, TrainSettings(epochs=3, learning_rate=1e-2, batch_size=16)
    )
    assert [r["kd_loss"] for r in online] == pytest.approx([r["kd_loss"] for r in cached], rel=1e-4, abs=1e-6)
    for (name, a), b in zip(s1.state_dict().items(), s2.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name


def test_teacher_logits_for_text_to_text_keep_one_row_per_target_token():
    from backend.data.synthetic_text import CLASS_NAMES, generate
    from backend.models.zoo.t5_small import build as build_t5

    texts, labels = generate(80, seed=0)
    torch.manual_seed(0)
    teacher, tok = build_t5(preset="quick", class_names=CLASS_NAMES, train_texts=texts, pretrained=False)
    adapter = adapters.adapter_for("t5-small", tok, CLASS_NAMES)
    data = adapters.text_tensors(tok, texts, torch.tensor(labels).numpy(), 24, CLASS_NAMES)
    kd_data, info = with_teacher_logits(teacher, adapter, data)
    width = data.tensors["target_ids"].shape[1]
    assert kd_data.tensors[TEACHER_LOGITS].shape == (80, width, len(tok))
    assert info["teacher_logits"] == "computed once per job" and TEACHER_LOGITS not in data.tensors

    def student():
        torch.manual_seed(2)
        return build_t5(preset="quick", class_names=CLASS_NAMES, train_texts=texts, pretrained=False)[0]

    (online, _), (cached, _) = _kd_twice(
        student, teacher, adapter, data, TrainSettings(epochs=1, learning_rate=1e-3, batch_size=16)
    )
    assert [r["loss"] for r in online] == pytest.approx([r["loss"] for r in cached], rel=1e-3)


def test_teacher_logits_fall_back_to_every_step_when_too_big_and_obey_the_stop_flag():
    teacher, data = _net(), _tiny_data()
    same, info = with_teacher_logits(teacher, VisionAdapter(), data, max_mb=1e-6)
    assert same is data and info["teacher_logits"] == "computed at every step"

    def stop():
        raise JobCancelled("cancelled")

    with pytest.raises(JobCancelled):
        with_teacher_logits(teacher, VisionAdapter(), data, check_stop=stop)

"""Pruning methods and distillation losses: registries whose entries are one module each, run as jobs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from backend import kd, pruning
from backend.jobconfig import JobConfig, job_options
from backend.kd.loop import TrainSettings
from backend.kd.outputs import Outputs
from backend.pruning import progressive
from tests.engine_helpers import SERVER_JOB, tiny_job


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 4))


def _config(**kw):
    return SimpleNamespace(**{"sparsity": 0.5, "pruning_steps": 3, "pruning_scope": "global", **kw})


def test_registries_list_their_entries_and_feed_the_option_choices(client):
    assert [m.name for m in pruning.list_methods()][:2] == ["l1_unstructured", "random_unstructured"]
    assert [loss.name for loss in kd.list_losses()][:2] == ["logits", "ce"]
    choices = {o.name: o.choices for o in job_options()}
    assert choices["pruning_method"][:2] == ("l1_unstructured", "random_unstructured")
    assert choices["kd_loss"][:2] == ("logits", "ce")
    models = client.get("/models").get_json()
    assert {m["name"] for m in models["pruning_methods"]} >= {"l1_unstructured", "random_unstructured"}
    assert {m["name"] for m in models["kd_losses"]} >= {"logits", "ce"}
    assert next(m for m in models["kd_losses"] if m["name"] == "logits")["options"] == ["temperature", "alpha"]


def test_a_method_registered_later_is_a_valid_choice():
    extra = pruning.PruningMethod("none_at_all", "prunes nothing (test)", run=lambda model, config, after: {})
    pruning.register_method(extra)
    try:
        assert JobConfig.from_dict({"model_name": "resnet18", "pruning_method": "none_at_all"}).pruning_method
    finally:
        pruning._REGISTRY.unregister("none_at_all")
    with pytest.raises(ValueError, match="twice"):
        pruning.register_method(pruning.PruningMethod("l1_unstructured", "a second l1", run=lambda *a: {}))


@pytest.mark.parametrize("name", ["l1_unstructured", "random_unstructured"])
def test_unstructured_methods_reach_the_target_and_leave_plain_weights(name):
    model, seen = _model(), []
    torch.manual_seed(1)
    info = pruning.get_method(name).run(model, _config(), seen.append)
    weights = [model[0].weight, model[2].weight]
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == round(0.5 * sum(w.numel() for w in weights))
    assert [s.step for s in seen] == [1, 2, 3] and seen[-1].achieved_sparsity == pytest.approx(0.5, abs=1e-3)
    assert all(a.achieved_sparsity < b.achieved_sparsity for a, b in zip(seen, seen[1:], strict=False))
    assert not progressive.has_masks(model) and info["schedule"] == "cubic"


def test_random_pruning_is_seeded_and_is_not_magnitude_pruning():
    def zeros_of(name: str, seed: int) -> torch.Tensor:
        model = _model()
        torch.manual_seed(seed)
        pruning.get_method(name).run(model, _config(pruning_steps=1), lambda step: None)
        return model[0].weight == 0

    assert torch.equal(zeros_of("random_unstructured", 3), zeros_of("random_unstructured", 3))
    assert not torch.equal(zeros_of("random_unstructured", 3), zeros_of("random_unstructured", 4))
    l1 = zeros_of("l1_unstructured", 3)
    kept = _model()[0].weight.abs()
    assert kept[l1].max() <= kept[~l1].min()  # L1 zeroes exactly the smallest magnitudes
    rand = zeros_of("random_unstructured", 3)
    assert kept[rand].max() > kept[~rand].min()  # random does not


def test_ce_loss_is_plain_cross_entropy_and_ignores_the_teacher():
    torch.manual_seed(0)
    student, teacher, y = torch.randn(8, 5), torch.randn(8, 5), torch.randint(0, 5, (8,))
    settings = TrainSettings(epochs=1, learning_rate=0.1, batch_size=8, temperature=3.0, alpha=0.7)
    s_out, t_out = Outputs(student, y), Outputs(teacher, y)
    terms = kd.get_loss("ce").compute(s_out, t_out, settings)
    assert torch.allclose(terms["loss"], F.cross_entropy(student, y)) and "kd_loss" not in terms
    logits = kd.get_loss("logits").compute(s_out, t_out, settings)
    kl = F.kl_div(
        F.log_softmax(student / 3, -1), F.log_softmax(teacher / 3, -1), reduction="batchmean", log_target=True
    )
    assert torch.allclose(logits["loss"], 0.7 * 9 * kl + 0.3 * F.cross_entropy(student, y))


@pytest.mark.slow
def test_the_control_entries_run_as_a_job(tmp_path):
    options = {k: v for k, v in SERVER_JOB.items() if k != "model_name"}
    result = tiny_job(
        tmp_path, "distilbert", **options, pruning_method="random_unstructured", kd_loss="ce", sparsity=0.4
    )
    report = result.report
    pruned = report["pruning_analysis"]
    assert pruned["method"] == "random_unstructured" and pruned["criterion"].startswith("random")
    assert pruned["achieved_sparsity"] == pytest.approx(0.4, abs=0.02)
    analysis = report["knowledge_distillation_analysis"]
    assert analysis["loss"] == "ce" and analysis["loss_formula"].startswith("CE(")
    distill = analysis["loss_history"]["distill"]
    assert distill["ce_loss"] and not any(v is not None for v in distill["kd_loss"] or [])  # no KD term was optimised
    assert report["metadata"]["config"]["kd_loss"] == "ce"


@pytest.mark.slow
def test_control_arms_train_without_the_teacher_from_the_students_initial_weights(tmp_path, monkeypatch):
    from backend import pipeline

    calls = []
    real_train = pipeline.loop.train

    def spy(model, adapter, data, settings, *, phase, callbacks, teacher=None, row_extra=None, on_epoch_end=None,
            **more):  # fmt: skip
        start = {k: v.detach().clone() for k, v in model.state_dict().items()}
        calls.append({"phase": phase, "arm": (row_extra or {}).get("arm"), "loss": settings.kd_loss,
                      "teacher": teacher is not None, "start": start, "step": (row_extra or {}).get("pruning_step")})  # fmt: skip
        return real_train(model, adapter, data, settings, phase=phase, callbacks=callbacks, teacher=teacher,
                          row_extra=row_extra, on_epoch_end=on_epoch_end, **more)  # fmt: skip

    monkeypatch.setattr(pipeline.loop, "train", spy)
    options = {k: v for k, v in SERVER_JOB.items() if k != "model_name"}
    report = tiny_job(tmp_path, "distilbert", **options, controls=["ce_only", "scratch"]).report
    distill = next(c for c in calls if c["phase"] == "distill")
    ce_only = next(c for c in calls if c["arm"] == "ce_only" and c["step"] is None)
    scratch = next(c for c in calls if c["arm"] == "scratch" and c["step"] is None)
    assert all(torch.equal(distill["start"][k], ce_only["start"][k]) for k in distill["start"])  # same init
    assert not all(torch.equal(distill["start"][k], scratch["start"][k]) for k in distill["start"])  # re-initialised
    arm_calls = [c for c in calls if c["arm"]]
    assert arm_calls and all(c["loss"] == "ce" and not c["teacher"] for c in arm_calls)  # alpha = 0, no teacher
    assert distill["loss"] == "logits" and distill["teacher"]
    controls = report["knowledge_distillation_analysis"]["controls"]
    for arm in ("ce_only", "scratch"):
        record = controls["arms"][arm]
        assert not any(v is not None for v in record["loss_history"]["train"].get("kd_loss") or [])  # no KD term
        assert record["loss_history"]["train"]["ce_loss"] and record["wall_time_s"] > 0
        assert record["accuracy_ci"][0] <= record["accuracy"] <= record["accuracy_ci"][1]
        assert record["global_sparsity"] == pytest.approx(
            report["student_model_performance"]["global_sparsity"], abs=0.01
        )
    gain = controls["kd_gain_points"]
    student, ce = report["student_model_performance"]["accuracy"], controls["arms"]["ce_only"]["accuracy"]
    assert gain["points"] == pytest.approx((student - ce) * 100) and gain["test"] == "mcnemar_exact"
    assert controls["init_gain_points"]["ci_points"][0] <= controls["init_gain_points"]["points"]
    assert "controls" in report["metadata"]["timings_s"]

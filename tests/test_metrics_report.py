"""The report of a real, tiny job: two small trained CNNs, KD, progressive pruning, measure_pair on real batches."""

from __future__ import annotations

import copy
import functools
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from backend.metrics.compression import count_parameters, sparsity
from backend.metrics.efficiency import model_size
from backend.metrics.measure import measure_pair
from backend.metrics.report import SECTIONS, build_report, report_to_json, sanitize_json

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = ["low", "mid", "high"]
T, ALPHA = 3.0, 0.7


def cnn(width: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, len(CLASSES)),
    )


def make_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose brightness says the class: learnable in a few steps."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % len(CLASSES)
    x = torch.randn(n, 3, 12, 12, generator=gen) * 0.5 + (y.float() - 1.0).view(-1, 1, 1, 1)
    return x, y


def predict(model, batch):
    return model(batch["pixel_values"]).argmax(-1)


def train(model, data, phase, epochs, teacher=None, pruning_step=None, step0=0) -> list[dict]:
    """A real loop: CE for the teacher, alpha*T^2*KL + (1-alpha)*CE for the student; one row per step."""
    x, y = data
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    rows, step = [], step0
    model.train()
    for epoch in range(1, epochs + 1):
        for i in range(0, len(y), 16):
            logits = model(x[i : i + 16])
            ce = F.cross_entropy(logits, y[i : i + 16])
            kd = None
            if teacher is not None:
                with torch.no_grad():
                    t_logits = teacher(x[i : i + 16])
                kd = F.kl_div(F.log_softmax(logits / T, -1), F.softmax(t_logits / T, -1), reduction="batchmean")
                loss = ALPHA * T * T * kd + (1 - ALPHA) * ce
            else:
                loss = ce
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            row = {
                "epoch": epoch,
                "step": step,
                "loss": loss.item(),
                "kd_loss": None if kd is None else kd.item(),
                "ce_loss": ce.item(),
                "lr": 0.02,
            }
            rows.append(row if pruning_step is None else {**row, "pruning_step": pruning_step})
    model.eval()
    return rows


def val_accuracy(model, data) -> float:
    with torch.no_grad():
        return (predict(model.eval(), {"pixel_values": data[0]}) == data[1]).float().mean().item()


def prune_steps(student, teacher, train_data, val_data, history, validation) -> list[dict]:
    layers = [(m, "weight") for m in student.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    steps = []
    for step, target in enumerate((0.2, 0.4), start=1):
        prune.global_unstructured(
            layers,
            pruning_method=prune.L1Unstructured,
            amount=1 - (1 - target) / (1 - (steps[-1]["target_sparsity"] if steps else 0)),
        )
        history += train(student, train_data, "finetune", 1, teacher, pruning_step=step, step0=len(history))
        acc = val_accuracy(student, val_data)
        validation.append({"phase": "prune", "epoch": 1, "pruning_step": step, "accuracy": acc, "loss": 0.5})
        size = model_size(student)
        steps.append(
            {
                "step": step,
                "target_sparsity": target,
                "achieved_sparsity": sparsity(student)["global_sparsity"],
                "val_accuracy": acc,
                "nonzero_parameters": count_parameters(student)["nonzero"],
                "model_size_mb": size["model_size_mb"],
                "compressed_size_mb": size["compressed_size_mb"],
            }
        )
    for module, name in layers:
        prune.remove(module, name)
    return steps


def split_batches(data, size=16):
    x, y = data
    return [({"pixel_values": x[i : i + size]}, y[i : i + size]) for i in range(0, len(y), size)]


@functools.lru_cache(maxsize=1)
def _realistic_ctx() -> dict:
    torch.manual_seed(0)
    train_data, val_data, test_data = make_split(96, 1), make_split(48, 2), make_split(48, 3)
    teacher = cnn(16)
    history = {"teacher": train(teacher, train_data, "teacher", 2)}
    validation = [
        {"phase": "teacher", "epoch": 2, "pruning_step": None, "accuracy": val_accuracy(teacher, val_data), "loss": 0.4}
    ]
    student = cnn(8)  # the "structural" student: half the channels
    stages = [
        {"stage": "teacher", "val_accuracy": validation[0]["accuracy"], "test_accuracy": None},
        {"stage": "student_structural", "val_accuracy": val_accuracy(student, val_data), "test_accuracy": None},
    ]
    history["distill"] = train(student, train_data, "distill", 2, teacher)
    validation.append(
        {"phase": "distill", "epoch": 2, "pruning_step": None, "accuracy": val_accuracy(student, val_data), "loss": 0.6}
    )
    stages.append({"stage": "student_kd", "val_accuracy": validation[-1]["accuracy"], "test_accuracy": None})
    history["finetune"] = []
    steps = prune_steps(student, teacher, train_data, val_data, history["finetune"], validation)
    stages.append({"stage": "student_pruned", "val_accuracy": steps[-1]["val_accuracy"], "test_accuracy": None})
    measurements = measure_pair(
        teacher,
        student,
        predict=predict,
        test_batches=split_batches(test_data),
        example_batch=lambda bs: {"pixel_values": test_data[0][torch.arange(bs) % 48]},
        class_names=CLASSES,
        latency_runs=30,
        batch_sizes=(1, 8),
    )
    stages.append(
        {"stage": "final", "val_accuracy": None, "test_accuracy": measurements["student"]["effectiveness"]["accuracy"]}
    )
    return {
        "job_id": "job-test-1",
        "model_name": "resnet18",
        "display_name": "Tiny CNN",
        "family": "vision",
        "config": {"temperature": T, "alpha": ALPHA, "sparsity": 0.4, "pruning_steps": 2, "seed": 0},
        "dataset": {
            "name": "brightness",
            "num_classes": 3,
            "class_names": CLASSES,
            "train_size": 96,
            "val_size": 48,
            "test_size": 48,
            "description": "synthetic brightness classes",
            "synthetic": True,
        },
        "teacher_source": {"kind": "trained", "detail": "2 epochs on the train split"},
        "environment": {
            "torch_version": torch.__version__,
            "torchvision_version": "x",
            "transformers_version": "x",
            "device": "cpu",
            "torch_threads": torch.get_num_threads(),
            "cpu_count": 2,
            "cpu_model": "test",
            "platform": "test",
        },
        "timings_s": {
            "data": 0.1,
            "teacher": 1.0,
            "student": 0.1,
            "distill": 1.0,
            "prune": 1.0,
            "evaluate": 1.0,
            "total": 4.2,
        },
        "structural": {
            "method": "narrower copy",
            "ratio": 0.5,
            "removed": "half the channels of every conv",
            "teacher_parameters": count_parameters(teacher)["total"],
            "student_parameters": count_parameters(cnn(8))["total"],
            "details": {},
        },
        "history": history,
        "validation": validation,
        "pruning": {
            "method": "l1_unstructured",
            "scope": "global",
            "target_sparsity": 0.4,
            "steps": steps,
            "per_layer_sparsity": sparsity(student)["per_layer"],
        },
        "stages": stages,
        "kd_agreement": {"mean_kl": None, "mean_kl_reason": "not computed in this test job"},
        "measurements": measurements,
    }


def realistic_ctx() -> dict:
    """A fresh copy of the (cached) context of a tiny real job."""
    return copy.deepcopy(_realistic_ctx())


def realistic_report() -> dict:
    return build_report(realistic_ctx())


def nulls_without_reason(obj, path="report") -> list[str]:
    """Paths of nulls with no sibling *_reason (for a null inside a list: the list's key needs one)."""
    found = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            has_reason = bool(obj.get(f"{key}_reason"))
            if value is None and not has_reason:
                found.append(f"{path}.{key}")
            elif isinstance(value, list) and any(v is None for v in value) and not has_reason:
                found.append(f"{path}.{key}[]")
            found += nulls_without_reason(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            if isinstance(value, (dict, list)):
                found += nulls_without_reason(value, f"{path}[{i}]")
    return found


def test_sections_strict_json_and_reasons():
    report = realistic_report()
    assert set(report) == {*SECTIONS, "metadata"} and len(SECTIONS) == 7
    # no latency target asked: the section is there, its fields null with the reason
    assert report["latency_target"]["asked"] is None and "no latency target" in report["latency_target"]["asked_reason"]
    assert report["latency_target"]["met"] is None and report["latency_target"]["candidates"] == []
    text = report_to_json(report)
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == report  # already sanitised: the JSON round trip changes nothing
    json.dumps(report, allow_nan=False)
    assert nulls_without_reason(report) == []
    kd = report["knowledge_distillation_analysis"]
    assert kd["mean_kl"] is None and kd["mean_kl_reason"] == "not computed in this test job"
    assert kd["loss_history"]["teacher"]["kd_loss"] is None and kd["loss_history"]["teacher"]["kd_loss_reason"]


def test_figures_come_from_the_measurements():
    ctx = realistic_ctx()
    report = build_report(ctx)
    m = ctx["measurements"]
    student = report["student_model_performance"]
    assert student["accuracy"] == m["student"]["effectiveness"]["accuracy"]
    assert student["accuracy_pct"] == pytest.approx(100 * student["accuracy"])
    pred = m["predictions"]
    same = sum(a == b for a, b in zip(pred["teacher"], pred["student"], strict=True))
    kd = report["knowledge_distillation_analysis"]
    assert kd["teacher_student_agreement_pct"] == pytest.approx(100 * same / len(pred["labels"]))
    assert (kd["temperature"], kd["alpha"]) == (T, ALPHA)
    assert kd["loss_history"]["distill"]["kd_loss"] == [r["kd_loss"] for r in ctx["history"]["distill"]]
    pruning = report["pruning_analysis"]
    assert pruning["achieved_sparsity"] == pytest.approx(ctx["pruning"]["steps"][-1]["achieved_sparsity"])
    assert pruning["achieved_sparsity"] == pytest.approx(0.4, abs=0.01)
    assert len(pruning["steps"]) == 2 and pruning["per_layer_sparsity"]
    cmp = report["teacher_vs_student_comparison"]
    table = {row["metric"]: row for row in cmp["table"]}
    assert table["effectiveness.accuracy"]["student"] == student["accuracy"]
    assert cmp["derived"]["compression_ratio"] == pytest.approx(
        m["teacher"]["compression"]["parameters"]["total"] / m["student"]["compression"]["parameters"]["nonzero"]
    )
    eff = report["efficiency_improvements"]
    assert set(eff["latency"]) == {"batch_1", "batch_8"} and eff["latency_conditions"]["runs"] == 30
    assert eff["latency"]["batch_1"]["speedup"] == pytest.approx(
        eff["latency"]["batch_1"]["teacher_median_ms"] / eff["latency"]["batch_1"]["student_median_ms"]
    )
    meta = report["metadata"]
    assert meta["job_id"] == "job-test-1" and meta["config"] == ctx["config"]
    assert meta["environment"]["torch_threads"] == ctx["environment"]["torch_threads"]  # the run's, not now's


def test_learning_outcomes_written_from_numbers():
    ctx = realistic_ctx()
    outcomes = build_report(ctx)["learning_outcomes"]
    stages = [row["stage"] for row in outcomes["accuracy_by_stage"]]
    assert stages == ["teacher", "student_structural", "student_kd", "student_pruned", "final"]
    teacher_row = outcomes["accuracy_by_stage"][0]
    assert teacher_row["test_accuracy"] == ctx["measurements"]["teacher"]["effectiveness"]["accuracy"]
    summary = outcomes["summary"]
    s_acc = ctx["measurements"]["student"]["effectiveness"]["accuracy"]
    assert f"{s_acc:.1%}" in summary
    assert f"{ctx['measurements']['comparison']['compression_ratio']:.2f}x" in summary
    assert "Pruning in 2 steps" in summary and "Distillation (T = 3.0, alpha = 0.7)" in summary


def test_sanitize_json_replaces_non_finite_and_library_scalars():
    import numpy as np

    raw = {"a": float("nan"), "b": [1.0, float("inf")], "c": np.float32(0.5), "d": torch.tensor(3), "e": (1, 2)}
    clean = sanitize_json(raw)
    assert clean["a"] is None and clean["a_reason"] and clean["b"] == [1.0, None]
    assert clean["c"] == 0.5 and isinstance(clean["c"], float) and clean["d"] == 3 and clean["e"] == [1, 2]
    json.dumps(clean, allow_nan=False)
    assert not math.isnan(clean["c"])


def test_jsonable_is_sanitize_json_without_reasons():
    # One sanitiser: the API's jsonable differs from the report's only in leaving out the *_reason keys.
    from pathlib import Path

    from backend.jobs import jsonable

    raw = {"a": float("nan"), "p": Path("x") / "y", "s": {2, 1}, "t": torch.tensor([[1.0, float("inf")]])}
    assert jsonable(raw) == {"a": None, "p": str(Path("x") / "y"), "s": [1, 2], "t": [[1.0, None]]}
    assert sanitize_json(raw) == {**jsonable(raw), "a_reason": sanitize_json(raw)["a_reason"]}
    assert sanitize_json(raw)["a_reason"]

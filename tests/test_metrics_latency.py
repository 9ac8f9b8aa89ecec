"""Latency: interleaved runs, at least 30 of them, medians, throughput and speedup from the same run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from backend.metrics.efficiency import measure_latency, time_full_pass

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def example_batch(bs: int) -> dict:
    return {"x": torch.randn(bs, 64)}


def test_interleaved_runs_medians_and_speedup():
    models = {"teacher": nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 4)), "student": nn.Linear(64, 4)}
    calls: list[tuple[str, int]] = []
    names = {id(m): name for name, m in models.items()}

    def predict(model, batch):
        calls.append((names[id(model)], batch["x"].shape[0]))
        return model(batch["x"]).argmax(-1)

    out = measure_latency(models, predict, example_batch, batch_sizes=(1, 8), runs=30, warmup=2)
    assert out["torch_threads"] == torch.get_num_threads()
    for bs in (1, 8):
        timed = [name for name, size in calls if size == bs][2 * 2 :]  # after the warm-up calls
        assert len(timed) == 2 * 30
        # Each pair of calls holds one of each model: they alternate, never run in blocks.
        assert all({timed[i], timed[i + 1]} == {"teacher", "student"} for i in range(0, len(timed), 2))
        assert timed[:4] == ["teacher", "student", "student", "teacher"]  # and the order flips each run
        key = f"batch_{bs}"
        t, s = out["per_model"]["teacher"][key], out["per_model"]["student"][key]
        assert t["runs"] == s["runs"] == 30
        assert 0 < t["median_ms"] <= t["p95_ms"] and 0 < s["median_ms"] <= s["p95_ms"]
        assert out["speedup"][key] == pytest.approx(t["median_ms"] / s["median_ms"])
        assert s["throughput_samples_per_s"] == pytest.approx(bs * 1000 / s["median_ms"])


def test_fewer_than_30_runs_is_refused():
    with pytest.raises(ValueError, match="30"):
        measure_latency({"teacher": nn.Linear(64, 4)}, lambda m, b: m(b["x"]), example_batch, runs=10)


def test_speedup_needs_teacher_and_student_and_mode_is_restored():
    model = nn.Linear(64, 4).train()
    out = measure_latency({"a": model}, lambda m, b: m(b["x"]), example_batch, batch_sizes=(2,), runs=30, warmup=0)
    assert out["speedup"] is None and out["speedup_reason"]
    assert model.training  # eval during the measurement only


def test_full_pass_time_is_positive():
    batches = [example_batch(4) for _ in range(3)]
    assert time_full_pass(nn.Linear(64, 4), lambda m, b: m(b["x"]), batches) > 0

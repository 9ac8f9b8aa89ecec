"""Inference memory: a fresh process loads the saved model and runs it; its RSS increase follows the model."""

from __future__ import annotations

import torch
from torch import nn

from backend.metrics.inference_memory import measure_inference_memory, pickle_globals


def test_a_fresh_process_sees_the_models_memory_and_not_the_others(tmp_path):
    big = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 100_000), nn.Linear(100_000, 10))  # ~80 MB of fp32
    small = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    torch.save(big, tmp_path / "big.pt")
    torch.save(small, tmp_path / "small.pt")
    torch.save(
        {"pixel_values": torch.rand(32, 3, 8, 8), "labels": torch.zeros(32, dtype=torch.long)}, tmp_path / "batch.pt"
    )
    spec = {
        "entries": [
            {"label": "teacher", "runtime": "pytorch", "path": str(tmp_path / "big.pt")},
            {"label": "student", "runtime": "pytorch", "path": str(tmp_path / "small.pt")},
        ],
        "model_id": "resnet18",  # a vision model's adapter: pixel_values -> logits
        "class_names": [str(i) for i in range(10)],
        "tokenizer": None,
        "batch": str(tmp_path / "batch.pt"),
        "threads": 1,
        "allowed_globals": pickle_globals(big, small),
    }
    out = measure_inference_memory(spec, tmp_path)
    assert "error" not in out, out
    teacher, student = out["pytorch"]["teacher"], out["pytorch"]["student"]
    weights_mb = sum(p.numel() * 4 for p in big.parameters()) / 1e6
    assert teacher["batch_1"]["increase_mb"] >= 0.9 * weights_mb  # the loaded weights are resident
    assert student["batch_32"]["increase_mb"] < teacher["batch_1"]["increase_mb"] - 0.8 * weights_mb
    assert teacher["batch_32"]["batch_size"] == 32 and teacher["batch_1"]["batch_size"] == 1
    assert teacher["batch_32"]["peak_rss_mb"] >= teacher["batch_1"]["peak_rss_mb"] > teacher["batch_1"]["increase_mb"]
    again = measure_inference_memory(spec, tmp_path)  # the probe is reused; the same model, the same memory
    assert (
        abs(again["pytorch"]["teacher"]["batch_1"]["increase_mb"] - teacher["batch_1"]["increase_mb"])
        < 0.1 * weights_mb
    )


def test_the_probe_loads_only_the_classes_it_was_told(tmp_path):
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)), tmp_path / "m.pt")
    torch.save({"pixel_values": torch.rand(32, 3, 8, 8)}, tmp_path / "batch.pt")
    spec = {
        "entries": [{"label": "teacher", "runtime": "pytorch", "path": str(tmp_path / "m.pt")}],
        "model_id": "resnet18",
        "class_names": ["a", "b"],
        "tokenizer": None,
        "batch": str(tmp_path / "batch.pt"),
        "threads": 1,
        "allowed_globals": pickle_globals(nn.Sequential(nn.Linear(2, 2))),  # no Flatten: refused, not run
    }
    out = measure_inference_memory(spec, tmp_path)
    error = out["pytorch"]["teacher"]["batch_1"]["error"]
    assert "Unsupported global" in error and "Flatten" in error

"""A study on the built-in vision task with several seeds: per-point means and intervals, frontier on the means."""

from __future__ import annotations

import json

import pytest

from backend.study_cli import run_study
from tests.engine_helpers import TINY


@pytest.mark.slow
def test_a_seeded_study_on_shapes_reports_means_and_intervals(tmp_path):
    body = {
        "model_name": "resnet18",
        "dataset": "shapes",
        **{**TINY, "pruning_steps": 1, "max_samples": 300},
        "pretrained": False,
        "seeds": [0, 1],
        "grid": {"sparsity": [0.3, 0.6], "structural_ratio": [0.5]},
    }
    rows = run_study(body, tmp_path / "study", tmp_path / "cache", tmp_path / "uploads")
    assert len(rows) == 2 and all(r["n_seeds"] == 2 and r["state"] == "succeeded" for r in rows)
    runs = json.loads((tmp_path / "study" / "study.json").read_text())["rows"]
    assert runs == rows  # the written table is the aggregated one
    for row in rows:
        assert row["seeds"] == [0, 1] and len(row["job_ids"]) == 2
        low, high = row["accuracy_ci"]
        assert low <= row["accuracy"] <= high and row["accuracy_std"] >= 0
        assert row["latency_batch_1_ms_ci"][0] <= row["latency_batch_1_ms"] <= row["latency_batch_1_ms_ci"][1]
    # the frontier is computed on the means
    better = [
        r for r in rows for o in rows if o is not r and o["accuracy"] >= r["accuracy"]
        and o["latency_batch_1_ms"] <= r["latency_batch_1_ms"]
        and (o["accuracy"] > r["accuracy"] or o["latency_batch_1_ms"] < r["latency_batch_1_ms"])
    ]  # fmt: skip
    assert [r["pareto_latency"] for r in rows] == [r not in better for r in rows]
    assert all(r["separable_latency"] in (True, False) for r in rows if r["pareto_latency"])
    csv_text = (tmp_path / "study" / "study.csv").read_text()
    assert "accuracy_ci_low" in csv_text.splitlines()[0]
    matlab = json.loads((tmp_path / "study" / "matlab_study.json").read_text())["matlab_data"]
    assert len(matlab["accuracy_ci_low"]) == 2 and matlab["n_seeds"] == [2, 2]

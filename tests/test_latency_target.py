"""A latency target (issue #23): the pure search over the compression amount with a stubbed timer, the paired
medians it reports, the options' validation, and (slow) real ResNet-18 jobs timed in ONNX Runtime."""

from __future__ import annotations

import json
import time

import pytest

from backend.jobconfig import ConfigError, JobConfig
from backend.kd.callbacks import Callbacks
from backend.metrics.latency_target import MAX_CANDIDATES, LatencyTargetUnreachable, search_amount
from backend.metrics.matlab import matlab_data
from backend.metrics.stats import paired_medians


def _timer(speedup_at, teacher_ms: float = 10.0, log: list | None = None):
    """measure(amount) -> (student_ms, teacher_ms) from a speedup curve; records the amounts asked for."""

    def measure(amount: float) -> tuple[float, float]:
        if log is not None:
            log.append(amount)
        return teacher_ms / speedup_at(amount), teacher_ms

    return measure


def _linear(amount: float) -> float:
    return 1.0 + 4.0 * amount  # 1x at 0, 4.8x at 0.95


def test_search_picks_the_least_amount_that_meets_a_speedup():
    asked: list[float] = []
    result = search_amount(_timer(_linear, log=asked), target_speedup=2.5)
    # 1 + 4a >= 2.5 <=> a >= 0.375: on the 0.025 grid the least is 0.375
    assert result["met"] and result["chosen"] == pytest.approx(0.375)
    assert 3 <= len(result["candidates"]) <= MAX_CANDIDATES
    assert asked[0] == pytest.approx(0.95)  # the most compressed first: an unreachable target costs one candidate
    chosen = next(c for c in result["candidates"] if c["amount"] == result["chosen"])
    assert chosen["meets_target"] and chosen["speedup"] >= 2.5
    below = [c for c in result["candidates"] if c["amount"] == pytest.approx(0.35)]
    assert below and not below[0]["meets_target"]  # the grid step below it was measured and missed
    assert result["non_monotone"] == []


def test_search_meets_a_latency_in_ms():
    # student latency 10 / (1 + 4a) ms <= 4 ms <=> a >= 0.375
    result = search_amount(_timer(_linear), target_latency_ms=4.0)
    assert result["chosen"] == pytest.approx(0.375)
    assert all(c["meets_target"] == (c["student_ms"] <= 4.0) for c in result["candidates"])


def test_search_when_no_compression_is_needed_measures_down_to_zero():
    result = search_amount(_timer(lambda a: 3.0 + a), target_speedup=1.5)
    assert result["chosen"] == 0.0 and result["met"]
    assert len(result["candidates"]) >= 3


def test_unreachable_target_stops_after_the_fastest_candidate():
    asked: list[float] = []
    result = search_amount(_timer(_linear, log=asked), target_speedup=1000)
    assert not result["met"] and result["chosen"] is None
    assert asked == [pytest.approx(0.95)]
    assert result["fastest"]["amount"] == pytest.approx(0.95)
    assert result["fastest"]["speedup"] == pytest.approx(4.8)
    assert result["stopped"].startswith("unreachable")


def test_the_number_of_candidates_is_capped():
    asked: list[float] = []
    result = search_amount(_timer(_linear, log=asked), target_speedup=2.5, resolution=0.001, max_candidates=4)
    assert len(asked) == 4 and result["met"]
    assert "max_candidates" in result["stopped"]
    # the cap leaves the least amount measured to meet the target, never one that missed it
    chosen = next(c for c in result["candidates"] if c["amount"] == result["chosen"])
    assert chosen["meets_target"]
    assert result["chosen"] == min(c["amount"] for c in result["candidates"] if c["meets_target"])


def test_noise_against_monotonicity_is_reported_and_the_choice_stays_a_measured_hit():
    # noise: 0.35 measures at 3.0x, faster than 0.475 (2.9x), though the curve gives it 2.4x
    def noisy(amount: float) -> float:
        return 3.0 if abs(amount - 0.35) < 1e-9 else _linear(amount)

    result = search_amount(_timer(noisy), target_speedup=2.5)
    assert result["met"]
    pairs = {(p["smaller_amount"], p["larger_amount"]) for p in result["non_monotone"]}
    assert (0.35, 0.475) in pairs  # the larger amount that ran slower is listed
    chosen = next(c for c in result["candidates"] if c["amount"] == result["chosen"])
    assert chosen["meets_target"]  # the choice is always an amount measured to meet the target
    smaller_misses = [c for c in result["candidates"] if c["amount"] < result["chosen"]]
    assert smaller_misses and not any(c["meets_target"] for c in smaller_misses)


def test_search_needs_exactly_one_target():
    with pytest.raises(ValueError):
        search_amount(_timer(_linear))
    with pytest.raises(ValueError):
        search_amount(_timer(_linear), target_speedup=2.0, target_latency_ms=1.0)


def test_paired_medians_ratio_and_intervals():
    teacher = [10.0, 11.0, 9.0, 10.5, 9.5] * 8
    student = [4.0, 4.4, 3.6, 4.2, 3.8] * 8
    out = paired_medians(teacher, student)
    assert out["ratio"] == pytest.approx(2.5)
    low, high = out["ratio_ci"]
    assert low <= 2.5 <= high
    assert out["median_a_ci"][0] <= 10.0 <= out["median_a_ci"][1]
    with pytest.raises(ValueError):
        paired_medians([1.0, 2.0], [1.0])


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"target_speedup": 2.0, "target_latency_ms": 5.0}, "target_speedup"),
        ({"target_speedup": -2.0}, "target_speedup"),
        ({"target_latency_ms": -1.0}, "target_latency_ms"),
        ({"target_latency_ms": 0}, "target_latency_ms"),
        ({"target_speedup": 2.0, "target_batch_size": 0}, "target_batch_size"),
        ({"target_speedup": 2.0, "target_runtime": "tensorrt"}, "target_runtime"),
        ({"target_speedup": 2.0, "structural_ratio": 0.5}, "structural_ratio"),
    ],
)
def test_invalid_targets_are_refused(options, field):
    with pytest.raises(ConfigError) as info:
        JobConfig.from_dict({"model_name": "resnet18", **options})
    assert info.value.field == field


def test_a_target_is_an_option_like_any_other():
    config = JobConfig.from_dict({"model_name": "resnet18", "target_latency_ms": 3})
    assert config.latency_target == {"target_latency_ms": 3.0}
    assert config.target_runtime == "onnxruntime" and config.target_batch_size == 1
    assert JobConfig.from_dict({"model_name": "resnet18"}).latency_target is None


def test_post_train_with_two_targets_is_a_400_that_stores_nothing(client):
    before = client.get("/jobs").get_json()
    response = client.post("/train", json={"model_name": "resnet18", "target_speedup": 2, "target_latency_ms": 1})
    assert response.status_code == 400
    body = response.get_json()
    assert "target_latency_ms or target_speedup" in json.dumps(body)
    assert client.get("/jobs").get_json() == before


def test_get_models_lists_the_target_options(client):
    body = client.get("/models").get_json()
    schema = {o["name"]: o for o in body["option_schema"]}
    assert {"target_latency_ms", "target_speedup", "target_runtime", "target_batch_size"} <= set(schema)
    assert (
        schema["target_runtime"]["choices"] == ["onnxruntime", "pytorch"] and body["options"]["target_batch_size"] == 1
    )
    assert "latency_target" in body["concepts"]["phases"] and "latency_target" in body["concepts"]["optional_phases"]
    assert "latency_target" in body["concepts"]["report_sections"]


@pytest.mark.slow
def test_resnet18_quick_job_with_a_latency_target(tmp_path):
    """The whole path with real ONNX Runtime timings. The target (60 s a batch) is one every candidate meets, so
    the test does not hang on this machine's speed: a speedup target that is reachable on an idle machine (2.5x at
    32x32 inputs) is out of reach on another (measured 2.26x at ratio 0.95), and the test must not flip with it."""
    from tests.engine_helpers import tiny_job

    result = tiny_job(tmp_path, "resnet18", target_latency_ms=60_000, target_runtime="onnxruntime", pruning_steps=1)
    report = result.report
    section = report["latency_target"]
    assert section["asked"] == {"target_latency_ms": 60_000, "runtime": "onnxruntime", "batch_size": 1}
    assert len(section["candidates"]) >= 3
    for row in section["candidates"]:
        assert row["flops_per_sample"] > 0 and row["parameters"] > 0 and row["latency_ms"] > 0
        low, high = row["latency_ms_ci"]
        assert low <= row["latency_ms"] <= high
        assert row["meets_target"] and row["speedup"] > 0  # every candidate runs a batch in under 60 s
    chosen = section["chosen"]
    assert any(row["amount"] == chosen and row["meets_target"] for row in section["candidates"])
    assert report["metadata"]["config"]["resolved"]["structural_ratio"] == chosen  # the chosen ratio was trained
    assert report["pruning_analysis"]["structural"]["ratio"] == chosen
    achieved = section["achieved"]
    assert achieved["latency_ms"] > 0 and achieved["runtime"] == "onnxruntime"
    assert section["met"] is True and achieved["latency_ms"] <= 60_000
    assert "latency_target" in report["metadata"]["timings_s"]
    matlab = json.loads(json.dumps(matlab_data(report)))
    assert len(matlab["latency_target"]["candidates"]["amount"]) == len(section["candidates"])
    assert matlab["latency_target"]["met"] in (0, 1)


@pytest.mark.slow
def test_an_unreachable_target_fails_fast_naming_the_fastest_candidate(tmp_path):
    from tests.engine_helpers import tiny_job

    phases: list[str] = []

    class Phases(Callbacks):
        def on_phase_start(self, phase, info):
            phases.append(phase)

    started = time.perf_counter()
    with pytest.raises(LatencyTargetUnreachable) as info:
        tiny_job(tmp_path, "resnet18", Phases(), target_speedup=1000)
    elapsed = time.perf_counter() - started
    message = str(info.value)
    assert "1000x" in message and "fastest candidate" in message and " ms" in message
    assert phases == ["data", "latency_target"]  # failed before any training
    assert elapsed < 120  # the issue asks for under 60 s; loose here because the test machine is shared


# ---------------------------------------------------------------- studies


def test_a_study_with_a_latency_target_sweeps_no_structural_ratio():
    from backend.jobs.studies import expand_grid
    from backend.study_cli import parse_args

    # the target as a shared option: every point searches its own ratio
    grid, _, configs = expand_grid({"model_name": "resnet18", "target_speedup": 2.5, "grid": {"sparsity": [0.3, 0.5]}})
    assert [c.target_speedup for c in configs] == [2.5, 2.5] and all(c.structural_ratio is None for c in configs)
    # the target as an axis
    grid, _, configs = expand_grid({"model_name": "resnet18", "grid": {"sparsity": [0.3], "target_speedup": [2, 3]}})
    assert grid["target_speedup"] == [2, 3] and [c.target_speedup for c in configs] == [2, 3]
    # no target: the ratio stays required, and the error names the alternative
    with pytest.raises(ConfigError) as err:
        expand_grid({"model_name": "resnet18", "grid": {"sparsity": [0.3]}})
    assert err.value.field == "grid.structural_ratio" and "target_speedup" in str(err.value)
    # a target beside a swept ratio is refused at the point (the target chooses the ratio)
    with pytest.raises(ConfigError):
        expand_grid(
            {"model_name": "resnet18", "target_speedup": 2.5, "grid": {"sparsity": [0.3], "structural_ratio": [0.5]}}
        )
    # the study command line: a target stands in for --structural-ratio
    args = parse_args(["--model", "resnet18", "--sparsity", "0.3", "--target-speedup", "2.5"])
    assert args.target_speedup == [2.5]
    with pytest.raises(SystemExit):
        parse_args(["--model", "resnet18", "--sparsity", "0.3"])

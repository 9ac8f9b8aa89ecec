"""Whole jobs through run_job: report, artifacts, cancellation, caching, determinism, the exported vision model
(the exported T5 is checked on test_deployment.py's T5 job)."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import zipfile

import pytest
import torch
from safetensors.torch import load_file

from backend.data import datasets as ds
from backend.kd.callbacks import Callbacks, JobCancelled
from tests.engine_helpers import REPORT_SECTIONS, tiny_job

# one intra-op thread, as a job gets on a 2-core machine (backend.runtime.set_torch_threads)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Recorder(Callbacks):
    def __init__(self):
        self.phases, self.steps, self.metrics, self.ended = [], 0, [], {}

    def on_phase_start(self, phase, info):
        self.phases.append(phase)

    def on_phase_end(self, phase, info):
        self.ended[phase] = info

    def on_step_end(self, phase, step, total, losses, eta_s):
        self.steps += 1

    def on_metrics(self, phase, metrics):
        self.metrics.append((phase, metrics))


@pytest.fixture(scope="module")
def resnet_job(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resnet")
    rec = Recorder()
    return tmp, rec, tiny_job(tmp, "ResNet-18", rec)


@pytest.mark.slow
def test_job_runs_every_phase_and_writes_the_report(resnet_job):
    tmp, rec, result = resnet_job
    assert rec.phases == ["data", "teacher", "student", "distill", "prune", "evaluate"]
    assert rec.steps > 0
    prune_rows = [m for p, m in rec.metrics if p == "prune"]
    assert [r["step"] for r in prune_rows] == [1, 2, 3]
    assert prune_rows[-1]["achieved_sparsity"] == pytest.approx(0.3, abs=1e-4)
    report = json.loads((result.out_dir / "report.json").read_text())
    assert all(s in report for s in REPORT_SECTIONS)
    assert report["metadata"]["teacher_source"]["kind"] == "trained"
    config = report["metadata"]["config"]  # unset fields are null with the reason, resolved values beside them
    assert config["batch_size"] is None and config["resolved"]["batch_size"] == 64
    assert "preset's default" in config["batch_size_reason"] and config["epochs"] == 1
    assert "teacher was not uploaded" in config["teacher_upload_id_reason"]
    assert rec.ended["distill"]["teacher_logits"] == "computed once per job"  # frozen teacher: one pass
    for name in ("report.json", "matlab_metrics.json", "metrics.csv", "bundle.zip", "README.txt"):
        assert (result.out_dir / name).is_file()
    names = zipfile.ZipFile(result.out_dir / "bundle.zip").namelist()
    assert "report.json" in names and "model/model.pt2" in names and "model/model.safetensors" in names
    assert any(n.startswith("plots/") and n.endswith(".png") for n in names)
    weights = load_file(str(result.out_dir / "model" / "model.safetensors"))
    assert not any(k.endswith(("_orig", "_mask")) for k in weights)  # pruning was made permanent
    conv = weights["conv1.weight"]
    assert 0 < float((conv == 0).float().mean()) < 1


@pytest.mark.slow
def test_the_report_carries_intervals_paired_tests_and_inference_memory(resnet_job):
    _, _, result = resnet_job
    report = result.report
    perf = report["student_model_performance"]
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted"):
        low, high = perf[f"{key}_ci"]
        assert low <= perf[key] <= high
    acc = report["teacher_vs_student_comparison"]["effectiveness"]["accuracy"]
    diff = acc["difference"]
    assert diff["test"] == "mcnemar_exact" and 0 <= diff["p_value"] <= 1
    assert diff["points"] == pytest.approx((acc["student"] - acc["teacher"]) * 100)
    assert diff["within_noise"] == (diff["ci_points"][0] <= 0 <= diff["ci_points"][1])
    first = report["learning_outcomes"]["summary_sentences"][0]
    assert ("within noise" in first) == diff["within_noise"]
    stages = {s["stage"]: s for s in report["learning_outcomes"]["accuracy_by_stage"]}
    assert stages["student_kd"]["test_difference_from_previous"]["previous"] == "student_structural"
    matlab = json.loads((result.out_dir / "matlab_metrics.json").read_text())["matlab_data"]
    low, high = matlab["effectiveness"]["accuracy_ci_low"], matlab["effectiveness"]["accuracy_ci_high"]
    assert len(low) == len(high) == 2 and low[1] <= matlab["effectiveness"]["accuracy"][1] <= high[1]
    assert 0 <= matlab["comparison"]["accuracy_drop_p_value"] <= 1
    rows = {r[0]: r for r in csv.reader(io.StringIO((result.out_dir / "metrics.csv").read_text()))}
    assert float(rows["effectiveness.accuracy_ci_low"][3]) <= float(rows["effectiveness.accuracy"][3])
    memory = report["efficiency_improvements"]["inference_memory"]
    for runtime in ("pytorch", "onnxruntime"):
        teacher, student = memory[runtime]["teacher"], memory[runtime]["student"]
        assert teacher["batch_32"]["batch_size"] == min(32, perf["test_samples"])
        # a 4x smaller network (quick ResNet-18 at half the channels) needs less memory to load and run
        assert student["batch_1"]["increase_mb"] < teacher["batch_1"]["increase_mb"]
    assert "trainable_parameters" in report["metadata"]
    assert "parameters_trainable" not in json.dumps(report["teacher_vs_student_comparison"]["table"])


@pytest.mark.slow
def test_exported_vision_model_reproduces_reported_accuracy(resnet_job):
    tmp, _, result = resnet_job
    program = torch.export.load(str(result.out_dir / "model" / "model.pt2"))
    raw = ds.load_digits()
    raw = ds.subsample(raw, 240, 0)
    test_set = ds.vision_tensors(raw, ds.split_indices(raw.labels, 0).test, 32)
    test = test_set.head(len(test_set))  # every test example once, resized and normalised as the job served them
    with torch.inference_mode():
        pred = program.module()(test["pixel_values"]).argmax(-1)
    accuracy = int((pred == test["labels"]).sum()) / len(pred)
    final = [s for s in result.report["learning_outcomes"]["accuracy_by_stage"] if s["stage"] == "final"][0]
    reported = result.report["student_model_performance"]["accuracy"]
    assert accuracy == pytest.approx(reported, abs=1e-9)
    assert final["test_accuracy"] == pytest.approx(reported)


class StopBeforeMeasuring(Recorder):
    """Records like Recorder, and stops the job once pruning has ended (before the evaluate phase)."""

    def __init__(self):
        super().__init__()
        self.pruned = False

    def on_phase_end(self, phase, info):
        super().on_phase_end(phase, info)
        self.pruned = self.pruned or phase == "prune"

    def should_stop(self):
        return self.pruned


def _stages(report):
    return [
        (s["stage"], s["val_accuracy"], s["test_accuracy"]) for s in report["learning_outcomes"]["accuracy_by_stage"]
    ]


@pytest.mark.slow
def test_second_job_reuses_cached_teacher(resnet_job):
    tmp, _, first = resnet_job
    second = tiny_job(tmp, "resnet18", job_id="job-2")
    assert second.report["metadata"]["teacher_source"]["kind"] == "cache"
    t1 = first.report["teacher_vs_student_comparison"]
    t2 = second.report["teacher_vs_student_comparison"]
    assert json.dumps(t1.get("accuracy")) == json.dumps(t2.get("accuracy"))  # same teacher, same seed
    assert _stages(second.report) == _stages(first.report)  # and the same student, measured the same


@pytest.mark.slow
def test_same_seed_trains_the_same_numbers(tmp_path, resnet_job):
    """A fresh cache, so the teacher is trained again: every validation figure, loss and pruning row is the same.

    The job stops before measuring; the cached-teacher job above compares measured (test-split) figures."""
    _, first, _ = resnet_job
    again = StopBeforeMeasuring()
    with pytest.raises(JobCancelled):
        tiny_job(tmp_path, "resnet18", again, job_id="again")
    assert again.phases == first.phases[:-1] == ["data", "teacher", "student", "distill", "prune"]
    assert again.steps == first.steps
    assert json.dumps(again.metrics) == json.dumps(first.metrics)  # bit for bit: floats printed in full


def test_cancel_stops_a_job_within_five_seconds(tmp_path):
    stop = threading.Event()

    class Stop(Callbacks):
        def should_stop(self):
            return stop.is_set()

        def on_phase_start(self, phase, info):
            if phase == "distill":
                stop.set()
                self.asked = time.perf_counter()

    cb = Stop()
    with pytest.raises(JobCancelled):
        # an untrained teacher (epochs=0): what is timed is the stop in distill, which would run 20 epochs
        tiny_job(tmp_path, "mobilenetv2", cb, epochs=0, kd_epochs=20)
    assert time.perf_counter() - cb.asked < 5


def test_student_learning_rate_is_the_presets_unless_the_request_sets_one():
    from backend.jobconfig import JobConfig
    from backend.models.registry import get_model_spec
    from backend.pipeline import resolved_hyperparameters

    spec = get_model_spec("distilbert")
    preset = resolved_hyperparameters(JobConfig.from_dict({"model_name": "distilbert"}), spec)
    assert preset["kd_learning_rate"] > preset["learning_rate"]  # its 2-block student needs a higher rate
    asked = resolved_hyperparameters(JobConfig.from_dict({"model_name": "distilbert", "learning_rate": 1e-4}), spec)
    assert asked["learning_rate"] == asked["kd_learning_rate"] == 1e-4
    vision = resolved_hyperparameters(JobConfig.from_dict({"model_name": "resnet18"}), get_model_spec("resnet18"))
    assert vision["kd_learning_rate"] == vision["learning_rate"]


@pytest.mark.parametrize(("model", "quick", "standard"), [("resnet18", 32, 224), ("mobilenetv2", 64, 224)])
def test_each_cnn_is_fed_its_own_input_size(tmp_path, model, quick, standard):
    """MobileNetV2 sees 64x64 at the quick preset (at 32x32 it stayed at chance on `shapes`), ResNet-18 32x32:
    every batch a job trains and measures on is resized to the model's size, at both presets."""
    from backend.jobconfig import JobConfig
    from backend.models.registry import get_model_spec
    from backend.pipeline import JobState, load_data, resolved_hyperparameters

    spec = get_model_spec(model)
    for preset, size in (("quick", quick), ("standard", standard)):
        config = JobConfig.from_dict({"model_name": model, "preset": preset, "max_samples": 100, "augment": False})
        state = JobState(config=config, spec=spec, hp=resolved_hyperparameters(config, spec))
        load_data(state, tmp_path / "uploads", tmp_path / "cache")
        assert state.image_size == size
        for split in (state.train, state.test):
            assert tuple(next(split.batches(4))["pixel_values"].shape) == (4, 3, size, size)

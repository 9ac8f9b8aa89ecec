"""The deployment runtime in a real job: ONNX Runtime accuracy and latency beside PyTorch's, the int8 stage, the
bundle's ONNX files running with onnxruntime alone, and the exported T5 reproducing its reported accuracy."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from backend.jobconfig import ConfigError, JobConfig
from backend.metrics.deployment import _block
from backend.metrics.matlab import matlab_data, matlab_problems, metrics_csv
from backend.models.onnx_export import OrtModel
from tests.engine_helpers import tiny_job


def test_quantize_option_is_validated_and_listed(client):
    assert JobConfig.from_dict({"model_name": "t5"}).quantize == "none"
    assert JobConfig.from_dict({"model_name": "t5", "quantize": "dynamic_int8"}).quantize == "dynamic_int8"
    with pytest.raises(ConfigError) as err:
        JobConfig.from_dict({"model_name": "t5", "quantize": "int4"})
    assert err.value.field == "quantize"
    body = client.get("/models").get_json()
    assert body["quantize_options"] == ["none", "dynamic_int8"] and body["options"]["quantize"] == "none"
    res = client.post("/train", json={"model_name": "resnet18", "quantize": True})
    assert res.status_code == 400 and "quantize" in res.get_json()["error"]["message"]


def test_without_int8_the_third_column_is_null_with_a_reason():
    timing = {
        "median_ms": 2.0,
        "p95_ms": 3.0,
        "mean_ms": 2.0,
        "min_ms": 1.0,
        "throughput_samples_per_s": 500.0,
        "runs": 30,
    }
    exported = {
        n: {"kind": "image_classifier", "files": {"model": "model.onnx"}, "exporter": {"model": "x"}}
        for n in ("teacher", "student")
    }
    block = _block(
        exported,
        {"teacher": 0.9, "student": 0.89},
        {n: {"batch_1": timing} for n in exported},
        {"teacher": 4_000_000, "student": 1_000_000},
        {"teacher": 0.9, "student": 0.8905},
        "none",
        1,
        30,
        (1,),
        "test",
    )
    assert block["accuracy"]["student_int8"] is None and "quantize" in block["accuracy_student_int8_reason"]
    assert block["latency"]["speedup_int8"] is None and block["latency"]["speedup"] == {"batch_1": 1.0}
    assert block["student_accuracy_difference_points"] == pytest.approx(-0.05)
    assert block["student_accuracy_matches_pytorch"] is True


@pytest.fixture(scope="module")
def t5_int8_job(tmp_path_factory, one_torch_thread):
    """The module's one T5 job (with the int8 stage): its report, ONNX files and exported PyTorch model."""
    return tiny_job(tmp_path_factory.mktemp("dep"), "t5-small", quantize="dynamic_int8", job_id="job-dep")


@pytest.mark.slow
def test_t5_job_exports_a_model_that_reproduces_its_accuracy(t5_int8_job):
    import torch
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    from backend.data import datasets as ds

    report = t5_int8_job.report
    assert report["metadata"]["model"]["id"] == "t5-small"
    folder = str(t5_int8_job.out_dir / "model")
    tok = AutoTokenizer.from_pretrained(folder)
    model = T5ForConditionalGeneration.from_pretrained(folder).eval()
    samples = report["metadata"]["config"]["max_samples"]
    raw = ds.subsample(ds.load_synthetic_sentiment(0, ds.TEXT_SET_SIZE), samples, 0)
    test_idx = ds.split_indices(raw.labels, 0).test
    enc = tok(
        [raw.texts[i] for i in test_idx],
        padding="max_length",
        truncation=True,
        return_tensors="pt",
        max_length=report["metadata"]["dataset"]["max_length_tokens"],
    )
    with torch.inference_mode():
        words = tok.batch_decode(model.generate(**enc, max_new_tokens=4), skip_special_tokens=True)
    correct = sum(w.strip() == raw.class_names[raw.labels[i]] for w, i in zip(words, test_idx, strict=True))
    assert correct / len(test_idx) == pytest.approx(report["student_model_performance"]["accuracy"])


@pytest.mark.slow
def test_t5_int8_job_reports_both_runtimes_and_three_columns(t5_int8_job):
    report = t5_int8_job.report
    runtimes = report["efficiency_improvements"]["runtimes"]
    assert runtimes["pytorch"]["latency"] == report["efficiency_improvements"]["latency"]  # old keys kept
    ort = runtimes["onnxruntime"]
    assert ort["labels"] == ["teacher", "student", "student_int8"] and ort["provider"] == "CPUExecutionProvider"
    assert set(ort["latency"]) == {"batch_1", "batch_32"}
    for row in ort["latency"].values():
        assert all(row[f"{n}_median_ms"] > 0 for n in ort["labels"]) and row["speedup_int8"] > 0
    # the exported student answers as the PyTorch one does (greedy generation, on the test split)
    perf = report["student_model_performance"]["onnxruntime"]
    assert (
        abs(perf["accuracy_difference_points"]) <= 0.1
        and perf["accuracy_pytorch"] == ort["pytorch_accuracy"]["student"]
    )
    assert 0.0 <= ort["accuracy"]["student_int8"] <= 1.0
    sizes = ort["size_mb"]
    assert sizes["student_int8"] < sizes["student"] < sizes["teacher"]
    data = matlab_data(report)
    assert matlab_problems(data) == []
    assert data["runtimes"]["onnxruntime"]["labels"] == ["teacher", "student", "student_int8"]
    assert len(data["runtimes"]["onnxruntime"]["latency_median_ms_batch_1"]) == 3
    rows = {r[0]: r for r in csv.reader(io.StringIO(metrics_csv(report)))}
    assert float(rows["onnxruntime.model_size_mb"][4]) == pytest.approx(sizes["student_int8"])
    saved = json.loads((t5_int8_job.out_dir / "report.json").read_text())
    assert saved["efficiency_improvements"]["runtimes"]["onnxruntime"]["quantize"] == "dynamic_int8"
    # the memory probe's fresh process ran the cached ONNX Runtime loop too (no reason in place of figures)
    memory = report["efficiency_improvements"].get("inference_memory")
    assert memory is not None, report["efficiency_improvements"].get("inference_memory_reason")
    for bs in (1, 32):
        row = memory["onnxruntime"]["student"][f"batch_{bs}"]
        assert "error" not in row and row["peak_rss_mb"] > 0, row


@pytest.mark.slow
def test_bundle_onnx_runs_with_onnxruntime_alone(t5_int8_job, tmp_path):
    """The README's own onnxruntime snippet, in a fresh interpreter that cannot import this project."""
    with zipfile.ZipFile(t5_int8_job.out_dir / "bundle.zip") as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path)
    assert {
        "onnx/student/model_encoder.onnx",
        "onnx/student/model_decoder.onnx",
        "onnx/student_int8/model_encoder.onnx",
    } <= names
    assert not any(n.startswith("onnx/teacher") for n in names)
    readme = (tmp_path / "README.txt").read_text()
    snippet = textwrap.dedent(readme.split("Running the ONNX student with onnxruntime alone")[1].split("\n", 1)[1])
    report = t5_int8_job.report
    length = report["metadata"]["dataset"]["max_length_tokens"]
    ids = np.full((3, length), 0, dtype=np.int64)
    ids[:, :4] = [[5, 6, 7, 1], [8, 9, 10, 1], [11, 12, 13, 1]]
    np.save(tmp_path / "ids.npy", ids)
    program = (
        "import sys, numpy as np\n"
        "assert not any('backend' in m for m in sys.modules)\n"
        "input_ids = np.load('ids.npy'); attention_mask = (input_ids != 0).astype(np.int64)\n"
        f"{snippet}\n"
        "assert out.shape[0] == 3 and out.shape[1] >= 2 and (out[:, 0] == 0).all()\n"
        "assert not any(m.split('.')[0] in ('backend', 'torch', 'transformers') for m in sys.modules)\n"
        "print('ok', out.tolist())\n"
    )
    # -I: isolated mode, no PYTHONPATH and no current directory on sys.path: the project cannot be imported
    done = subprocess.run(
        [sys.executable, "-I", "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ok")
    # the snippet's cached loop answers as the job's own ONNX Runtime loop on the same files
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    tokens = ("decoder_start_token_id", "eos_token_id", "pad_token_id")
    files = {"encoder": "model_encoder.onnx", "decoder": "model_decoder.onnx"}
    exported = {"kind": "encoder_decoder", "files": files, "generation": {k: config[k] for k in tokens}}
    steps = int(re.search(r"for _ in range\((\d+)\)", snippet).group(1))
    ours = OrtModel.load(tmp_path / "onnx" / "student", exported, 1).generate(ids, (ids != 0).astype(np.int64), steps)
    assert json.loads(done.stdout.split(" ", 1)[1]) == ours.tolist()

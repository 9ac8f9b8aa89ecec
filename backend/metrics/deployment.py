"""The deployment runtime: teacher, student and (optionally) the int8 student exported to ONNX and measured in
ONNX Runtime (CPUExecutionProvider) - test accuracy, file size and interleaved latency.

int8 stage (`quantize: "dynamic_int8"`): ONNX Runtime's `quantize_dynamic` on the exported student. It serves all
four models (PyTorch's dynamic quantization covers only nn.Linear and its result does not export to ONNX, the
runtime a user ships). Which operators are quantized is the registry's `extra["int8_op_types"]`: MatMul/Gemm
(and Gather, the embeddings, for transformers); convolutions are left in float, because dynamic int8 Conv
(ConvInteger) ran 7-19x slower than float Conv in ONNX Runtime on this machine (MobileNetV2 and ResNet-18 at
32x32, batch 1 and 32).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from backend.models.onnx_export import OrtModel, export_onnx, onnx_bytes, ort_predictor
from backend.models.registry import get_model_spec

from .common import MB, MB_NOTE, ratio
from .effectiveness import classification_metrics
from .efficiency import MIN_LATENCY_RUNS, SPEEDUP_CI_NOTE, _interleaved_times, _summary, speedup_intervals
from .keys import QUANTIZE_OPTIONS

LABELS = ("teacher", "student", "student_int8")
DEFAULT_INT8_OP_TYPES = ("MatMul", "Gemm")


def quantize_student(model_id: str, src: Path, dst: Path, exported: dict) -> dict:
    """Dynamic int8 (weights int8, activations quantized at run time) of every exported file of the student."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    op_types = list(get_model_spec(model_id).int8_op_types or DEFAULT_INT8_OP_TYPES)
    dst.mkdir(parents=True, exist_ok=True)
    for name in exported["files"].values():
        quantize_dynamic(str(src / name), str(dst / name), weight_type=QuantType.QInt8, op_types_to_quantize=op_types)
    return {
        **exported,
        "quantization": {
            "method": "onnxruntime.quantization.quantize_dynamic",
            "weight_type": "int8",
            "op_types": op_types,
        },
    }


def _accuracy(
    predict: Callable, model: Any, test_batches: Sequence[tuple[dict, torch.Tensor]], class_names: list[str]
) -> float:
    labels, preds = [], []
    for batch, y in test_batches:
        labels.extend(int(v) for v in y.reshape(-1).tolist())
        preds.extend(int(v) for v in predict(model, batch).reshape(-1).tolist())
    return classification_metrics(labels, preds, class_names)["accuracy"]


def interleaved_latency(
    models: dict[str, Any],
    predict: Callable,
    example_batch: Callable[[int], dict],
    batch_sizes: Sequence[int],
    runs: int,
    warmup: int = 5,
) -> tuple[dict, dict]:
    """Per model and batch size: the summary of `runs` timings in alternation (order flipped every run), after
    warm-up; and the per-run seconds (model -> batch key -> list), for the speedup intervals."""
    if runs < MIN_LATENCY_RUNS:
        raise ValueError(f"runs must be at least {MIN_LATENCY_RUNS} (got {runs})")
    names, out = list(models), {name: {} for name in models}
    raw: dict[str, dict[str, list[float]]] = {name: {} for name in models}
    for bs in batch_sizes:
        times = _interleaved_times(models, predict, example_batch(bs), runs, warmup)  # the PyTorch timer's loop
        for name in names:
            out[name][f"batch_{bs}"] = _summary(times[name], bs)
            raw[name][f"batch_{bs}"] = times[name]
    return out, raw


def _speedup(per_model: dict, fast: str) -> dict | None:
    if fast not in per_model:
        return None
    return {
        key: ratio(per_model["teacher"][key]["median_ms"], per_model[fast][key]["median_ms"])
        for key in per_model["teacher"]
    }


def measure_deployment(
    model_id: str,
    teacher: torch.nn.Module,
    student: torch.nn.Module,
    *,
    adapter: Any,
    test_batches: Sequence[tuple[dict, torch.Tensor]],
    example_batch: Callable[[int], dict],
    class_names: list[str],
    pytorch_accuracy: dict[str, float],
    out_dir: Path,
    quantize: str = "none",
    runs: int = 30,
    batch_sizes: Sequence[int] = (1, 32),
    teacher_dir: Path | None = None,
) -> dict:
    """Export, then measure in ONNX Runtime; the student (and int8 student) files stay in out_dir/{name}/.

    The teacher's files go to `teacher_dir` when given (the caller removes them), else to a temporary folder
    removed here: they are measured, not shipped (the bundle is the student)."""
    import onnxruntime as ort

    threads, started = torch.get_num_threads(), time.perf_counter()
    example = example_batch(2)
    keep_teacher = teacher_dir is not None
    teacher_dir = teacher_dir or Path(tempfile.mkdtemp(prefix="onnx-teacher-"))
    try:
        exported = {
            "teacher": export_onnx(model_id, teacher, example, teacher_dir),
            "student": export_onnx(model_id, student, example, out_dir / "student"),
        }
        folders = {"teacher": teacher_dir, "student": out_dir / "student"}
        if quantize == "dynamic_int8":
            folders["student_int8"] = out_dir / "student_int8"
            exported["student_int8"] = quantize_student(
                model_id, folders["student"], folders["student_int8"], exported["student"]
            )
        models = {name: OrtModel.load(folders[name], exported[name], threads) for name in exported}
        predict = ort_predictor(adapter)
        accuracy = {name: _accuracy(predict, models[name], test_batches, class_names) for name in models}
        per_model, times = interleaved_latency(models, predict, example_batch, batch_sizes, runs)
        sizes = {name: onnx_bytes(folders[name], exported[name]) for name in models}
    finally:
        if not keep_teacher:
            shutil.rmtree(teacher_dir, ignore_errors=True)
    block = _block(
        exported, accuracy, per_model, sizes, pytorch_accuracy, quantize, threads, runs, batch_sizes, ort.__version__
    )
    block["latency"]["speedup_ci"] = speedup_intervals(times)
    block["latency"]["speedup_int8_ci"] = speedup_intervals(times, "student_int8")
    block["latency"]["speedup_ci_note"] = SPEEDUP_CI_NOTE
    if block["latency"]["speedup_int8_ci"] is None:
        block["latency"]["speedup_int8_ci_reason"] = block["latency"].get("speedup_int8_reason", "not measured")
    block["measure_s"] = time.perf_counter() - started  # export + quantization + accuracy + latency, wall time
    return block


def _block(
    exported: dict,
    accuracy: dict,
    per_model: dict,
    sizes: dict,
    pytorch_accuracy: dict,
    quantize: str,
    threads: int,
    runs: int,
    batch_sizes: Sequence[int],
    version: str,
) -> dict:
    """The measured figures in the report's shape: per label, with a reason wherever int8 was not made."""
    no_int8 = "quantize is 'none': no int8 student was made (set quantize='dynamic_int8')"
    diff = (accuracy["student"] - pytorch_accuracy["student"]) * 100.0
    out: dict[str, Any] = {
        "runtime": "onnxruntime",
        "onnxruntime_version": version,
        "provider": "CPUExecutionProvider",
        "intra_op_threads": threads,
        "labels": list(LABELS),
        "quantize": quantize,
        "exporter": {name: e["exporter"] for name, e in exported.items() if "exporter" in e},
        "files": {name: e["files"] for name, e in exported.items()},
        "exported": exported,
        "accuracy": {name: accuracy.get(name) for name in LABELS},
        "pytorch_accuracy": {
            "teacher": pytorch_accuracy["teacher"],
            "student": pytorch_accuracy["student"],
            "student_int8": None,
            "student_int8_reason": "the int8 student exists only as an ONNX model",
        },
        "student_accuracy_difference_points": diff,
        "student_accuracy_matches_pytorch": abs(diff) <= 0.1,
        "size_mb": {name: (sizes[name] / MB if name in sizes else None) for name in LABELS},
        "latency": {
            "batch_sizes": list(batch_sizes),
            "runs": runs,
            "warmup_runs": 5,
            "schedule": "interleaved: the ONNX Runtime sessions alternate every run and the order flips "
            "each run; same intra-op thread count as PyTorch",
            "per_model": {name: per_model.get(name) for name in LABELS},
            "speedup": _speedup(per_model, "student"),
            "speedup_int8": _speedup(per_model, "student_int8"),
        },
        "unit_note": MB_NOTE,
        "size_note": "bytes of the .onnx file(s) (T5: encoder + decoder)",
    }
    if "student_int8" in exported:
        out["quantization"] = exported["student_int8"]["quantization"]
        out["accuracy_drop_int8_points"] = (accuracy["teacher"] - accuracy["student_int8"]) * 100.0
    else:
        for key in ("accuracy", "size_mb"):
            out[f"{key}_student_int8_reason"] = no_int8
        out["latency"]["per_model_student_int8_reason"] = out["latency"]["speedup_int8_reason"] = no_int8
        out["quantization"], out["quantization_reason"] = None, no_int8
        out["accuracy_drop_int8_points"], out["accuracy_drop_int8_points_reason"] = None, no_int8
    return out


def median_of(block: dict, name: str, key: str) -> float | None:
    """The median latency (ms) of one label at one batch key, or None when that label was not measured."""
    row = (block["latency"]["per_model"].get(name) or {}).get(key)
    return None if row is None else row["median_ms"]


__all__ = ["LABELS", "QUANTIZE_OPTIONS", "measure_deployment", "median_of"]

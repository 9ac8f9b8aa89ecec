"""Measure a teacher and a student the same way, on the same data, under the same conditions."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .common import Batch, Predict, measuring, ratio
from .complexity import count_flops, space_complexity
from .compression import count_layers, count_parameters, sparsity
from .effectiveness import classification_metrics, paired_differences
from .efficiency import measure_latency, memory_footprint, model_size


def _predict_split(
    models: dict[str, nn.Module], predict: Predict, test_batches: Sequence[tuple[Batch, torch.Tensor]]
) -> tuple[dict, list[int], dict]:
    """Predictions per model over the split, labels, and seconds per model (models alternate per batch)."""
    preds: dict[str, list[int]] = {name: [] for name in models}
    seconds = {name: 0.0 for name in models}
    labels: list[int] = []
    names = list(models)
    with measuring(models["teacher"]), measuring(models["student"]), torch.inference_mode():
        for i, (batch, y) in enumerate(test_batches):
            labels.extend(int(v) for v in y.reshape(-1).tolist())
            for name in names if i % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                out = predict(models[name], batch)
                seconds[name] += time.perf_counter() - start
                preds[name].extend(int(v) for v in out.reshape(-1).tolist())
    return preds, labels, seconds


def _one_model(model: nn.Module, predict: Predict, example_batch: Callable[[int], Batch], memory_bs: int) -> dict:
    """Compression, size, memory and complexity figures of one model."""
    return {
        "compression": {
            "parameters": count_parameters(model),
            "layers": count_layers(model),
            "sparsity": sparsity(model),
        },
        "efficiency": {"size": model_size(model), "memory": memory_footprint(model, predict, example_batch(memory_bs))},
        "complexity": {
            "flops": count_flops(model, predict, example_batch(1)),
            "space": space_complexity(model, predict, example_batch(1)),
        },
    }


def _pct_change(before: float | None, after: float | None) -> float | None:
    """(1 - after / before) x 100: how much smaller `after` is, in percent."""
    r = ratio(after, before)
    return None if r is None else (1.0 - r) * 100.0


def _comparison(t: dict, s: dict, latency: dict, differences: dict) -> dict:
    """Ratios and differences teacher vs student; None (with a *_reason) where a denominator is 0.

    The accuracy drop carries its paired interval and McNemar p-value (`differences`: student minus teacher)."""
    acc = differences["accuracy"]
    t_acc, s_acc = t["effectiveness"]["accuracy"], s["effectiveness"]["accuracy"]
    t_p, s_p = t["compression"]["parameters"], s["compression"]["parameters"]
    t_size, s_size = t["efficiency"]["size"], s["efficiency"]["size"]
    t_fl, s_fl = t["complexity"]["flops"], s["complexity"]["flops"]
    out = {
        "compression_ratio": ratio(t_p["total"], s_p["nonzero"]),
        "compression_ratio_note": "teacher parameters / student nonzero parameters",
        "parameter_ratio": ratio(t_p["total"], s_p["total"]),
        "parameter_reduction_pct": _pct_change(t_p["total"], s_p["nonzero"]),
        "dense_size_ratio": ratio(t_size["dense_bytes"], s_size["dense_bytes"]),
        "compressed_size_ratio": ratio(t_size["compressed_bytes"], s_size["compressed_bytes"]),
        "size_reduction_dense_pct": _pct_change(t_size["dense_bytes"], s_size["dense_bytes"]),
        "size_reduction_compressed_pct": _pct_change(t_size["compressed_bytes"], s_size["compressed_bytes"]),
        "accuracy_teacher": t_acc,
        "accuracy_student": s_acc,
        "accuracy_drop_points": (t_acc - s_acc) * 100.0,
        "accuracy_drop_ci_points": [-acc["ci_points"][1], -acc["ci_points"][0]],
        "accuracy_drop_p_value": acc["p_value"],
        "accuracy_drop_test": acc["test"],
        "accuracy_drop_within_noise": acc["within_noise"],
        "accuracy_drop_relative_pct": None if t_acc == 0 else (t_acc - s_acc) / t_acc * 100.0,
        "f1_macro_drop_points": (t["effectiveness"]["f1_macro"] - s["effectiveness"]["f1_macro"]) * 100.0,
        "flops_ratio": ratio(t_fl["flops_per_sample"], s_fl["flops_per_sample"]),
        "flops_ratio_if_zeros_skipped": ratio(t_fl["flops_if_zeros_skipped"], s_fl["flops_if_zeros_skipped"]),
        "speedup": latency.get("speedup"),
        "full_pass_speedup": ratio(t["efficiency"]["full_pass_s"], s["efficiency"]["full_pass_s"]),
        "units_note": "ratios are teacher / student (above 1: the student is smaller or faster); *_pct are "
        "percent; *_points are percentage points; accuracies are fractions in [0, 1]",
    }
    for key, value in list(out.items()):
        if value is None:
            out[f"{key}_reason"] = "undefined: a denominator measured as 0 (or unknown)"
    return out


def measure_pair(
    teacher: nn.Module,
    student: nn.Module,
    *,
    predict: Predict,
    test_batches: Sequence[tuple[Batch, torch.Tensor]],
    example_batch: Callable[[int], Batch],
    class_names: list[str],
    latency_runs: int = 30,
    batch_sizes: Sequence[int] = (1, 32),
) -> dict:
    """Every metric for teacher and student on the same test split, batches and thread count."""
    models = {"teacher": teacher, "student": student}
    preds, labels, seconds = _predict_split(models, predict, test_batches)
    results = {}
    for name, model in models.items():
        block = _one_model(model, predict, example_batch, max(batch_sizes))
        block["effectiveness"] = classification_metrics(labels, preds[name], class_names)
        block["efficiency"]["full_pass_s"] = seconds[name]
        block["efficiency"]["full_pass_samples"] = len(labels)
        block["efficiency"]["full_pass_samples_per_s"] = ratio(len(labels), seconds[name])
        results[name] = block
    latency = measure_latency(models, predict, example_batch, batch_sizes=batch_sizes, runs=latency_runs)
    differences = paired_differences(labels, preds["teacher"], preds["student"], class_names)
    return {
        **results,
        "latency": latency,
        "predictions": {"teacher": preds["teacher"], "student": preds["student"], "labels": labels},
        "comparison": _comparison(results["teacher"], results["student"], latency, differences),
        "differences": differences,
        "conditions": {
            "torch_threads": torch.get_num_threads(),
            "test_samples": len(labels),
            "flops_batch_size": 1,
            "memory_batch_size": max(batch_sizes),
            "note": "teacher and student measured in one process on the same batches; test-split "
            "passes and latency runs alternate between them",
        },
    }


def measure_pruning_effect(
    before: nn.Module,
    after: nn.Module,
    *,
    predict: Predict,
    example_batch: Callable[[int], Batch],
    latency_runs: int = 30,
    batch_sizes: Sequence[int] = (1, 32),
) -> dict:
    """What the pruning method alone changed: the student before pruning against the pruned student, FLOPs and
    nonzero weights, and latency timed interleaved in the same run (PyTorch, this process's device)."""
    flops = {
        name: count_flops(model, predict, example_batch(1)) for name, model in (("before", before), ("after", after))
    }
    params = {name: count_parameters(model) for name, model in (("before", before), ("after", after))}
    models = {"before_pruning": before, "after_pruning": after}
    latency = measure_latency(
        models, predict, example_batch, batch_sizes=batch_sizes, runs=latency_runs, pair=tuple(models)
    )
    return {
        "flops_per_sample": {k: v["flops_per_sample"] for k, v in flops.items()},
        "flops_if_zeros_skipped": {k: v["flops_if_zeros_skipped"] for k, v in flops.items()},
        "nonzero_parameters": {k: v["nonzero"] for k, v in params.items()},
        "total_parameters": {k: v["total"] for k, v in params.items()},
        "flops_ratio": ratio(flops["before"]["flops_per_sample"], flops["after"]["flops_per_sample"]),
        "flops_ratio_if_zeros_skipped": ratio(
            flops["before"]["flops_if_zeros_skipped"], flops["after"]["flops_if_zeros_skipped"]
        ),
        "nonzero_parameter_ratio": ratio(params["before"]["nonzero"], params["after"]["nonzero"]),
        "latency": latency,
        "note": "the distilled student before the pruning method against the pruned student; ratios before / after",
    }

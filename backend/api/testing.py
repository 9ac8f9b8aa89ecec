"""Self-checks: build a model and run it (/test_model), run the metrics code (/test_metrics), list models."""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Blueprint, current_app, jsonify

from backend import kd, pruning
from backend.api.common import json_body
from backend.api.concepts import concepts
from backend.api.errors import ApiError
from backend.data.uploads import DATASET_KINDS
from backend.echo import clip
from backend.jobconfig import (
    BUILTIN_DATASETS,
    DEFAULT_DATASET,
    QUANTIZE_OPTIONS,
    job_options,
    limits,
    study_axes,
)
from backend.jobs import jsonable
from backend.models.registry import PRESETS, UnknownModelError, defaults, get_model_spec, list_models

bp = Blueprint("testing", __name__)
_torch_lock = threading.Lock()  # one self-check at a time: they are CPU-heavy
_metrics_running = threading.Lock()  # /test_metrics: a second call while one runs is a 429, not a wait
METRICS_RETRY_AFTER_S = 10


@bp.get("/models")
def models():
    """Ids, aliases, family, presets, datasets that fit, defaults per preset; every job option as declared (the
    dashboard builds its form from `option_schema`); the pruning methods and distillation losses; and the
    service's vocabulary (`concepts`: phases, states, presets, ...), which clients read instead of copying."""
    from backend.data.public import listing  # imports torch (its loaders): the API process starts without it

    options = job_options()
    may_be_null = {o.name: o.may_be_null for o in options}
    out = []
    for spec in list_models():
        out.append(
            {
                "id": spec.id,
                "display_name": spec.display_name,
                "family": spec.family,
                "aliases": list(spec.aliases),
                "source": spec.source,
                "default_structural_ratio": spec.default_structural_ratio,
                "presets": list(PRESETS),
                "datasets": list(BUILTIN_DATASETS[spec.family]),
                "default_dataset": DEFAULT_DATASET[spec.family],
                "upload_kinds": list(DATASET_KINDS[spec.family]),
                "task": spec.task,
                "onnx_export": spec.task,
                "preset_defaults": {p: defaults(spec.id, p) for p in PRESETS},
            }
        )
    service = {
        "max_queued_jobs": current_app.config["MAX_QUEUED_JOBS"],
        "max_body_kb": current_app.config["MAX_BODY_KB"],
        "max_json_depth": current_app.config["MAX_JSON_DEPTH"],
        "max_upload_mb": current_app.config["MAX_UPLOAD_MB"],
    }
    return jsonify(
        {
            "models": out,
            "options": jsonable({o.name: o.describe()["default"] for o in options if o.name != "model_name"}),
            "option_schema": jsonable([o.describe() for o in options]),
            "limits": {name: {**limit, "optional": may_be_null[name]} for name, limit in limits().items()},
            "study_axes": list(study_axes()),
            "pruning_methods": [m.describe() for m in pruning.list_methods()],
            "kd_losses": [loss.describe() for loss in kd.list_losses()],
            "service_limits": service,
            "public_datasets": listing(),
            "quantize_options": list(QUANTIZE_OPTIONS),
            "concepts": concepts(),
        }
    )


@bp.post("/test_model")
def test_model():
    """Build the named model (untrained), run one forward pass; parameters, layers, size and timing."""
    body = json_body()
    try:
        spec = get_model_spec(body.get("model_name"))
    except UnknownModelError as exc:
        raise ApiError(400, "invalid_option", str(exc), field="model_name") from None
    preset = body.get("preset", "quick")
    if preset not in PRESETS:
        raise ApiError(
            400, "invalid_option", f"preset must be one of {list(PRESETS)}, got {clip(preset)}.", field="preset"
        )
    with _torch_lock:
        return jsonify(jsonable(_check_model(spec, preset)))


def _build_for_test(spec, preset: str):
    """(model, one-sample batch, forward) for a newly initialised model, as a job would build it."""
    import torch

    from backend.models import adapters, teachers, text, vision

    if spec.family == "vision":
        model, _ = teachers.build_fresh(
            spec, preset=preset, class_names=[str(i) for i in range(10)], train_texts=None, pretrained=False, seed=0
        )
        size = vision.input_size(spec, preset)
        return model, {"pixel_values": torch.rand(1, 3, size, size)}, lambda m, b: m(b["pixel_values"])
    from backend.data import synthetic_text

    texts, labels = synthetic_text.generate(n=200, seed=0)
    names = list(synthetic_text.CLASS_NAMES)
    model, tokenizer = teachers.build_fresh(
        spec, preset=preset, class_names=names, train_texts=texts, pretrained=False, seed=0
    )
    words = names if spec.labels_as_words else None
    batch = adapters.text_tensors(tokenizer, texts[:1], labels[:1], text.MAX_LENGTH[preset], words).head(1)
    adapter = adapters.adapter_for(spec, tokenizer, names)
    return model, batch, lambda m, b: adapter.logits_and_targets(m, b)[0]


def _check_model(spec, preset: str) -> dict[str, Any]:
    import torch

    from backend.metrics.compression import count_layers, count_parameters
    from backend.metrics.efficiency import model_size

    start = time.perf_counter()
    model, batch, forward = _build_for_test(spec, preset)
    built_s = time.perf_counter() - start
    model.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        output = forward(model, batch)
    forward_s = time.perf_counter() - start
    return {
        "status": "ok",
        "model_name": spec.id,
        "display_name": spec.display_name,
        "family": spec.family,
        "source": spec.source,
        "preset": preset,
        "weights": "newly initialised (no training, no download)",
        "parameters": count_parameters(model),
        "layers": count_layers(model),
        "size": model_size(model, compress=False),  # deflating is slow and says nothing for a dense model
        "forward_pass": {
            "ok": bool(torch.isfinite(output).all()),
            "batch_size": 1,
            "inputs": {k: list(v.shape) for k, v in batch.items() if hasattr(v, "shape")},
            "output_shape": list(output.shape),
            "seconds": forward_s,
        },
        "build_seconds": built_s,
        "torch_threads": torch.get_num_threads(),
    }


@bp.get("/test_metrics")
def test_metrics():
    """Run the metrics on reference torchvision models and on a small teacher/student pair; one at a time."""
    if not _metrics_running.acquire(blocking=False):
        raise ApiError(
            429,
            "busy",
            "A /test_metrics run is in progress; retry when it is done.",
            headers={"Retry-After": str(METRICS_RETRY_AFTER_S)},
        )
    try:
        with _torch_lock:
            return jsonify(jsonable(_metrics_check()))
    finally:
        _metrics_running.release()


def _metrics_check() -> dict[str, Any]:
    start = time.perf_counter()
    reference = {spec.id: _reference_check(spec.reference) for spec in list_models() if spec.reference}
    pair = _small_pair_check()
    ok = all(r["parameters_match"] and r["gmacs_match"] for r in reference.values())
    return {
        "status": "ok" if ok else "mismatch",
        "reference_checks": reference,
        "small_pair": pair,
        "seconds": time.perf_counter() - start,
    }


def _reference_check(ref: dict[str, Any]) -> dict[str, Any]:
    """Parameters and MACs of an untrained torchvision model at 224x224 against the published figures (the
    registry entry's `reference`: torchvision's model card, 1000 classes)."""
    import torch

    from backend.metrics.complexity import count_flops
    from backend.metrics.compression import count_parameters
    from backend.models.registry import load_class

    model = load_class(ref["factory"])(weights=None).eval()
    params = count_parameters(model)["total"]
    flops = count_flops(model, lambda m, b: m(b["pixel_values"]), {"pixel_values": torch.zeros(1, 3, 224, 224)})
    gmacs = flops["macs_per_sample"] / 1e9
    return {
        "parameters": params,
        "reference_parameters": ref["parameters"],
        "parameters_match": params == ref["parameters"],
        "gmacs": round(gmacs, 4),
        "reference_gmacs": ref["gmacs"],
        "gmacs_match": abs(gmacs - ref["gmacs"]) / ref["gmacs"] < 0.01,
        "input": "1x3x224x224",
    }


def _small_pair_check() -> dict[str, Any]:
    """Every metric of measure_pair on a small CNN and a half-width, 30%-pruned copy, on random data."""
    import torch
    from torch import nn
    from torch.nn.utils import prune

    from backend.metrics.measure import measure_pair

    def cnn(width: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, 4),
        )

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    teacher, student = cnn(16), cnn(8)
    for module in (student[0], student[2], student[6]):
        prune.l1_unstructured(module, "weight", amount=0.3)
        prune.remove(module, "weight")
    x, y = torch.rand(64, 3, 16, 16, generator=gen), torch.randint(0, 4, (64,), generator=gen)
    batches = [({"pixel_values": x[i : i + 16]}, y[i : i + 16]) for i in range(0, 64, 16)]
    result = measure_pair(
        teacher.eval(),
        student.eval(),
        predict=lambda m, b: m(b["pixel_values"]).argmax(-1),
        test_batches=batches,
        example_batch=lambda bs: {"pixel_values": torch.rand(bs, 3, 16, 16)},
        class_names=["a", "b", "c", "d"],
        latency_runs=30,
        batch_sizes=(1, 8),
    )
    result.pop("predictions", None)
    result["setup"] = (
        "untrained 2-conv CNN (width 16) vs a width-8 copy with 30% L1 unstructured pruning, "
        "64 random 3x16x16 inputs with random labels, latency at batch 1 and 8: checks the "
        "measuring code; the accuracy figures mean nothing"
    )
    return result

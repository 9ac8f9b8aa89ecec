"""python -m benchmarks.t5_cache: the T5 student's per-answer latency, eager PyTorch `generate` against the
ONNX Runtime greedy loop with its cache (decoder with past key values), interleaved in one process.

The quick-preset T5 teacher and its default student (2 + 1 blocks, half the FFN units), untrained: dense latency
does not depend on the weight values, and an untrained decoder runs every allowed step, the longest cache a
label word can need. Before timing, both runtimes must generate the same token ids on the timed batch, so the
two do the same work. Each run times PyTorch and ONNX Runtime back to back (order flipped every run, after
warm-up), so a run's two timings share the machine's load: the ratio per run (PyTorch / ONNX Runtime) is paired,
and the report gives the ratio of medians and the geometric mean of the per-run ratios with a Student-t 95%
interval on their logarithms. Writes benchmarks/t5_cache_results.json (one entry per thread count, `--threads`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from backend.data import datasets as ds
from backend.metrics.deployment import interleaved_latency
from backend.metrics.efficiency import measuring
from backend.metrics.stats import t_interval
from backend.models import adapters, teachers
from backend.models import text as text_models
from backend.models.onnx_export import OrtModel, export_onnx, ort_predictor
from backend.models.registry import get_model_spec
from backend.models.student import make_student
from backend.runtime import environment_info

ROOT = Path(__file__).resolve().parent.parent
MODEL = "t5-small"


def _models(seed: int) -> tuple[torch.nn.Module, object, object]:
    """The untrained quick teacher's default student, its adapter and the example batches (built-in text set)."""
    spec = get_model_spec(MODEL)
    raw = ds.load_synthetic_sentiment(seed=seed, n=400)
    texts = list(raw.texts)
    teacher, tok = teachers.build_fresh(
        spec, preset="quick", class_names=raw.class_names, train_texts=texts, pretrained=False, seed=seed
    )
    length = adapters.fitted_length(tok, texts, text_models.MAX_LENGTH["quick"])
    tensors = adapters.text_tensors(tok, texts[:64], raw.labels[np.arange(64)], length, raw.class_names)
    student, _ = make_student(MODEL, teacher.eval(), spec.default_structural_ratio)
    return student.eval(), adapters.adapter_for(MODEL, tok, raw.class_names), tensors


def _paired_ratio(pytorch_s: list[float], ort_s: list[float]) -> dict:
    """Per-run PyTorch / ONNX Runtime ratios: geometric mean with a t interval on the logs, and the median ratio."""
    logs = t_interval([math.log(p / o) for p, o in zip(pytorch_s, ort_s, strict=True)])
    return {
        "ratio_of_medians": float(np.median(pytorch_s) / np.median(ort_s)),
        "geometric_mean_ratio": math.exp(logs["mean"]),
        "geometric_mean_ratio_ci95": [math.exp(v) for v in logs["ci"]],
        "runs": logs["n"],
    }


def measure(runs: int, batch_sizes: tuple[int, ...], seed: int) -> dict:
    """Export the student, check both runtimes' token ids agree, then time them interleaved."""
    torch.manual_seed(seed)
    student, adapter, tensors = _models(seed)
    ort_predict = ort_predictor(adapter)
    with tempfile.TemporaryDirectory(prefix="bench-t5-cache-") as tmp:
        started = time.perf_counter()
        exported = export_onnx(MODEL, student, tensors.head(2), Path(tmp))
        export_s = time.perf_counter() - started
        ort_model = OrtModel.load(Path(tmp), exported, torch.get_num_threads())
        models = {"pytorch": student, "onnxruntime": ort_model}

        def predict(model: object, batch: dict) -> torch.Tensor:
            return ort_predict(model, batch) if isinstance(model, OrtModel) else adapter.predict(model, batch)

        same, steps = {}, {}
        for bs in batch_sizes:
            batch = tensors.head(bs)
            with torch.inference_mode():
                theirs = student.generate(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    max_new_tokens=adapter.max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                ).numpy()
            ours = ort_model.generate(batch["input_ids"], batch["attention_mask"], adapter.max_new_tokens)
            same[f"batch_{bs}"] = bool(ours.shape == theirs.shape and (ours == theirs).all())
            steps[f"batch_{bs}"] = int(ours.shape[1] - 1)
            if not same[f"batch_{bs}"]:
                raise SystemExit(f"the runtimes generated different token ids at batch {bs}: no timing")
        with measuring(student), torch.inference_mode():
            per_model, raw = interleaved_latency(models, predict, tensors.head, batch_sizes, runs)
    rows = {}
    for bs in batch_sizes:
        key = f"batch_{bs}"
        rows[key] = {
            "pytorch_median_ms": per_model["pytorch"][key]["median_ms"],
            "onnxruntime_median_ms": per_model["onnxruntime"][key]["median_ms"],
            "pytorch_p95_ms": per_model["pytorch"][key]["p95_ms"],
            "onnxruntime_p95_ms": per_model["onnxruntime"][key]["p95_ms"],
            "pytorch_over_onnxruntime": _paired_ratio(raw["pytorch"][key], raw["onnxruntime"][key]),
            "same_token_ids": same[key],
        }
    return {
        "model": MODEL,
        "preset": "quick",
        "seed": seed,
        "weights": "untrained (every allowed decoding step runs)",
        "max_new_tokens": adapter.max_new_tokens,
        "decoding_steps": steps,
        "threads": torch.get_num_threads(),
        "export_s": export_s,
        "exporter": exported["exporter"],
        "runs": runs,
        "latency": rows,
    }


def main() -> None:
    import onnxruntime

    parser = argparse.ArgumentParser(prog="python -m benchmarks.t5_cache")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime threads (default torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started_at, load = time.strftime("%Y-%m-%d %H:%M:%S %Z"), os.getloadavg()[0]
    result = measure(args.runs, (1, 32), args.seed)
    result |= {
        "started_at": started_at,
        "load_average_at_start": load,
        "load_average_at_end": os.getloadavg()[0],
        "onnxruntime": onnxruntime.__version__,
        "environment": environment_info(),
    }
    path = ROOT / "benchmarks" / "t5_cache_results.json"  # one entry per thread count, the latest run of each
    saved = json.loads(path.read_text()) if path.exists() else {}
    saved[f"threads_{torch.get_num_threads()}"] = result
    path.write_text(json.dumps(saved, indent=2, default=str))
    print(json.dumps(result["latency"], indent=2))


if __name__ == "__main__":
    main()

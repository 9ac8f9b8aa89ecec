"""The standard preset end to end at smoke scale: each model at its published size, ~300 samples, one epoch a phase.

python -m benchmarks.standard_smoke [--models resnet18 mobilenetv2 distilbert t5-small] [--max-samples 300]
    [--device auto] [--precision PRECISION] [--section "## Standard preset, smoke scale"]

Each job runs in its own process (so its peak RSS, ru_maxrss, is that job's alone) through run_job, with
pretrained="auto" (local Hugging Face / torch caches when present; offline switches set so nothing waits on the
network). Every figure comes from that job's report; results go to benchmarks/standard_smoke.json and a section
of BENCHMARKS.md. benchmarks/gpu.sh runs the same script on the full built-in data with bf16 on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.memory import write_section

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("resnet18", "mobilenetv2", "distilbert", "t5-small", "bert")

_JOB = """
import json, resource, sys, time
import torch
from pathlib import Path
from backend.jobconfig import JobConfig
from backend.pipeline import run_job

options, tmp = json.loads(sys.argv[1]), Path(sys.argv[2])
started = time.perf_counter()
result = run_job(JobConfig.from_dict(options), None, job_id="smoke", out_dir=tmp / "out", cache_dir=tmp / "cache",
                 upload_dir=tmp / "uploads")
r = result.report
gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
print("RESULT " + json.dumps({
    "wall_s": time.perf_counter() - started, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "peak_gpu_mb": gpu_peak, "timings_s": r["metadata"]["timings_s"], "environment": r["metadata"]["environment"],
    "dataset": {k: r["metadata"]["dataset"].get(k) for k in ("name", "train_size", "val_size", "test_size",
                                                              "image_size", "max_length_tokens", "augmentation")},
    "resolved": r["metadata"]["config"]["resolved"], "teacher_source": r["metadata"]["teacher_source"],
    "table": r["teacher_vs_student_comparison"]["table"],
    "accuracy_by_stage": r["learning_outcomes"].get("accuracy_by_stage"),
    "teacher_logits": r["knowledge_distillation_analysis"].get("teacher_logits"),
    "latency_conditions": r["efficiency_improvements"]["latency_conditions"],
}, default=str))
"""


def run_one(model: str, options: dict, env: dict) -> dict:
    """One job in a fresh process; its report's figures, wall time and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="kd-smoke-") as tmp:
        out = subprocess.run(
            [sys.executable, "-c", _JOB, json.dumps({"model_name": model, **options}), tmp],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
        )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        return {"model": model, "error": out.stderr[-2000:]}
    return {"model": model, **json.loads(lines[-1][len("RESULT ") :])}


def _row(r: dict) -> str:
    if "error" in r:
        return f"| {r['model']} | failed: {r['error'].strip().splitlines()[-1][:120] if r['error'] else '?'} |"
    table = {row["metric"]: row for row in r["table"]}
    acc = table.get("effectiveness.accuracy", {})
    size = table.get("size.model_size_mb") or next((v for k, v in table.items() if k.endswith("model_size_mb")), {})
    lat = next((v for k, v in table.items() if k.endswith("latency_median_ms_batch_1")), {})
    fmt = lambda v, f="{:.4f}": "n/a" if v is None else f.format(v)  # noqa: E731
    t = r["timings_s"]
    phases = " / ".join(f"{t.get(p) or 0:.0f}" for p in ("data", "teacher", "student", "distill", "prune", "evaluate"))
    return (
        f"| {r['model']} | {r['environment'].get('device_name')} | {r['dataset'].get('train_size')} | "
        f"{r['teacher_source'].get('kind')} | {fmt(acc.get('teacher'))} / {fmt(acc.get('student'))} | "
        f"{fmt(size.get('teacher'), '{:.1f}')} / {fmt(size.get('student'), '{:.1f}')} | "
        f"{fmt(lat.get('teacher'), '{:.1f}')} / {fmt(lat.get('student'), '{:.1f}')} | {phases} | "
        f"{r['wall_s']:.0f} | {r['peak_rss_mb']:.0f} | "
        f"{'n/a' if r['peak_gpu_mb'] is None else format(r['peak_gpu_mb'], '.0f')} |"
    )


def render(results: list[dict], title: str, note: str) -> str:
    head = (
        "| model | device | train examples | teacher | accuracy teacher / student | size MB dense t / s | "
        "latency b1 ms t / s | phase s (data / teacher / student / distill / prune / evaluate) | wall s | "
        "peak RSS MB | peak GPU MB |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    return (
        f"{title}\n\n{note}\n\n"
        + head
        + "\n".join(_row(r) for r in results)
        + "\n\nEvery metric of each job (the report's full comparison table) is in `benchmarks/"
        f"{'gpu' if 'GPU' in title else 'standard_smoke'}.json`.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.standard_smoke")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--max-samples", type=int, default=300, help="0: the whole dataset")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each phase")
    parser.add_argument("--preset-epochs", action="store_true", help="the preset's epochs instead of --epochs")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision")
    parser.add_argument("--section", default="## Standard preset, smoke scale")
    parser.add_argument("--json", default="benchmarks/standard_smoke.json")
    args = parser.parse_args()
    epochs = (
        {} if args.preset_epochs else {"epochs": args.epochs, "kd_epochs": args.epochs, "finetune_epochs": args.epochs}
    )
    options = {
        "preset": "standard",
        "device": args.device,
        **epochs,
        **({"max_samples": args.max_samples} if args.max_samples else {}),
        **({"precision": args.precision} if args.precision else {}),
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "KD_OFFLINE": "1"}
    started, results = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), []
    for model in args.models:
        print(f"{model} ...", flush=True)
        results.append(run_one(model, options, env))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "table"}, default=str)[:600], flush=True)
        (ROOT / args.json).write_text(json.dumps(results, indent=2, default=str))
    note = (
        f"Measured by `python -m benchmarks.standard_smoke` ({' '.join(sys.argv[1:]) or 'defaults'}), started "
        f"{started}: standard preset (published sizes: 224x224 CNNs, DistilBERT-base, T5-small), "
        f"{'max_samples ' + str(args.max_samples) if args.max_samples else 'the whole built-in dataset'}, "
        f"{'the preset epochs' if args.preset_epochs else str(args.epochs) + ' epoch(s)'} per phase, "
        "pretrained='auto' from local caches only. Each job ran alone in "
        "its own process; timings on a shared machine are indicative only."
    )
    write_section(render(results, args.section, note))


if __name__ == "__main__":
    main()

"""Every model on the quick preset and built-in datasets: teacher vs student, cold and cached teacher."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from backend.jobconfig import JobConfig
from backend.pipeline import run_job

MODELS = ("resnet18", "mobilenetv2", "distilbert", "t5-small", "bert")
TARGETS = {"size_reduction_pct_min": 50.0, "accuracy_drop_points_max": 1.5, "speedup_batch_1_min": 1.5}


def summarise(report: dict, wall_s: float) -> dict:
    """The figures BENCHMARKS.md shows, read from one job's report."""
    cmp = report["teacher_vs_student_comparison"]
    derived, eff = cmp["derived"], report["efficiency_improvements"]
    pair = lambda group, key: (cmp[group][key]["teacher"], cmp[group][key]["student"])  # noqa: E731
    latency = eff["latency"]
    return {
        "accuracy": pair("effectiveness", "accuracy"),
        "f1_macro": pair("effectiveness", "f1_macro"),
        "accuracy_drop_points": derived["accuracy_drop_points"],
        "parameters": (
            cmp["compression"]["parameters_total"]["teacher"],
            cmp["compression"]["parameters_nonzero"]["student"],
        ),
        "size_mb": (eff["model_size"]["teacher_model_size_mb"], eff["model_size"]["student_model_size_mb"]),
        "compressed_mb": (
            eff["model_size"]["teacher_compressed_size_mb"],
            eff["model_size"]["student_compressed_size_mb"],
        ),
        "size_reduction_dense_pct": derived["size_reduction_dense_pct"],
        "flops": pair("complexity", "flops_per_sample"),
        "flops_ratio": derived["flops_ratio"],
        "latency_ms": {k: (v["teacher_median_ms"], v["student_median_ms"]) for k, v in latency.items()},
        "speedup": {k: v.get("speedup") for k, v in latency.items()},
        "wall_s": wall_s,
        "timings_s": report["metadata"]["timings_s"],
        "teacher_source": report["metadata"]["teacher_source"]["kind"],
    }


def run_model(model: str, work: Path) -> dict:
    """One cold job (teacher trained) and one with the teacher cached, same seed."""
    out: dict = {"model": model}
    for label in ("cold", "cached"):
        config = JobConfig.from_dict({"model_name": model})
        started = time.perf_counter()
        result = run_job(
            config,
            None,
            job_id=f"bench-{model}-{label}",
            out_dir=work / f"{model}-{label}",
            cache_dir=work / "cache",
            upload_dir=work / "uploads",
        )
        out[label] = summarise(result.report, time.perf_counter() - started)
        acc = out[label]["accuracy"]
        print(f"  {model} {label}: {out[label]['wall_s']:.0f} s, accuracy {acc[0]:.4f} -> {acc[1]:.4f}", flush=True)
    return out


def run(models=MODELS) -> list[dict]:
    """Every model, cold and cached, in a temporary work directory."""
    with tempfile.TemporaryDirectory(prefix="kd-bench-") as tmp:
        return [run_model(m, Path(tmp)) for m in models]

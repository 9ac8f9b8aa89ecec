"""python -m benchmarks.deployment: per model, PyTorch and ONNX Runtime latency (batch 1 and 32) of teacher, student
and int8 student, the speedups, the accuracy of each, and the batch-1 goal in the deployment runtime.

One quick-preset job per model with default settings plus quantize=dynamic_int8 (the int8 stage adds a model and
changes nothing else). Every figure comes from that job's report: latencies are medians of interleaved runs, so
the ratios hold even on a loaded machine. Writes benchmarks/deployment_results.json and the "Deployment runtime"
section of BENCHMARKS.md (between its markers; the rest of the file is left as it is).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from backend.jobconfig import JobConfig
from backend.pipeline import run_job
from backend.runtime import environment_info

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("resnet18", "mobilenetv2", "distilbert", "t5-small")
GOAL_SPEEDUP, GOAL_DROP_POINTS = 1.5, 1.5
BEGIN, END = "<!-- deployment:begin -->", "<!-- deployment:end -->"


def summarise(model: str, report: dict, wall_s: float) -> dict:
    """The figures of one job's report that the deployment table shows."""
    eff = report["efficiency_improvements"]
    ort = eff["runtimes"]["onnxruntime"]
    pt = eff["latency"]
    acc = report["teacher_vs_student_comparison"]["derived"]
    row = {"model": model, "wall_s": wall_s, "pytorch": {}, "onnxruntime": {},
           "accuracy_pytorch": {"teacher": acc["accuracy_teacher"], "student": acc["accuracy_student"]},
           "accuracy_onnxruntime": ort["accuracy"], "size_mb_onnx": ort["size_mb"],
           "student_ort_minus_pytorch_points": ort["student_accuracy_difference_points"],
           "threads": eff["runtimes"]["pytorch"]["threads"], "quantized_ops": (ort.get("quantization") or {}).get(
               "op_types"), "structural": report["pruning_analysis"]["structural"].get("removed")}
    for key in pt:
        row["pytorch"][key] = {"teacher_ms": pt[key]["teacher_median_ms"], "student_ms": pt[key]["student_median_ms"],
                               "speedup": pt[key]["speedup"]}
        o = ort["latency"][key]
        row["onnxruntime"][key] = {"teacher_ms": o["teacher_median_ms"], "student_ms": o["student_median_ms"],
                                   "student_int8_ms": o["student_int8_median_ms"], "speedup": o["speedup"],
                                   "speedup_int8": o["speedup_int8"],
                                   "ort_vs_pytorch_student": pt[key]["student_median_ms"] / o["student_median_ms"]}
    drop = (ort["accuracy"]["teacher"] - ort["accuracy"]["student"]) * 100.0
    row["accuracy_drop_points_onnxruntime"] = drop
    row["int8_drop_points_onnxruntime"] = (ort["accuracy"]["teacher"] - ort["accuracy"]["student_int8"]) * 100.0
    speed = row["onnxruntime"]["batch_1"]["speedup"]
    row["goal_met"] = speed >= GOAL_SPEEDUP and drop <= GOAL_DROP_POINTS
    return row


def run(models=MODELS, on_row=None) -> list[dict]:
    """One quick job per model (default settings, quantize=dynamic_int8) in a scratch folder."""
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        work = Path(tmp)
        for model in models:
            config = JobConfig.from_dict({"model_name": model, "quantize": "dynamic_int8"})
            started = time.perf_counter()
            result = run_job(config, None, job_id=f"deploy-{model}", out_dir=work / model, cache_dir=work / "cache",
                             upload_dir=work / "uploads")
            rows.append(summarise(model, result.report, time.perf_counter() - started))
            print(model, json.dumps(rows[-1]["onnxruntime"]["batch_1"]), flush=True)
            if on_row is not None:
                on_row(rows)
    return rows


def _f(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render(results: dict) -> str:
    """The BENCHMARKS.md section, from the measured results only."""
    env = results["environment"]
    lines = [BEGIN, "## Deployment runtime: ONNX Runtime, int8, batch-1 goal", "",
             f"Measured by `python -m benchmarks.deployment` (raw: `benchmarks/deployment_results.json`), run started "
             f"{results['started_at']}, took {results['total_s']:.0f} s. Quick preset, default settings plus "
             "`quantize: \"dynamic_int8\"`, seed 0; one job per model. ONNX Runtime "
             f"{results['onnxruntime']} (CPUExecutionProvider) with the same intra-op thread count as PyTorch "
             f"({results['rows'][0]['threads'] if results['rows'] else '?'}). "
             f"**The machine was loaded** (five engineers sharing {env.get('cpu_count', '2')} cores while this ran): "
             "absolute milliseconds are noisy, the ratios come from interleaved runs (models alternate every run) "
             "and are the figures to read.", "",
             "| model | PyTorch b1 ms t / s | speedup | PyTorch b32 ms t / s | speedup | ORT b1 ms t / s / int8 | "
             "speedup (int8) | ORT b32 ms t / s / int8 | speedup (int8) | acc teacher / student / int8 (ORT) | "
             "drop pts (int8) | ORT - PyTorch student pts | goal b1 ≥ 1.5x in ORT, drop ≤ 1.5 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        p1, p32, o1, o32 = r["pytorch"]["batch_1"], r["pytorch"]["batch_32"], r["onnxruntime"]["batch_1"], \
            r["onnxruntime"]["batch_32"]
        a = r["accuracy_onnxruntime"]
        lines.append(
            f"| {r['model']} | {_f(p1['teacher_ms'])} / {_f(p1['student_ms'])} | {_f(p1['speedup'])}x | "
            f"{_f(p32['teacher_ms'])} / {_f(p32['student_ms'])} | {_f(p32['speedup'])}x | "
            f"{_f(o1['teacher_ms'])} / {_f(o1['student_ms'])} / {_f(o1['student_int8_ms'])} | "
            f"{_f(o1['speedup'])}x ({_f(o1['speedup_int8'])}x) | "
            f"{_f(o32['teacher_ms'])} / {_f(o32['student_ms'])} / {_f(o32['student_int8_ms'])} | "
            f"{_f(o32['speedup'])}x ({_f(o32['speedup_int8'])}x) | "
            f"{_f(a['teacher'], 4)} / {_f(a['student'], 4)} / {_f(a['student_int8'], 4)} | "
            f"{_f(r['accuracy_drop_points_onnxruntime'])} ({_f(r['int8_drop_points_onnxruntime'])}) | "
            f"{_f(r['student_ort_minus_pytorch_points'])} | {'met' if r['goal_met'] else '**missed**'} |")
    lines += ["", "ONNX file sizes (MB, teacher / student / int8): " + "; ".join(
        f"{r['model']} {_f(r['size_mb_onnx']['teacher'])} / {_f(r['size_mb_onnx']['student'])} / "
        f"{_f(r['size_mb_onnx']['student_int8'])}" for r in results["rows"]) + ".",
        "", "Student in ORT vs eager PyTorch at batch 1 (same student): " + "; ".join(
        f"{r['model']} {_f(r['onnxruntime']['batch_1']['ort_vs_pytorch_student'])}x" for r in results["rows"]) + ".",
        "", *results.get("notes", []), END, ""]
    return "\n".join(lines)


def write_section(section: str) -> None:
    """Replace (or append) the section between the markers in BENCHMARKS.md."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section.rstrip("\n") + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> None:
    import onnxruntime

    parser = argparse.ArgumentParser(prog="python -m benchmarks.deployment")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--render-only", action="store_true", help="rewrite the section from the saved results")
    args = parser.parse_args()
    raw = ROOT / "benchmarks" / "deployment_results.json"
    if args.render_only:
        write_section(render(json.loads(raw.read_text())))
        return
    started = time.perf_counter()
    results = {"environment": {**environment_info(), "cpu_count": os.cpu_count()},
               "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "onnxruntime": onnxruntime.__version__}
    results["rows"] = run(args.models, lambda rows: raw.write_text(json.dumps({**results, "rows": rows}, indent=2,
                                                                               default=str)))
    results["total_s"] = time.perf_counter() - started
    raw.write_text(json.dumps(results, indent=2, default=str))
    write_section(render(results))
    print(f"wrote the deployment section of BENCHMARKS.md and {raw.name} in {results['total_s']:.0f} s")


if __name__ == "__main__":
    main()

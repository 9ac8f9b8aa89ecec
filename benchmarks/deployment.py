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
MODELS = ("t5-small", "mobilenetv2", "distilbert", "resnet18", "bert")  # the two that missed in eager PyTorch first
GOAL_SPEEDUP, GOAL_DROP_POINTS = 1.5, 1.5
BEGIN, END = "<!-- deployment:begin -->", "<!-- deployment:end -->"


def summarise(model: str, report: dict, wall_s: float) -> dict:
    """The figures of one job's report that the deployment table shows."""
    eff = report["efficiency_improvements"]
    ort = eff["runtimes"]["onnxruntime"]
    pt = eff["latency"]
    acc = report["teacher_vs_student_comparison"]["derived"]
    row = {
        "model": model,
        "wall_s": wall_s,
        "pytorch": {},
        "onnxruntime": {},
        "accuracy_pytorch": {"teacher": acc["accuracy_teacher"], "student": acc["accuracy_student"]},
        "accuracy_onnxruntime": ort["accuracy"],
        "size_mb_onnx": ort["size_mb"],
        "student_ort_minus_pytorch_points": ort["student_accuracy_difference_points"],
        "threads": eff["runtimes"]["pytorch"]["threads"],
        "quantized_ops": (ort.get("quantization") or {}).get("op_types"),
        "structural": report["pruning_analysis"]["structural"].get("removed"),
    }
    for key in pt:
        row["pytorch"][key] = {
            "teacher_ms": pt[key]["teacher_median_ms"],
            "student_ms": pt[key]["student_median_ms"],
            "speedup": pt[key]["speedup"],
        }
        o = ort["latency"][key]
        row["onnxruntime"][key] = {
            "teacher_ms": o["teacher_median_ms"],
            "student_ms": o["student_median_ms"],
            "student_int8_ms": o["student_int8_median_ms"],
            "speedup": o["speedup"],
            "speedup_int8": o["speedup_int8"],
            "ort_vs_pytorch_student": pt[key]["student_median_ms"] / o["student_median_ms"],
        }
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
            result = run_job(
                config,
                None,
                job_id=f"deploy-{model}",
                out_dir=work / model,
                cache_dir=work / "cache",
                upload_dir=work / "uploads",
            )
            rows.append(summarise(model, result.report, time.perf_counter() - started))
            print(model, json.dumps(rows[-1]["onnxruntime"]["batch_1"]), flush=True)
            if on_row is not None:
                on_row(rows)
    return rows


def latency_only(model: str, work: Path) -> dict:
    """Teacher and default student architectures (untrained: dense latency does not depend on the weights), timed
    in PyTorch and ONNX Runtime (with the int8 student), interleaved, 30 runs after warm-up, batch 1 and 32."""
    import numpy as np
    import torch

    from backend.data import datasets as ds
    from backend.metrics.deployment import measure_deployment
    from backend.metrics.efficiency import measure_latency
    from backend.models import adapters, teachers, vision
    from backend.models import text as text_models
    from backend.models.registry import get_model_spec
    from backend.models.student import make_student

    spec = get_model_spec(model)
    raw = ds.load_digits() if spec.family == "vision" else ds.load_synthetic_sentiment(seed=0, n=400)
    idx = np.arange(64)
    texts = None if spec.family == "vision" else list(raw.texts)
    teacher, tok = teachers.build_fresh(
        spec, preset="quick", class_names=raw.class_names, train_texts=texts, pretrained=False, seed=0
    )
    teacher.eval()
    if spec.family == "vision":
        tensors, adapter = ds.vision_tensors(raw, idx, vision.input_size(spec, "quick")), adapters.adapter_for(model)
        student, _ = make_student(model, teacher, spec.default_structural_ratio, tensors.head(1)["pixel_values"])
    else:
        length = adapters.fitted_length(tok, texts, text_models.MAX_LENGTH["quick"])
        words = raw.class_names if spec.labels_as_words else None
        tensors = adapters.text_tensors(tok, texts[:64], raw.labels[idx], length, words)
        adapter = adapters.adapter_for(model, tok, raw.class_names)
        student, _ = make_student(model, teacher, spec.default_structural_ratio)
    student.eval()
    pt = measure_latency({"teacher": teacher, "student": student}, adapter.predict, tensors.head, runs=30)
    batches = [(b, b["labels"]) for b in tensors.batches(32)]
    with torch.inference_mode():
        dep = measure_deployment(
            model,
            teacher,
            student,
            adapter=adapter,
            test_batches=batches,
            example_batch=tensors.head,
            class_names=raw.class_names,
            pytorch_accuracy={"teacher": 0.0, "student": 0.0},
            out_dir=work / model,
            quantize="dynamic_int8",
            runs=30,
        )
    row = {"model": model, "threads": pt["torch_threads"], "pytorch": {}, "onnxruntime": {}}
    for key in pt["per_model"]["teacher"]:
        t, s = pt["per_model"]["teacher"][key]["median_ms"], pt["per_model"]["student"][key]["median_ms"]
        row["pytorch"][key] = {"teacher_ms": t, "student_ms": s, "speedup": t / s}
        o = {n: dep["latency"]["per_model"][n][key]["median_ms"] for n in ("teacher", "student", "student_int8")}
        row["onnxruntime"][key] = {
            "teacher_ms": o["teacher"],
            "student_ms": o["student"],
            "student_int8_ms": o["student_int8"],
            "speedup": o["teacher"] / o["student"],
            "speedup_int8": o["teacher"] / o["student_int8"],
            "ort_vs_pytorch_student": s / o["student"],
        }
    row["size_mb_onnx"] = dep["size_mb"]
    return row


def render_latency(rows: list[dict]) -> list[str]:
    """Table lines of the architecture-only latency run."""
    lines = [
        "| model | PyTorch b1 ms t / s | speedup | PyTorch b32 ms t / s | speedup | ORT b1 ms t / s / int8 | "
        "speedup (int8) | ORT b32 ms t / s / int8 | speedup (int8) | student ORT vs PyTorch b1 | "
        "b1 ≥ 1.5x in ORT |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p1, p32, o1, o32 = (
            r["pytorch"]["batch_1"],
            r["pytorch"]["batch_32"],
            r["onnxruntime"]["batch_1"],
            r["onnxruntime"]["batch_32"],
        )
        lines.append(
            f"| {r['model']} | {_f(p1['teacher_ms'])} / {_f(p1['student_ms'])} | {_f(p1['speedup'])}x | "
            f"{_f(p32['teacher_ms'])} / {_f(p32['student_ms'])} | {_f(p32['speedup'])}x | "
            f"{_f(o1['teacher_ms'])} / {_f(o1['student_ms'])} / {_f(o1['student_int8_ms'])} | "
            f"{_f(o1['speedup'])}x ({_f(o1['speedup_int8'])}x) | "
            f"{_f(o32['teacher_ms'])} / {_f(o32['student_ms'])} / {_f(o32['student_int8_ms'])} | "
            f"{_f(o32['speedup'])}x ({_f(o32['speedup_int8'])}x) | {_f(o1['ort_vs_pytorch_student'])}x | "
            f"{'met' if o1['speedup'] >= GOAL_SPEEDUP else '**missed**'} |"
        )
    return lines


def _remeasured(rows: list[dict]) -> list[str]:
    """A line naming the rows measured later than the table's run (`--latency-only --merge`)."""
    later = [r for r in rows if "measured_at" in r]
    if not later:
        return []
    return [
        "",
        "Re-measured with `--latency-only --merge`: "
        + "; ".join(
            f"{r['model']} at {r['measured_at']} (load average {r['load_average_at_start']:.1f} at its start)"
            for r in later
        )
        + ".",
    ]


def _f(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _conditions(results: dict) -> str:
    """Under what load each run was measured (rows of several runs: `runs`, see --merge)."""
    runs = results.get("runs")
    if not runs:
        return f"Run started {results.get('started_at', '?')}."
    return " ".join(f"{', '.join(r['models'])}: run started {r['started_at']} on a {r['conditions']}." for r in runs)


def _runs(results: dict) -> str:
    return "; ".join(
        f"{', '.join(r['models'])} in the run of {r['started_at']}"
        + (f" ({r['total_s']:.0f} s)" if r.get("total_s") else "")
        for r in results["runs"]
    )


def render(results: dict, latency: dict | None = None, notes: list[str] | None = None) -> str:
    """The BENCHMARKS.md section, from the measured results only (`results` may hold fewer models than asked)."""
    env = results.get("environment", {})
    rows = results.get("rows", [])
    took = f"took {results['total_s']:.0f} s" if "total_s" in results else "stopped before the last model"
    lines = [
        BEGIN,
        "## Deployment runtime: ONNX Runtime, int8, batch-1 goal",
        "",
        f"Measured by `python -m benchmarks.deployment` (raw: `benchmarks/deployment_results.json`), ONNX Runtime "
        f"{results.get('onnxruntime', '?')} (CPUExecutionProvider), the same intra-op thread count as PyTorch "
        f"({rows[0]['threads'] if rows else (latency or {}).get('rows', [{}])[0].get('threads', '?')}), "
        f"{env.get('cpu_count', 2)} cores. " + _conditions(results) + " The ratios come from interleaved runs "
        "(models alternate every run, order flipped each run) and hold under load; absolute milliseconds on a "
        "loaded machine are inflated.",
        "",
    ]
    if latency:
        lines += [
            "### Latency of the default architectures, both runtimes (all four models)",
            "",
            "`python -m benchmarks.deployment --latency-only` (raw: `benchmarks/deployment_latency_results.json`,"
            f" written {latency['started_at']}, after its last model): the quick-preset teacher and its default student, untrained "
            "(dense latency does not depend on the weight values; T5's untrained decoder runs every allowed "
            "step, a trained one stops at EOS), batch 1 and 32, 30 interleaved runs after 5 warm-up runs.",
            "",
            *render_latency(latency["rows"]),
            *_remeasured(latency["rows"]),
            "",
        ]
    lines += [
        "### Whole jobs: accuracy and latency of trained models",
        "",
        'One quick-preset job per model, default settings plus `quantize: "dynamic_int8"`, seed 0; '
        + (_runs(results) if results.get("runs") else f"run started {results.get('started_at', '?')}, {took}")
        + ".",
        "",
        "| model | PyTorch b1 ms t / s | speedup | PyTorch b32 ms t / s | speedup | ORT b1 ms t / s / int8 | "
        "speedup (int8) | ORT b32 ms t / s / int8 | speedup (int8) | acc teacher / student / int8 (ORT) | "
        "drop pts (int8) | ORT - PyTorch student pts | goal b1 ≥ 1.5x in ORT, drop ≤ 1.5 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p1, p32, o1, o32 = (
            r["pytorch"]["batch_1"],
            r["pytorch"]["batch_32"],
            r["onnxruntime"]["batch_1"],
            r["onnxruntime"]["batch_32"],
        )
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
            f"{_f(r['student_ort_minus_pytorch_points'])} | {'met' if r['goal_met'] else '**missed**'} |"
        )
    if rows:
        lines += [
            "",
            "ONNX file sizes (MB, teacher / student / int8): "
            + "; ".join(
                f"{r['model']} {_f(r['size_mb_onnx']['teacher'])} / {_f(r['size_mb_onnx']['student'])} / "
                f"{_f(r['size_mb_onnx']['student_int8'])}"
                for r in rows
            )
            + ".",
        ]
    lines += ["", *(notes or results.get("notes", [])), END, ""]
    return "\n".join(lines)


def write_section(section: str) -> None:
    """Replace (or append) the section between the markers in BENCHMARKS.md."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section.rstrip("\n") + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def _latency_only_run(models: list[str], merge: bool) -> None:
    """The latency-only rows of `models`; with `merge`, the saved rows of the other models stay, in their place."""
    path = ROOT / "benchmarks" / "deployment_latency_results.json"
    old = json.loads(path.read_text()) if merge and path.exists() else {}
    started, rows = time.perf_counter(), list(old.get("rows", []))
    with tempfile.TemporaryDirectory(prefix="bench-lat-") as tmp:
        for model in models:
            load, when = os.getloadavg()[0], time.strftime("%Y-%m-%d %H:%M:%S %Z")
            row = latency_only(model, Path(tmp)) | {"measured_at": when, "load_average_at_start": load}
            at = [i for i, r in enumerate(rows) if r["model"] == model]
            if at:
                rows[at[0]] = row
            else:
                rows.append(row)
            print(model, json.dumps(row["onnxruntime"]["batch_1"]), flush=True)
            written = old.get("started_at") or time.strftime("%Y-%m-%d %H:%M:%S %Z")  # merged: the table's run
            path.write_text(
                json.dumps({"started_at": written, "rows": rows, "total_s": time.perf_counter() - started}, indent=2)
            )


def main() -> None:
    import onnxruntime

    parser = argparse.ArgumentParser(prog="python -m benchmarks.deployment")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--render-only", action="store_true", help="rewrite the section from the saved results")
    parser.add_argument("--merge", action="store_true", help="keep the saved rows of the models not run now")
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="untrained teacher/student architectures only: latency in both runtimes, no training",
    )
    args = parser.parse_args()
    if args.latency_only:
        _latency_only_run(args.models, args.merge)
        return
    raw = ROOT / "benchmarks" / "deployment_results.json"
    if args.render_only:
        lat = ROOT / "benchmarks" / "deployment_latency_results.json"
        notes = ROOT / "benchmarks" / "deployment_notes.md"
        write_section(
            render(
                json.loads(raw.read_text()) if raw.exists() else {},
                json.loads(lat.read_text()) if lat.exists() else None,
                notes.read_text().strip().splitlines() if notes.exists() else None,
            )
        )
        return
    started = time.perf_counter()
    results = {
        "environment": {**environment_info(), "cpu_count": os.cpu_count()},
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "onnxruntime": onnxruntime.__version__,
    }
    this_run = {
        "started_at": results["started_at"],
        "models": list(args.models),
        "conditions": f"machine at load average {os.getloadavg()[0]:.1f} when the run started",
    }
    kept, runs = [], []
    if args.merge and raw.exists():  # keep the other models' rows, each labelled with the run that measured it
        old = json.loads(raw.read_text())
        kept = [r for r in old.get("rows", []) if r["model"] not in args.models]
        runs = [
            r
            for r in old.get(
                "runs",
                [
                    {
                        "started_at": old.get("started_at", "?"),
                        "conditions": "machine of unrecorded load",
                        "models": [r["model"] for r in kept],
                    }
                ],
            )
            if set(r["models"]) & {k["model"] for k in kept}
        ]
        runs = [r | {"models": [m for m in r["models"] if m not in args.models]} for r in runs]  # re-run: not there
    results["rows"] = kept + run(
        args.models, lambda rows: raw.write_text(json.dumps({**results, "rows": kept + rows}, indent=2, default=str))
    )
    this_run["total_s"] = results["total_s"] = time.perf_counter() - started
    if args.merge:
        results["runs"] = runs + [this_run]
    raw.write_text(json.dumps(results, indent=2, default=str))
    write_section(render(results))
    print(f"wrote the deployment section of BENCHMARKS.md and {raw.name} in {results['total_s']:.0f} s")


if __name__ == "__main__":
    main()

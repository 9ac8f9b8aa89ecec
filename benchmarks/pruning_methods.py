"""Pruning methods against each other: per model and method, the student's accuracy (95% Wilson interval), the FLOPs
ratio (teacher / student, dense), the measured speedup over the teacher in PyTorch and ONNX Runtime at batch 1 and
32 (with 95% bootstrap intervals), the realised fraction (speedup / FLOPs ratio), what the method alone did
(the student before against after pruning), and the job's wall time.

python -m benchmarks.pruning_methods [--models resnet18,mobilenetv2,distilbert]
    [--methods l1_unstructured,structured,nm_2_4,wanda] [--sparsity 0.5] [--seed 0] [--work DIR]
    [--vision-task shapes]
(writes benchmarks/pruning_methods.json after every job, merging with the rows already there, and the pruning
methods section of BENCHMARKS.md; --render-only rewrites the section from the JSON). Every job is a real
quick-preset job at the defaults except `pruning_method` and `sparsity`; `--work` keeps the teacher and student
caches between runs, so the jobs of one model share one teacher and one distilled student and differ only in the
pruning method. Jobs run one at a time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from backend.runtime import environment_info
from benchmarks.report import splice_marked

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "pruning_methods.json"
BEGIN, END = "<!-- pruning methods benchmark: begin -->", "<!-- pruning methods benchmark: end -->"
TASKS = {"vision": "shapes", "text": "intents"}
RUNTIMES = ("pytorch", "onnxruntime")
BATCHES = ("batch_1", "batch_32")


def _tag(model: str, method: str, sparsity: float, seed: int, max_samples: int | None) -> str:
    """The job's id and its folder under --work."""
    return f"{model}-{method}-s{sparsity}-seed{seed}" + (f"-n{max_samples}" if max_samples else "")


def _job(
    model: str,
    method: str,
    sparsity: float,
    seed: int,
    work: Path,
    max_samples: int | None = None,
    tasks: dict[str, str] | None = None,
) -> dict:
    """One quick job; the figures this section reports, read from its report."""
    from backend.jobconfig import JobConfig
    from backend.models.registry import get_model_spec
    from backend.pipeline import run_job

    dataset = (tasks or TASKS)[get_model_spec(model).family]
    options = {"model_name": model, "dataset": dataset, "seed": seed, "pruning_method": method, "sparsity": sparsity}
    if max_samples:
        options["max_samples"] = max_samples
    tag = _tag(model, method, sparsity, seed, max_samples)
    started = time.perf_counter()
    report = run_job(JobConfig.from_dict(options), None, job_id=tag, out_dir=work / tag, cache_dir=work / "cache",
                     upload_dir=work / "uploads").report  # fmt: skip
    wall = time.perf_counter() - started
    perf, cmp = report["student_model_performance"], report["teacher_vs_student_comparison"]
    pruned = report["pruning_analysis"]
    fvs = cmp["flops_vs_speed"]
    speed = {
        runtime: {
            key: {k: row.get(k) for k in ("speedup", "speedup_ci", "realised_fraction", "realised_fraction_ci")}
            for key, row in (fvs["runtimes"].get(runtime) or {}).items()
        }
        or None
        for runtime in RUNTIMES
    }
    effect = pruned.get("pruning_effect") or {}
    effect_speed = ((effect.get("flops_vs_speed") or {}).get("runtimes") or {}).get("pytorch") or {}
    return {
        "model": model,
        "method": method,
        "dataset": dataset,
        "seed": seed,
        "sparsity": sparsity,
        "max_samples": max_samples,
        "test_samples": perf["test_samples"],
        "teacher_accuracy": cmp["effectiveness"]["accuracy"]["teacher"],
        "student_accuracy": perf["accuracy"],
        "student_accuracy_ci": perf["accuracy_ci"],
        "drop_points": cmp["derived"]["accuracy_drop_points"],
        "drop_ci_points": cmp["derived"]["accuracy_drop_ci_points"],
        "flops_ratio": fvs["flops_ratio"],
        "flops_ratio_if_zeros_skipped": fvs["flops_ratio_if_zeros_skipped"],
        "speed": speed,
        "method_flops_ratio": effect.get("flops_ratio"),
        "method_nonzero_parameter_ratio": effect.get("nonzero_parameter_ratio"),
        "method_speedup_pytorch": {
            k: {"speedup": r.get("speedup"), "speedup_ci": r.get("speedup_ci")} for k, r in effect_speed.items()
        },  # fmt: skip
        "global_sparsity": pruned["achieved_sparsity"],
        "structure": (pruned.get("method_details") or {}).get("structure"),
        "fine_tuning": (pruned.get("method_details") or {}).get("fine_tuning"),
        "student_onnx_mb": (
            (report["efficiency_improvements"]["runtimes"].get("onnxruntime") or {}).get("size_mb") or {}
        ).get("student"),  # fmt: skip
        "student_compressed_mb": pruned["compressed_size_mb"],
        "summary": [s for s in report["learning_outcomes"]["summary_sentences"] if "speedup" in s or "FLOPs" in s],
        "device": report["metadata"]["environment"].get("device_name"),
        "tag": tag,
        "input_size": report["metadata"]["dataset"].get("image_size")
        or report["metadata"]["dataset"].get("max_length_tokens"),
        "wall_s": wall,
    }


def head_to_head(work: Path, row: dict, other: dict, runs: int = 60, warmup: int = 5) -> dict:
    """Two jobs' exported students timed in ONNX Runtime in one process, interleaved (order flipped every run):
    median latency of `other` / median of `row` at batch 1 and 32, with the bootstrap interval. Cancels the
    machine's drift between the two jobs, which a ratio of their separate speedups over the teacher does not."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from backend.metrics.stats import median_ratio_interval
    from backend.models.onnx_export import session_options

    options = session_options(torch.get_num_threads())  # as the jobs time ONNX Runtime
    sessions = {
        r["method"]: ort.InferenceSession(
            str(work / r["tag"] / "onnx" / "student" / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        for r in (row, other)
    }
    rng = np.random.default_rng(0)
    out = {}
    for bs in (1, 32):
        feed = {}
        for spec in next(iter(sessions.values())).get_inputs():
            if spec.name == "pixel_values":
                feed[spec.name] = rng.standard_normal((bs, 3, row["input_size"], row["input_size"])).astype(np.float32)
            elif spec.name == "attention_mask":
                feed[spec.name] = np.ones((bs, row["input_size"]), dtype=np.int64)
            else:
                feed[spec.name] = rng.integers(0, 100, (bs, row["input_size"]), dtype=np.int64)
        times: dict[str, list[float]] = {name: [] for name in sessions}
        names = list(sessions)
        for _ in range(warmup):
            for name in names:
                sessions[name].run(None, feed)
        for i in range(runs):
            for name in names if i % 2 == 0 else names[::-1]:
                started = time.perf_counter()
                sessions[name].run(None, feed)
                times[name].append(time.perf_counter() - started)
        slow, fast = times[other["method"]], times[row["method"]]
        out[f"batch_{bs}"] = {
            "speedup": float(np.median(slow) / np.median(fast)),
            "speedup_ci": median_ratio_interval(slow, fast),
            "median_ms": {name: float(np.median(t) * 1000) for name, t in times.items()},
        }
    return {"runs": runs, "faster": row["method"], "slower": other["method"], **out}


def heads_to_heads(results: dict, work: Path) -> dict:
    """structured against l1_unstructured of each model (same sparsity, seed and examples), head to head."""
    rows = {(r["model"], r.get("max_samples"), r["sparsity"], r["seed"], r["method"]): r for r in results["rows"]}
    out = dict(results.get("head_to_head") or {})
    for (model, n, sparsity, seed, method), row in rows.items():
        other = rows.get((model, n, sparsity, seed, "l1_unstructured"))
        if method != "structured" or other is None:
            continue
        for r in (row, other):
            r["tag"] = _tag(model, r["method"], sparsity, seed, n)
        if not all((work / r["tag"] / "report.json").exists() for r in (row, other)):
            continue  # run elsewhere: its earlier head-to-head stays
        for r in (row, other):
            report = json.loads((work / r["tag"] / "report.json").read_text())
            dataset = report["metadata"]["dataset"]
            r["input_size"] = dataset.get("image_size") or dataset.get("max_length_tokens")
        out[f"{model}-n{n or 'all'}"] = head_to_head(work, row, other)
        print(json.dumps(out[f"{model}-n{n or 'all'}"])[:400], flush=True)
    return out


def _key(row: dict) -> tuple:
    return (row["model"], row["method"], row["sparsity"], row["seed"], row.get("max_samples"))


def run(
    models: list[str],
    methods: list[str],
    sparsity: float,
    seed: int,
    work: Path,
    out: Path,
    max_samples: int | None,
    tasks: dict[str, str] | None = None,
) -> dict:
    """Every (model, method) job in turn; the JSON is rewritten after each, keeping rows of other runs."""
    results = json.loads(out.read_text()) if out.exists() else {"rows": []}
    for model in models:
        for method in methods:
            row = _job(model, method, sparsity, seed, work, max_samples, tasks)
            results["rows"] = [r for r in results["rows"] if _key(r) != _key(row)] + [row]
            results["environment"] = environment_info()
            out.write_text(json.dumps(results, indent=2, default=str))
            print(json.dumps({k: row[k] for k in ("model", "method", "student_accuracy", "flops_ratio", "speed")},
                             default=str)[:400], flush=True)  # fmt: skip
    return results


def _x(value: float | None, ci: list[float] | None = None) -> str:
    if value is None:
        return "null"
    return f"{value:.2f}x" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _frac(value: float | None) -> str:
    return "null" if value is None else f"{value:.2f}"


def _cell(row: dict, runtime: str, key: str) -> dict:
    return ((row["speed"].get(runtime) or {}).get(key)) or {}


def render(results: dict) -> str:
    """The BENCHMARKS.md section."""
    env = results.get("environment", {})
    lines = [
        BEGIN,
        "## Pruning methods: FLOPs against milliseconds",
        "",
        f"`python -m benchmarks.pruning_methods`, quick preset, {env.get('cpu_model', '?')}, torch "
        f"{env.get('torch_version')} on {env.get('torch_threads')} thread(s). One real job per model and method "
        "(same seed, same teacher and distilled student from the caches; only the pruning method differs). "
        "Accuracy on the test split with its 95% Wilson interval. Speedups are teacher / student medians of "
        "interleaved runs in the same job, with 95% bootstrap intervals; realised = speedup / FLOPs ratio "
        "(teacher / student dense FLOPs, FlopCounterMode). 'Method alone' is the distilled student before "
        "against after the pruning method (PyTorch, interleaved).",
        "",
        "| model | method | task, examples | student accuracy | FLOPs ratio | PyTorch b1 | PyTorch b32 | ORT b1 | ORT b32 | "
        "realised (PT b1 / b32, ORT b1 / b32) | method alone: FLOPs ratio, PyTorch b1 / b32 | wall time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = sorted(results["rows"], key=lambda r: (r["model"], r.get("max_samples") or 0, r["method"]))
    for r in rows:
        cells = {(rt, k): _cell(r, rt, k) for rt in RUNTIMES for k in BATCHES}
        acc_ci = r["student_accuracy_ci"]
        method_speed = r.get("method_speedup_pytorch") or {}
        lines.append(
            f"| {r['model']} | {r['method']} | {r['dataset']}, {r.get('max_samples') or 'all'} ({r['test_samples']} test) | "
            f"{r['student_accuracy'] * 100:.1f}% [{acc_ci[0] * 100:.1f}, "
            f"{acc_ci[1] * 100:.1f}] | {_x(r['flops_ratio'])} | "
            + " | ".join(
                _x(cells[rt, k].get("speedup"), cells[rt, k].get("speedup_ci")) for rt in RUNTIMES for k in BATCHES
            )  # fmt: skip
            + " | "
            + " / ".join(_frac(cells[rt, k].get("realised_fraction")) for rt in RUNTIMES for k in BATCHES)
            + f" | {_x(r.get('method_flops_ratio'))}, "
            + " / ".join(_x((method_speed.get(k) or {}).get("speedup")) for k in BATCHES)
            + f" | {r['wall_s']:.0f} s |"
        )
    lines += ["", *_structured_against_l1(rows)]
    for name, h in (results.get("head_to_head") or {}).items():
        parts = [
            f"{key.replace('_', ' ')} {_x(h[key]['speedup'], h[key]['speedup_ci'])} "
            f"({h[key]['median_ms'][h['slower']]:.2f} ms against {h[key]['median_ms'][h['faster']]:.2f} ms)"
            for key in BATCHES
        ]
        lines.append(f"- {name}, head to head in ONNX Runtime ({h['runs']} interleaved runs in one process): "
                     f"{h['faster']} over {h['slower']}: " + "; ".join(parts) + ".")  # fmt: skip
    if results.get("note"):
        lines += ["", results["note"]]
    lines += ["", END]
    return "\n".join(lines)


def _structured_against_l1(rows: list[dict]) -> list[str]:
    """structured against l1_unstructured per model: the ratio of their ONNX Runtime speedups over the same
    teacher (each measured against the teacher in its own job, so the machine's drift between jobs cancels)."""
    out = []
    by = {(r["model"], r.get("max_samples"), r["method"]): r for r in rows}
    for model, n in sorted({(r["model"], r.get("max_samples") or 0) for r in rows}):
        s, u = by.get((model, n or None, "structured")), by.get((model, n or None, "l1_unstructured"))
        if not s or not u:
            continue
        parts = []
        for runtime in RUNTIMES:
            for key in BATCHES:
                a, b = _cell(s, runtime, key).get("speedup"), _cell(u, runtime, key).get("speedup")
                if a and b:
                    parts.append(f"{'ORT' if runtime == 'onnxruntime' else 'PyTorch'} {key.replace('_', ' ')} "
                                 f"{a / b:.2f}x")  # fmt: skip
        out.append(f"- {model} ({n or 'all'} examples): structured over l1_unstructured (ratio of their speedups over the teacher): "
                   + ", ".join(parts) + ".")  # fmt: skip
    return out


def splice(text: str, section: str) -> str:
    """BENCHMARKS.md with the section replaced (or appended)."""
    return splice_marked(text, section, BEGIN, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,mobilenetv2,distilbert")
    parser.add_argument("--methods", default="l1_unstructured,structured,nm_2_4,wanda")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="/tmp/kd-pruning-methods", help="keeps the teacher and student caches")
    parser.add_argument("--max-samples", type=int, default=None, help="subsample the task (default: all of it)")
    parser.add_argument("--vision-task", default=TASKS["vision"], help="the CNNs' built-in task")
    parser.add_argument("--head-to-head", action="store_true", help="time the structured and l1_unstructured "
                        "students of the jobs already run against each other in ONNX Runtime (no training)")  # fmt: skip
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--out", default=str(OUT), help="the JSON to write (and to render from)")
    args = parser.parse_args()
    out = Path(args.out)
    if not args.render_only:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
        tasks = {**TASKS, "vision": args.vision_task}
        run(
            args.models.split(","),
            args.methods.split(","),
            args.sparsity,
            args.seed,
            work,
            out,
            args.max_samples,
            tasks,
        )
    results = json.loads(out.read_text())
    if args.head_to_head:
        results["head_to_head"] = heads_to_heads(results, Path(args.work))
        out.write_text(json.dumps(results, indent=2, default=str))
    path = ROOT / "BENCHMARKS.md"
    path.write_text(splice(path.read_text(), render(results)))


if __name__ == "__main__":
    main()

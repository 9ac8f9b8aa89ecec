"""A latency target asked of a real quick job: the candidates the search measured, the ratio it chose, what the
trained student achieved, and a target no student can meet (the job must fail early, naming the fastest).

python -m benchmarks.latency_target [--model resnet18] [--dataset shapes] [--speedup 2.5] [--runtime onnxruntime]
    [--seed 0] [--work DIR] [--render-only]

Each job is a real quick-preset job at the defaults plus `target_speedup`, `target_runtime` and `dataset`.
`--work` holds the caches: pointed at benchmarks.pruning_methods' work dir, the job reuses the teacher trained
there (same model, task and seed), so its wall time is the search, the distillation and the measurements.
Writes benchmarks/latency_target.json and the latency target section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from backend.runtime import environment_info
from benchmarks.report import splice_marked

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "latency_target.json"
BEGIN, END = "<!-- latency target benchmark: begin -->", "<!-- latency target benchmark: end -->"
UNREACHABLE = 1000.0


def _run(options: dict, work: Path, tag: str) -> tuple[dict | None, str | None, float]:
    """One job: (report, None, wall s), or (None, the error's message, wall s to the failure)."""
    from backend.jobconfig import JobConfig
    from backend.pipeline import run_job

    started = time.perf_counter()
    try:
        result = run_job(JobConfig.from_dict(options), None, job_id=tag, out_dir=work / tag, cache_dir=work / "cache",
                         upload_dir=work / "uploads")  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - the failure is the figure
        return None, f"{type(exc).__name__}: {exc}", time.perf_counter() - started
    return result.report, None, time.perf_counter() - started


def measure(model: str, dataset: str, speedup: float, runtime: str, seed: int, work: Path) -> dict:
    base = {"model_name": model, "dataset": dataset, "seed": seed, "target_runtime": runtime}
    report, error, wall = _run({**base, "target_speedup": speedup}, work, f"{model}-target-{speedup:g}-seed{seed}")
    if report is None:
        raise RuntimeError(f"the job with target_speedup {speedup} failed: {error}")
    section = report["latency_target"]
    cmp = report["teacher_vs_student_comparison"]
    perf = report["student_model_performance"]
    phases = {k: v for k, v in (report["metadata"].get("timings_s") or {}).items() if k != "total"}
    _, unreachable_error, unreachable_wall = _run(
        {**base, "target_speedup": UNREACHABLE}, work, f"{model}-target-{UNREACHABLE:g}-seed{seed}"
    )
    return {
        "model": model,
        "dataset": dataset,
        "seed": seed,
        "test_samples": perf["test_samples"],
        "asked": section["asked"],
        "candidates": section["candidates"],
        "chosen": section["chosen"],
        "achieved": section["achieved"],
        "met": section["met"],
        "search": section["search"],
        "teacher_accuracy": cmp["effectiveness"]["accuracy"]["teacher"],
        "teacher_accuracy_ci": cmp["effectiveness"]["accuracy"]["ci"]["teacher"],
        "student_accuracy": perf["accuracy"],
        "student_accuracy_ci": perf["accuracy_ci"],
        "drop_points": cmp["derived"]["accuracy_drop_points"],
        "drop_ci_points": cmp["derived"]["accuracy_drop_ci_points"],
        "teacher_source": report["metadata"].get("teacher_source"),
        "phase_s": phases,
        "wall_s": wall,
        "unreachable": {"asked": UNREACHABLE, "error": unreachable_error, "wall_s": unreachable_wall},
        "environment": environment_info(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _ci(ci, fmt: str = "{:.2f}") -> str:
    return "" if not ci else f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"


def render(r: dict) -> str:
    env = r["environment"]
    asked = r["asked"]
    lines = [
        BEGIN,
        "## Latency target (`target_speedup`)",
        "",
        f"`python -m benchmarks.latency_target`, {r['measured_at']}, {env.get('cpu_model') or 'CPU'}, torch "
        f"{env.get('torch_version')} on {env.get('torch_threads')} thread(s). One real quick job: {r['model']} on "
        f"`{r['dataset']}` ({r['test_samples']} test examples), seed {r['seed']}, `target_speedup` "
        f"{asked.get('target_speedup')}, `target_runtime` {asked['runtime']}, batch size {asked['batch_size']}. "
        "The search ran before any training, on untrained candidates (dense latency does not depend on the "
        "weights' values): each candidate timed in alternating rounds with the teacher, median latency with a 95% "
        "bootstrap interval of the median, speedup = teacher median / candidate median from the same rounds.",
        "",
        "Candidates in the order measured:",
        "",
        "| structural ratio | FLOPs/sample | FLOPs ratio | parameters | candidate latency ms [95%] | teacher "
        "latency ms | speedup [95%] | meets the target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in r["candidates"]:
        lines.append(
            f"| {c['amount']:g} | {c['flops_per_sample'] / 1e6:.1f} M | {c['flops_ratio']:.2f}x | "
            f"{c['parameters']:,} | {c['latency_ms']:.3f}{_ci(c.get('latency_ms_ci'), '{:.3f}')} | "
            f"{c['teacher_latency_ms']:.3f} | {c['speedup']:.2f}x{_ci(c.get('speedup_ci'))} | "
            f"{'yes' if c['meets_target'] else 'no'} |"
        )
    a = r["achieved"] or {}
    chosen = next((c for c in r["candidates"] if c["amount"] == r["chosen"]), {})
    acc = (
        f"{r['teacher_accuracy'] * 100:.1f}%{_ci([x * 100 for x in r['teacher_accuracy_ci']], '{:.1f}')}"
        if r.get("teacher_accuracy_ci")
        else f"{r['teacher_accuracy'] * 100:.1f}%"
    )
    lines += [
        "",
        "| asked | candidates | chosen ratio | FLOPs ratio of the chosen | achieved (trained student) | met | "
        "teacher accuracy | student accuracy | drop (points) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| speedup ≥ {asked.get('target_speedup')}x | {len(r['candidates'])} | {r['chosen']} | "
        f"{chosen.get('flops_ratio', 0):.2f}x | {a.get('latency_ms', 0):.3f} ms"
        f"{_ci(a.get('latency_ms_ci'), '{:.3f}')} against the teacher's {a.get('teacher_latency_ms', 0):.3f} ms: "
        f"{a.get('speedup', 0):.2f}x{_ci(a.get('speedup_ci'))} | {'yes' if r['met'] else '**no**'} | {acc} | "
        f"{r['student_accuracy'] * 100:.1f}%{_ci([x * 100 for x in r['student_accuracy_ci']], '{:.1f}')} | "
        f"{r['drop_points']:+.1f}{_ci(r['drop_ci_points'], '{:+.1f}')} |",
        "",
        f"The search stopped: {r['search']['stopped']}. Candidates that measured slower than a smaller amount "
        f"(timing noise): {len(r['search']['non_monotone'])}. The job took {r['wall_s']:.0f} s "
        f"({_phase_text(r['phase_s'])}); teacher: {_teacher_text(r.get('teacher_source'))}.",
        "",
        f"An unreachable target (`target_speedup` {r['unreachable']['asked']:g}) failed after "
        f"{r['unreachable']['wall_s']:.1f} s, before any training, with: "
        f"“{(r['unreachable']['error'] or 'no error: the job did not fail').split(': ', 1)[-1]}”",
        "",
        END,
    ]
    return "\n".join(lines)


def _phase_text(phases: dict) -> str:
    shown = [f"{name} {s:.0f} s" for name, s in phases.items() if isinstance(s, int | float) and s >= 1]
    return ", ".join(shown) if shown else "phases not recorded"


def _teacher_text(source) -> str:
    if isinstance(source, dict):
        return (
            "from the cache (trained from scratch by an earlier job)"
            if source.get("kind") == "cache"
            else (source.get("kind") or json.dumps(source))
        )
    return str(source)


def splice(text: str, section: str) -> str:
    """BENCHMARKS.md with the section replaced (or appended)."""
    return splice_marked(text, section, BEGIN, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--dataset", default="shapes")
    parser.add_argument("--speedup", type=float, default=2.5)
    parser.add_argument("--runtime", default="onnxruntime", choices=["onnxruntime", "pytorch"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work", default="/tmp/kd-pruning-methods", help="the caches (a teacher trained there is reused)"
    )
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    out = Path(args.out)
    if not args.render_only:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(measure(args.model, args.dataset, args.speedup, args.runtime, args.seed, work),
                                  indent=2, default=str))  # fmt: skip
    path = ROOT / "BENCHMARKS.md"
    path.write_text(splice(path.read_text(), render(json.loads(out.read_text()))))


if __name__ == "__main__":
    main()

"""Evidence on the built-in tasks that do not saturate: per model, the teacher's test accuracy, the student's drop
at the default and at the extreme compression (with paired intervals), and distillation's measured gain over the
ce_only control across seeds, whatever its sign.

python -m benchmarks.evidence [--models resnet18,...] [--seeds 0,1,2] [--merge] [--extra-seeds]   (writes
benchmarks/evidence.json and the evidence section of BENCHMARKS.md; --render-only rewrites the section from the
JSON; every model by default, most of an hour each on 2 cores). Every job is a real quick-preset job at the
defaults except the settings named; teachers are cached by seed and reused between the default and the extreme job
of the same seed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from backend.runtime import environment_info
from benchmarks.compression import MODELS
from benchmarks.pruning_methods import TASKS
from benchmarks.report import splice_marked

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "evidence.json"
BEGIN, END = "<!-- evidence benchmark: begin -->", "<!-- evidence benchmark: end -->"
EXTREME = {"structural_ratio": 0.9, "sparsity": 0.9}


def _job(model: str, dataset: str, seed: int, work: Path, **options) -> dict:
    """One quick job; the figures this section reports, read from its report."""
    from backend.jobconfig import JobConfig
    from backend.pipeline import run_job

    config = JobConfig.from_dict({"model_name": model, "dataset": dataset, "seed": seed, **options})
    tag = "-".join([model, str(seed), *(f"{k}{v}" for k, v in sorted(options.items()) if k != "controls")])
    started = time.perf_counter()
    report = run_job(config, None, job_id=tag, out_dir=work / tag, cache_dir=work / "cache",
                     upload_dir=work / "uploads").report  # fmt: skip
    perf, cmp = report["student_model_performance"], report["teacher_vs_student_comparison"]
    controls = report["knowledge_distillation_analysis"].get("controls") or {}
    derived = cmp["derived"]
    return {
        "model": model,
        "dataset": dataset,
        "seed": seed,
        "options": options,
        "test_samples": perf["test_samples"],
        "teacher_accuracy": cmp["effectiveness"]["accuracy"]["teacher"],
        "teacher_accuracy_ci": cmp["effectiveness"]["accuracy"]["ci"]["teacher"],
        "student_accuracy": perf["accuracy"],
        "student_accuracy_ci": perf["accuracy_ci"],
        "drop_points": derived["accuracy_drop_points"],
        "drop_ci_points": derived["accuracy_drop_ci_points"],
        "drop_p_value": derived["accuracy_drop_p_value"],
        "structural_ratio": report["metadata"]["config"]["resolved"]["structural_ratio"],
        "sparsity": report["metadata"]["config"]["sparsity"],
        "ce_only_accuracy": ((controls.get("arms") or {}).get("ce_only") or {}).get("accuracy"),
        "kd_gain": controls.get("kd_gain_points"),
        "scratch_accuracy": ((controls.get("arms") or {}).get("scratch") or {}).get("accuracy"),
        "init_gain": controls.get("init_gain_points"),
        "teacher_source": report["metadata"]["teacher_source"]["kind"],
        "wall_s": time.perf_counter() - started,
    }


def run(models: list[str], seeds: list[int], work: Path, extra_seeds: bool = False) -> dict:
    """The first seed's default job with both control arms (init_gain too) and its extreme job, then the other
    seeds' default jobs with ce_only (kd_gain per seed); with `extra_seeds`, every seed is one of the others."""
    from backend.models.registry import get_model_spec

    rows = []
    for model in models:
        dataset = TASKS[get_model_spec(model).family]
        for seed in seeds:
            first = seed == seeds[0] and not extra_seeds
            rows.append(_job(model, dataset, seed, work, controls=["ce_only", "scratch"] if first else ["ce_only"]))
            print(json.dumps(rows[-1], default=str)[:300], flush=True)
        if not extra_seeds:
            rows.append(_job(model, dataset, seeds[0], work, **EXTREME))
            print(json.dumps(rows[-1], default=str)[:300], flush=True)
    return {"environment": environment_info(), "seeds": seeds, "rows": rows}


def merge(old: dict, new: dict) -> dict:
    """`old` with `new`'s rows added, replacing any row of the same model, seed and options; the environment of
    each run is kept beside its rows."""
    key = lambda r: (r["model"], r["seed"], json.dumps(r["options"], sort_keys=True))  # noqa: E731
    for row in new["rows"]:
        row.setdefault("environment", new["environment"])
    fresh = {key(r) for r in new["rows"]}
    rows = [r for r in old.get("rows", []) if key(r) not in fresh] + new["rows"]
    order = {m: i for i, m in enumerate(dict.fromkeys([*MODELS, *(r["model"] for r in rows)]))}
    rows.sort(key=lambda r: (order[r["model"]], "structural_ratio" in r["options"], r["seed"]))
    return {**old, "rows": rows, "seeds": sorted({r["seed"] for r in rows})}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def _ci(ci: list[float] | None, scale: float = 100.0) -> str:
    return "" if not ci else f" [{ci[0] * scale:.1f}, {ci[1] * scale:.1f}]"


def _pts(points: float, ci: list[float], p: float | None = None) -> str:
    noise = "within noise" if ci[0] <= 0 <= ci[1] else "beyond noise"
    return f"{points:+.1f} [{ci[0]:+.1f}, {ci[1]:+.1f}]" + (f", p = {p:.2g}" if p is not None else "") + f", {noise}"


def render(results: dict) -> str:
    """The BENCHMARKS.md section."""
    from backend.metrics.stats import t_interval

    env = results["environment"]
    runs = [env, *(r["environment"] for r in results["rows"] if r.get("environment"))]  # merged runs keep theirs
    cpus = " / ".join(dict.fromkeys(e.get("cpu_model", "?") for e in runs))
    lines = [
        BEGIN,
        "## Evidence on the built-in tasks: intervals, drops and distillation's gain over its control",
        "",
        f"`python -m benchmarks.evidence`, quick preset, {cpus}, torch {env.get('torch_version')}"
        f" on {env.get('torch_threads')} thread(s). Accuracy on the held-out test split with its 95% Wilson "
        "interval; drops and gains are paired on the same test examples (points, 95% Newcombe interval, exact "
        "McNemar p). Default = the quick preset's structural ratio and sparsity 0.3; extreme = structural ratio "
        "0.9 and sparsity 0.9 (seed 0). kd_gain = distilled student minus the ce_only control (same student, same "
        "initial weights, cross-entropy alone), per seed, and its mean with a 95% t-interval across seeds.",
        "",
        "| model | task | teacher accuracy (seed 0) | student, default | drop, default (pts) | student, extreme | "
        "drop, extreme (pts) | wall time, default job with its control arms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_model: dict[str, list[dict]] = {}
    for row in results["rows"]:
        by_model.setdefault(row["model"], []).append(row)
    for model, rows in by_model.items():
        default = [r for r in rows if "structural_ratio" not in r["options"]]
        extreme = [r for r in rows if "structural_ratio" in r["options"]]
        d, e = default[0], extreme[0] if extreme else None
        lines.append(
            f"| {model} | {d['dataset']} ({d['test_samples']} test) | {_pct(d['teacher_accuracy'])}"
            f"{_ci(d['teacher_accuracy_ci'])} | {_pct(d['student_accuracy'])}{_ci(d['student_accuracy_ci'])} | "
            f"{_pts(d['drop_points'], d['drop_ci_points'], d['drop_p_value'])} | "
            + (
                f"{_pct(e['student_accuracy'])}{_ci(e['student_accuracy_ci'])} | "
                f"{_pts(e['drop_points'], e['drop_ci_points'], e['drop_p_value'])}"
                if e
                else "n/a | n/a"
            )
            + f" | {d['wall_s']:.0f} s |"
        )
    lines += [
        "",
        "| model | seed | teacher | distilled student | ce_only control | kd_gain (pts) | scratch control | "
        "init_gain (pts) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, rows in by_model.items():
        gains = []
        for r in rows:
            if r.get("kd_gain"):
                g = r["kd_gain"]
                gains.append(g["points"])
                init = r.get("init_gain")
                lines.append(
                    f"| {model} | {r['seed']} | {_pct(r['teacher_accuracy'])} | {_pct(r['student_accuracy'])} | "
                    f"{_pct(r['ce_only_accuracy'])} | {_pts(g['points'], g['ci_points'], g['p_value'])} | "
                    + (f"{_pct(r.get('scratch_accuracy'))} | {_pts(init['points'], init['ci_points'], init['p_value'])} |"
                       if init else "not run | |")
                )  # fmt: skip
        spread = t_interval(gains)
        if spread.get("ci"):
            low, high = spread["ci"]
            verdict = "within noise across seeds" if low <= 0 <= high else "beyond the noise across seeds"
            lines.append(
                f"| {model} | mean of {spread['n']} | | | | {spread['mean']:+.1f} [{low:+.1f}, {high:+.1f}] "
                f"(sd {spread['std']:.1f}), {verdict} | | |"
            )
    verdicts = []
    for model, rows in by_model.items():
        gains = [r["kd_gain"]["points"] for r in rows if r.get("kd_gain")]
        spread = t_interval(gains)
        if spread.get("ci"):
            low, high = spread["ci"]
            per_seed = [r["kd_gain"]["ci_points"] for r in rows if r.get("kd_gain")]
            same_way = all(h < 0 for _, h in per_seed) or all(lo > 0 for lo, _ in per_seed)
            if low <= 0 <= high and same_way:
                way = "lower" if per_seed[0][1] < 0 else "higher"
                verdicts.append(f"{model}: on every one of {spread['n']} seeds the distilled student scored {way} than "
                                f"the same student trained without the teacher, beyond that seed's noise (mean "
                                f"{spread['mean']:+.1f} points), though with {spread['n']} seeds the interval across "
                                f"seeds is wide ([{low:+.1f}, {high:+.1f}]).")  # fmt: skip
            elif low <= 0 <= high:
                verdicts.append(f"{model}: distillation's gain over the same student trained without the teacher is "
                                f"within noise across {spread['n']} seeds (mean {spread['mean']:+.1f} points).")  # fmt: skip
            else:
                way = "helped" if low > 0 else "hurt"
                verdicts.append(f"{model}: distillation {way} by {spread['mean']:+.1f} points on average across "
                                f"{spread['n']} seeds, beyond the noise.")  # fmt: skip
    if verdicts:
        lines += ["", "What this says, from the numbers above: " + " ".join(verdicts)]
    if results.get("note"):
        lines += ["", results["note"]]
    lines += ["", END]
    return "\n".join(lines)


def splice(text: str, section: str) -> str:
    """BENCHMARKS.md with the section replaced (or appended)."""
    return splice_marked(text, section, BEGIN, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--merge", action="store_true", help="add this run's rows to the JSON instead of replacing it")
    parser.add_argument(
        "--extra-seeds",
        action="store_true",
        help="every seed runs only its default job with ce_only (more kd_gain rows; with --merge)",
    )
    parser.add_argument("--out", default=str(OUT), help="the JSON to write (and to render from)")
    args = parser.parse_args()
    if not args.render_only:
        with tempfile.TemporaryDirectory(prefix="kd-evidence-") as tmp:
            results = run(args.models.split(","), [int(s) for s in args.seeds.split(",")], Path(tmp), args.extra_seeds)
        if args.merge and Path(args.out).exists():
            results = merge(json.loads(Path(args.out).read_text()), results)
        Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    results = json.loads(Path(args.out).read_text())
    path = ROOT / "BENCHMARKS.md"
    path.write_text(splice(path.read_text(), render(results)))


if __name__ == "__main__":
    main()

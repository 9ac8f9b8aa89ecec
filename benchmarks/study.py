"""A 3x2 ResNet-18 study from a cold cache vs the same six points as separate jobs, each from a cold cache;
and the study through the job manager with two workers against one.

python -m benchmarks.study [--max-samples N] [--skip-workers | --workers-only]   (writes
benchmarks/study_results.json and the study section of BENCHMARKS.md). Goal: the study takes <= 60% of the separate
jobs' wall time. --workers-only runs just the one- vs two-worker pair and keeps the study and separate-jobs figures
of the previous run (the section then names both runs).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

from backend.runtime import environment_info

ROOT = Path(__file__).resolve().parent.parent
GRID = {"sparsity": [0.3, 0.5, 0.7], "structural_ratio": [0.25, 0.5]}
BEGIN, END = "<!-- study benchmark: begin -->", "<!-- study benchmark: end -->"


def study_in_process(body: dict, work: Path) -> tuple[float, list[dict]]:
    """The study as the CLI runs it: every point in turn, one shared (cold at first) cache."""
    from backend.study_cli import run_study

    started = time.perf_counter()
    rows = run_study(body, work / "study", work / "study-cache", work / "uploads")
    return time.perf_counter() - started, rows


def separate_jobs(body: dict, work: Path) -> float:
    """The same points as independent jobs, one after another, each with its own cold cache."""
    from backend.jobs.studies import expand_grid
    from backend.pipeline import run_job

    _, _, configs = expand_grid(body)
    started = time.perf_counter()
    for i, config in enumerate(configs):
        run_job(
            config,
            None,
            job_id=f"sep-{i}",
            out_dir=work / "separate" / str(i),
            cache_dir=work / f"separate-cache-{i}",
            upload_dir=work / "uploads",
        )
    return time.perf_counter() - started


def study_with_workers(body: dict, work: Path, workers: int) -> float:
    """The study through the job manager (POST /studies' path) with `workers` workers, cold cache."""
    from backend.jobs import JobManager
    from backend.jobs.studies import StudyService, StudyStore

    data = work / f"workers-{workers}"
    manager = JobManager(data, data / "uploads", workers=workers)
    service = StudyService(manager, StudyStore(data / "jobs.sqlite3"))
    started = time.perf_counter()
    study = service.create(body)
    for job_id in study.job_ids:
        manager.wait(job_id)
    elapsed = time.perf_counter() - started
    states = {manager.get(j).state for j in study.job_ids}
    manager.shutdown()
    if states != {"succeeded"}:
        raise RuntimeError(f"study with {workers} worker(s) ended with states {states}")
    return elapsed


def render(results: dict) -> str:
    """The BENCHMARKS.md section: timings, ratio against the goal, the study table and its frontier."""
    r = results
    lines = [
        BEGIN,
        "## Compression study (3x2 ResNet-18)",
        "",
        f"Measured {r['started_at']} on {r['environment'].get('cpu_model', '?')}, torch threads "
        f"{r['environment'].get('torch_threads', '?')}; options {json.dumps(r['options'])}. " + r.get("note", ""),
        "",
        "| run | wall time (s) |",
        "|---|---|",
        f"| study, cold cache (teacher once, one student per structural ratio) | {r['study_s']:.1f} |",
        f"| six separate jobs, each from a cold cache | {r['separate_s']:.1f} |",
    ]
    for w, s in sorted(r.get("workers_s", {}).items()):
        lines.append(f"| study through the job manager, {w} worker(s), cold cache | {s:.1f} |")
    if r.get("workers_run"):
        wr = r["workers_run"]
        lines += [
            "",
            f"The worker rows were measured in a later run, {wr['started_at']} on "
            f"{wr['environment'].get('cpu_model', '?')}. {wr.get('note', '')}".rstrip(),
        ]
    ratio = r["study_s"] / r["separate_s"]
    lines += ["", f"Study / separate jobs: **{ratio:.0%}** (goal <= 60%: {'met' if ratio <= 0.6 else 'not met'}).", ""]
    if len(r.get("workers_s", {})) == 2:
        one, two = r["workers_s"]["1"], r["workers_s"]["2"]
        lines += [f"Two workers / one: {two / one:.0%} of the wall time.", ""]
    lines += [
        "| sparsity | structural ratio | accuracy | latency b1 (ms) | dense MB | parameters | Pareto (latency) "
        "| Pareto (size) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        acc = "n/a" if row.get("accuracy") is None else f"{row['accuracy']:.2%}"
        lat = "n/a" if row.get("latency_batch_1_ms") is None else f"{row['latency_batch_1_ms']:.3f}"
        size = "n/a" if row.get("model_size_mb") is None else f"{row['model_size_mb']:.2f}"
        params = "n/a" if row.get("parameters") is None else f"{row['parameters']:,}"
        lines.append(
            f"| {row['sparsity']:g} | {row['structural_ratio']:g} | {acc} | {lat} | {size} | {params} | "
            f"{'yes' if row.get('pareto_latency') else ''} | {'yes' if row.get('pareto_size') else ''} |"
        )
    front = [
        f"(sparsity {x['sparsity']:g}, ratio {x['structural_ratio']:g})"
        for x in sorted((x for x in r["rows"] if x.get("pareto_latency")), key=lambda x: x["latency_batch_1_ms"])
    ]
    lines += ["", "Accuracy-vs-latency frontier, fastest first: " + (", ".join(front) or "none"), END]
    return "\n".join(lines) + "\n"


def splice(markdown: str, section: str) -> str:
    """BENCHMARKS.md with its study section replaced (or appended)."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END) + "\n?", re.S)
    if pattern.search(markdown):
        return pattern.sub(lambda _: section, markdown)
    return markdown.rstrip("\n") + "\n\n" + section


def keep_section(old: str, new: str) -> str:
    """`new` BENCHMARKS.md text with the study section of `old` kept (python -m benchmarks rewrites the file)."""
    found = re.search(re.escape(BEGIN) + ".*?" + re.escape(END) + "\n?", old, re.S)
    return splice(new, found.group(0)) if found else new


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.study")
    parser.add_argument("--max-samples", type=int, help="cap the dataset (a quicker, less accurate run)")
    parser.add_argument("--skip-workers", action="store_true", help="skip the one- vs two-worker runs")
    parser.add_argument("--workers-only", action="store_true", help="run only the one- vs two-worker pair")
    parser.add_argument("--note", default="", help="a sentence on the conditions (e.g. a shared machine)")
    args = parser.parse_args()
    if args.workers_only:
        workers_only(args)
        return
    body: dict = {"model_name": "resnet18", "grid": GRID}
    if args.max_samples:
        body["max_samples"] = args.max_samples
    results: dict = {
        "environment": environment_info(),
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "options": {k: v for k, v in body.items() if k != "grid"} | {"grid": GRID},
        "note": args.note,
    }
    with tempfile.TemporaryDirectory(prefix="kd-study-bench-") as tmp:
        work = Path(tmp)
        # separate jobs first, then the study: machine drift cannot favour the study by running it first
        results["separate_s"] = separate_jobs(body, work)
        print(f"six separate jobs: {results['separate_s']:.0f} s", flush=True)
        results["study_s"], results["rows"] = study_in_process(body, work)
        print(f"study: {results['study_s']:.0f} s", flush=True)
        if not args.skip_workers:
            results["workers_s"] = {str(w): study_with_workers(body, work, w) for w in (1, 2)}
            print(f"workers: {results['workers_s']}", flush=True)
    (ROOT / "benchmarks" / "study_results.json").write_text(json.dumps(results, indent=2, default=str))
    md = ROOT / "BENCHMARKS.md"
    md.write_text(splice(md.read_text(encoding="utf-8") if md.exists() else "# Benchmarks\n", render(results)))
    print(render(results))


def workers_only(args: argparse.Namespace) -> None:
    """Add the one- vs two-worker pair to the previous run's results (same grid and options)."""
    path = ROOT / "benchmarks" / "study_results.json"
    results = json.loads(path.read_text())
    body = {"model_name": "resnet18", "grid": GRID} | {k: v for k, v in results["options"].items() if k != "grid"}
    run = {"environment": environment_info(), "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "note": args.note}
    with tempfile.TemporaryDirectory(prefix="kd-study-bench-") as tmp:
        results["workers_s"] = {str(w): study_with_workers(body, Path(tmp), w) for w in (1, 2)}
    print(f"workers: {results['workers_s']}", flush=True)
    results["workers_run"] = run
    path.write_text(json.dumps(results, indent=2, default=str))
    md = ROOT / "BENCHMARKS.md"
    md.write_text(splice(md.read_text(encoding="utf-8"), render(results)))
    print(render(results))


if __name__ == "__main__":
    main()

"""Workers: N tiny jobs on one vs two Celery workers, one quick job embedded vs distributed, API p99 under load.

    python -m benchmarks.workers [--jobs 4] [--out benchmarks/workers.json] [--render-only]

Needs redis-server on PATH (Debian's package). Every setup is fresh (its own data dir, cold teacher cache) and
warmed by one tiny job before anything is timed, so that no figure includes a worker importing torch. Each
setup's jobs run at one torch thread (KD_TORCH_THREADS=1), so two workers on 2 cores do not oversubscribe.
Writes benchmarks/workers.json and the "Workers and processes" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.server import _free_port, _percentiles, _probe

ROOT = Path(__file__).resolve().parent.parent
TINY = {
    "model_name": "resnet18",
    "epochs": 1,
    "kd_epochs": 1,
    "finetune_epochs": 1,
    "max_samples": 200,
    "pruning_steps": 1,
    "pretrained": False,
}
QUICK = {"model_name": "resnet18", "pretrained": False, "seed": 7}  # the quick preset's defaults
HEADING = "## Workers and processes"
OVERHEAD_GOAL = 0.05


class Setup:
    """An API (embedded or with a broker) and its workers, as processes on a fresh data dir."""

    def __init__(self, workers: int, broker: bool) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="kd-bench-"))
        self.procs: list[subprocess.Popen] = []
        env = {**os.environ, "KD_TORCH_THREADS": "1"}
        args = ["backend/app.py", "--data-dir", str(self.tmp / "data")]
        if broker:
            redis_port = _free_port()
            self._spawn(
                [shutil.which("redis-server"), "--port", str(redis_port), "--save", "", "--appendonly", "no"], env
            )
            url = f"redis://127.0.0.1:{redis_port}/0"
            args += ["--broker", url]
            for i in range(workers):
                self._spawn(
                    [
                        sys.executable,
                        "-m",
                        "backend.worker",
                        "--broker",
                        url,
                        "--data-dir",
                        str(self.tmp / "data"),
                        "--name",
                        f"w{i}",
                        "--loglevel",
                        "WARNING",
                    ],
                    env,
                )
        else:
            args += ["--workers", str(workers)]
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        self._spawn([sys.executable, *args, "--port", str(port)], env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/test", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        # warm-up, untimed: one job per worker at once, so every worker process has imported torch
        self.run_jobs([{**TINY, "seed": 999 - i} for i in range(workers)])

    def _spawn(self, argv: list, env: dict) -> None:
        self.procs.append(
            subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )

    def run_jobs(self, jobs: list[dict], *, probe: bool = False) -> dict:
        """Submit the jobs at once and time until all are finished."""
        started = time.monotonic()
        ids = [requests.post(f"{self.base}/train", json=job, timeout=10).json()["job_id"] for job in jobs]
        latencies: list[float] = []
        while True:
            jobs = [requests.get(f"{self.base}/jobs/{i}", timeout=10).json() for i in ids]
            if all(j["state"] in ("succeeded", "failed", "cancelled") for j in jobs):
                break
            if probe:
                latencies += _probe(f"{self.base}/test", 2.0)
            else:
                time.sleep(0.5)
        out = {
            "wall_s": round(time.monotonic() - started, 2),
            "states": [j["state"] for j in jobs],
            "workers": sorted({j["worker"].get("name", "?") for j in jobs}),
        }
        if probe and latencies:
            out["api_test_latency"] = _percentiles(latencies)
        return out

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def measure(n_jobs: int) -> dict:
    """The three comparisons; each setup is fresh (cold caches) and warm, the pairs run back to back."""
    results: dict = {}
    tiny = [{**TINY, "seed": 100 + i} for i in range(n_jobs)]  # distinct seeds: no shared teacher
    for label, workers, broker, jobs, probe in (
        ("one_worker", 1, True, tiny, False),
        ("two_workers", 2, True, tiny, True),
        ("quick_embedded", 1, False, [QUICK], False),
        ("quick_distributed", 1, True, [QUICK], False),
    ):
        print(label, "...", flush=True)
        setup = Setup(workers, broker)
        try:
            results[label] = setup.run_jobs(jobs, probe=probe)
        finally:
            setup.close()
    results["two_vs_one_worker_speedup"] = round(results["one_worker"]["wall_s"] / results["two_workers"]["wall_s"], 3)
    results["distributed_overhead_ratio"] = round(
        results["quick_distributed"]["wall_s"] / results["quick_embedded"]["wall_s"], 3
    )
    return results


def render(r: dict) -> str:
    """The BENCHMARKS.md section, from the measured figures only."""
    one, two, emb, dist = r["one_worker"], r["two_workers"], r["quick_embedded"], r["quick_distributed"]
    overhead = r["distributed_overhead_ratio"] - 1
    lat = two.get("api_test_latency") or {}
    return "\n".join(
        [
            HEADING,
            "",
            f"Measured by `python -m benchmarks.workers` (raw: `benchmarks/workers.json`), started {r['started_at']}, "
            f"{r['cpu_count']} cores, load average {r['load_average_at_start']:.1f} at the start. Every setup is "
            "processes on a fresh data dir (cold teacher cache), warmed by one untimed tiny job; jobs run at one torch "
            "thread each. One run per setup: wall times on a shared machine are noisy.",
            "",
            "| setup | jobs | wall s | workers used | states |",
            "|---|---|---|---|---|",
            *(
                f"| {name} | {len(x['states'])} | {x['wall_s']:.1f} | {', '.join(x['workers'])} | "
                f"{', '.join(sorted(set(x['states'])))} |"
                for name, x in (
                    ("Celery + Redis, one worker (tiny jobs)", one),
                    ("Celery + Redis, two workers (tiny jobs)", two),
                    ("embedded (local worker process), one quick job", emb),
                    ("Celery + Redis, one worker, one quick job", dist),
                )
            ),
            "",
            f"- Two workers against one: {r['two_vs_one_worker_speedup']:.2f}x the throughput on {r['jobs']} tiny jobs "
            f"(2 cores, each job on one thread).",
            f"- A quick job (ResNet-18, default options) distributed against embedded: {r['distributed_overhead_ratio']:.3f}"
            f" of the embedded wall time, an overhead of {overhead:+.1%} (goal ≤ {OVERHEAD_GOAL:.0%}: "
            f"{'met' if overhead <= OVERHEAD_GOAL else '**missed**'}).",
            f"- `GET /test` while two workers trained: p50 {lat.get('p50_ms', float('nan')):.1f} ms, p99 "
            f"{lat.get('p99_ms', float('nan')):.1f} ms, max {lat.get('max_ms', float('nan')):.1f} ms over {lat.get('n', 0)}"
            " requests.",
            "",
        ]
    )


def write_section(section: str, heading: str = HEADING) -> None:
    """Replace (or append) the section under `heading` in BENCHMARKS.md, up to the next section or marker."""
    import re

    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile("^" + re.escape(heading) + r"\n.*?(?=^## |^<!-- |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> None:
    """Run and write the figures as JSON and the BENCHMARKS.md section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "workers.json"))
    parser.add_argument("--render-only", action="store_true", help="rewrite the section from the saved figures")
    args = parser.parse_args()
    if args.render_only:
        write_section(render(json.loads(Path(args.out).read_text())))
        return
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is needed (apt-get install redis-server)")
    results = {
        "cpu_count": os.cpu_count(),
        "jobs": args.jobs,
        "load_average_at_start": os.getloadavg()[0],
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    results.update(measure(args.jobs))
    Path(args.out).write_text(json.dumps(results, indent=2))
    write_section(render(results))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

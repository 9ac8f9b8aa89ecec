"""Workers: N tiny jobs on one vs two Celery workers, one quick job embedded vs distributed, API p99 under load.

    python -m benchmarks.workers [--jobs 4] [--out benchmarks/workers.json]

Needs redis-server on PATH (Debian's package). Every figure is measured in this run on this machine; on a
machine shared with other work the wall times are noisy, so the runs are interleaved and reported as ratios.
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
TINY = {"model_name": "resnet18", "epochs": 1, "kd_epochs": 1, "finetune_epochs": 1, "max_samples": 200,
        "pruning_steps": 1, "pretrained": False}


class Setup:
    """An API (embedded or with a broker) and its workers, as processes on a fresh data dir."""

    def __init__(self, workers: int, broker: bool) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="kd-bench-"))
        self.procs: list[subprocess.Popen] = []
        env = {**os.environ, "KD_TORCH_THREADS": "1"}
        args = ["backend/app.py", "--data-dir", str(self.tmp / "data")]
        if broker:
            redis_port = _free_port()
            self._spawn([shutil.which("redis-server"), "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                        env)
            url = f"redis://127.0.0.1:{redis_port}/0"
            args += ["--broker", url]
            for i in range(workers):
                self._spawn([sys.executable, "-m", "backend.worker", "--broker", url, "--data-dir",
                             str(self.tmp / "data"), "--name", f"w{i}", "--loglevel", "WARNING"], env)
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
        time.sleep(15 if broker else 0)  # workers import torch before they take jobs

    def _spawn(self, argv: list, env: dict) -> None:
        self.procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))

    def run_jobs(self, n: int, *, probe: bool = False) -> dict:
        """Submit n tiny jobs (distinct seeds: no shared teacher) and time until all are finished."""
        started = time.monotonic()
        ids = [requests.post(f"{self.base}/train", json={**TINY, "seed": 100 + i}, timeout=10).json()["job_id"]
               for i in range(n)]
        latencies: list[float] = []
        while True:
            jobs = [requests.get(f"{self.base}/jobs/{i}", timeout=10).json() for i in ids]
            if all(j["state"] in ("succeeded", "failed", "cancelled") for j in jobs):
                break
            if probe:
                latencies += _probe(f"{self.base}/test", 2.0)
            else:
                time.sleep(0.5)
        out = {"wall_s": round(time.monotonic() - started, 2), "states": [j["state"] for j in jobs],
               "workers": sorted({j["worker"].get("name", "?") for j in jobs})}
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
    """The three comparisons; each setup is fresh (cold caches), the pairs run back to back."""
    results: dict = {}
    for label, workers, broker, n, probe in (("one_worker", 1, True, n_jobs, False),
                                             ("two_workers", 2, True, n_jobs, True),
                                             ("quick_embedded", 1, False, 1, False),
                                             ("quick_distributed", 1, True, 1, False)):
        setup = Setup(workers, broker)
        try:
            results[label] = setup.run_jobs(n, probe=probe)
        finally:
            setup.close()
    results["two_vs_one_worker_speedup"] = round(results["one_worker"]["wall_s"] / results["two_workers"]["wall_s"],
                                                 3)
    results["distributed_overhead_ratio"] = round(results["quick_distributed"]["wall_s"] /
                                                  results["quick_embedded"]["wall_s"], 3)
    return results


def main() -> None:
    """Run and write the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "workers.json"))
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is needed (apt-get install redis-server)")
    results = {"cpu_count": os.cpu_count(), "jobs": args.jobs, **measure(args.jobs)}
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Peak RSS of the whole service (server and every child process) for a big image upload at the standard preset.

python -m benchmarks.memory [--images 6000 50000] [--steps 3]

A real server is started; an .npz of N random 32x32 RGB images is uploaded through POST /upload; a resnet18 job
at the standard preset (224x224 inputs) is submitted; the process tree's RSS is sampled every 50 ms through the
data phase and the first `steps` teacher steps (where the old code had already materialised every image as
float32 at 224: 12.1 GB for 6,000 images), then the job is cancelled. Results go to benchmarks/memory.json and
the "Memory" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import requests

from benchmarks.server import _free_port, _wait_up

ROOT = Path(__file__).resolve().parent.parent
GOALS_MB = {6000: 2500, 50000: 4000}
MB = 1024 * 1024


class TreeSampler(threading.Thread):
    """Peak summed RSS of a process and all its descendants, sampled until stopped."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root, self.interval_s, self.peak, self._halt = psutil.Process(pid), interval_s, 0, threading.Event()

    def rss(self) -> int:
        total = 0
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, self.rss())
            self._halt.wait(self.interval_s)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


def _npz(n: int) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, x=rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), y=np.arange(n) % 10)
    return buf.getvalue()


def measure(n: int, steps: int, batch_size: int | None = None) -> dict:
    """Start a server, upload n images, run the data phase and `steps` teacher steps, cancel; peak tree RSS."""
    port = _free_port()
    api = f"http://127.0.0.1:{port}"
    data = _npz(n)
    with tempfile.TemporaryDirectory(prefix="kd-bench-memory-") as tmp:
        proc = subprocess.Popen(
            [sys.executable, "backend/app.py", "--port", str(port), "--data-dir", tmp, "--device", "cpu"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_up(api)
            sampler = TreeSampler(proc.pid)
            idle_mb = sampler.rss() / MB
            sampler.start()
            started = time.perf_counter()
            up = requests.post(f"{api}/upload", files={"file": ("big.npz", data)}, timeout=600)
            up.raise_for_status()
            job = requests.post(
                f"{api}/train",
                json={
                    "model_name": "resnet18",
                    "preset": "standard",
                    "dataset": up.json()["upload_id"],
                    "epochs": 1,
                    "pretrained": False,
                    **({"batch_size": batch_size} if batch_size else {}),
                },
            ).json()
            job_id, seen = job["job_id"], {}
            while True:
                seen = requests.get(f"{api}/jobs/{job_id}", timeout=30).json()
                progress = seen.get("progress") or {}
                if seen["state"] in ("failed", "succeeded", "cancelled") or (
                    seen.get("phase") == "teacher" and (progress.get("step") or 0) >= steps
                ):
                    break
                time.sleep(0.5)
            requests.post(f"{api}/cancel_training", json={"job_id": job_id}, timeout=30)
            peak_mb = sampler.stop() / MB
            return {
                "images": n,
                "batch_size": batch_size or "preset",
                "upload_mb": len(data) / MB,
                "idle_service_mb": idle_mb,
                "peak_service_mb": peak_mb,
                "goal_mb": GOALS_MB.get(n),
                "met": peak_mb < GOALS_MB.get(n, float("inf")),
                "float32_at_224_mb": n * 3 * 224 * 224 * 4 / MB,
                "teacher_steps_reached": progress.get("step"),
                "phase_reached": seen.get("phase"),
                "state": seen.get("state"),
                "error": seen.get("error"),
                "seconds": time.perf_counter() - started,
            }
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def render(results: list[dict], env: str) -> str:
    rows = "\n".join(
        f"| {r['images']:,} | {r.get('batch_size', 'preset')} | {r['upload_mb']:.0f} | {r['idle_service_mb']:.0f} | "
        f"{r['peak_service_mb']:.0f} | "
        f"{r['goal_mb']:,} | {'met' if r['met'] else '**missed**'} | {r['float32_at_224_mb']:,.0f} | "
        f"{r['phase_reached']} step {r['teacher_steps_reached']} | {r['seconds']:.0f} |"
        for r in results
    )
    return (
        "## Memory: big uploads at the standard preset\n\n"
        "Measured by `python -m benchmarks.memory` (raw figures in `benchmarks/memory.json`). A real server "
        "(`--device cpu`); an .npz of random 32x32 RGB images uploaded through `POST /upload`; resnet18 at the "
        "standard preset (224x224 inputs, augmentation on); RSS summed over the server and all its child "
        "processes, sampled every 50 ms from the upload through the data phase and the first teacher steps, "
        "then the job is cancelled. Images are kept as uint8 at 32x32 and resized per batch; the float32-at-224 "
        f"column is what materialising them took before (issue 13 saw 12.1 GB for 6,000 images). {env}\n\n"
        "| images | batch size | upload MB | idle service MB | peak service MB | goal MB | goal | float32 at 224 MB "
        "| reached | seconds |\n|---|---|---|---|---|---|---|---|---|---|\n" + rows + "\n"
    )


def write_section(section: str) -> None:
    """Replace (or append) the `## ` section titled by `section`'s first line in BENCHMARKS.md, leaving the rest."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    title = section.splitlines()[0]
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("--images", nargs="*", type=int, default=[6000, 50000])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, help="default: the standard preset's")
    args = parser.parse_args()
    from backend.runtime import cpu_model

    results = []
    for n in args.images:
        print(f"{n} images ...", flush=True)
        results.append(measure(n, args.steps, args.batch_size))
        print(json.dumps(results[-1]), flush=True)
    (ROOT / "benchmarks" / "memory.json").write_text(json.dumps(results, indent=2))
    env = (
        f"Machine: {cpu_model()}, {psutil.cpu_count()} cores shared with other work while measured, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
    )
    write_section(render(results, env))


if __name__ == "__main__":
    main()

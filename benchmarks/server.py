"""Server responsiveness while a job trains: REST latency, Socket.IO event rate, cancel delay."""

from __future__ import annotations

import itertools
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import socketio

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(samples), "p50_ms": statistics.median(samples), "p99_ms": pick(0.99), "max_ms": ordered[-1]}


def _probe(url: str, seconds: float) -> list[float]:
    """Latencies (ms) of GET url, one request every 50 ms for `seconds`."""
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        requests.get(url, timeout=10).raise_for_status()
        out.append((time.perf_counter() - started) * 1000)
        time.sleep(0.05)
    return out


def run(seconds: float = 20.0) -> dict:
    """Start a real server, measure idle, then while a job trains, then cancel it."""
    port = _free_port()
    api = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="kd-bench-server-") as tmp:
        proc = subprocess.Popen(
            [sys.executable, "backend/app.py", "--port", str(port), "--data-dir", tmp],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            return _measure(api, seconds)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def _wait_up(api: str, timeout_s: float = 120.0) -> None:
    """Wait for the first answer of GET /test (the first request imports torch: it can take seconds)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            requests.get(f"{api}/test", timeout=30).raise_for_status()
            return
        except requests.RequestException:
            time.sleep(0.5)
    raise RuntimeError(f"server at {api} did not answer within {timeout_s:.0f} s")


def _measure(api: str, seconds: float) -> dict:
    _wait_up(api)
    first = requests.post(f"{api}/train", json={"model_name": "mobilenetv2"}).json()["job_id"]
    requests.post(f"{api}/cancel_training", json={"job_id": first})  # a finished job to read while idle
    while requests.get(f"{api}/jobs/{first}").json().get("state") != "cancelled":
        time.sleep(0.1)
    idle = {"test": _probe(f"{api}/test", seconds / 2), "job": _probe(f"{api}/jobs/{first}", seconds / 2)}
    job = requests.post(f"{api}/train", json={"model_name": "mobilenetv2", "epochs": 30}).json()["job_id"]
    events: list[float] = []
    sio = socketio.Client()
    sio.on("training_progress", lambda p: events.append(time.monotonic()) if p.get("job_id") == job else None)
    sio.connect(api, wait_timeout=10)
    sio.call("join", {"job_id": job})
    while requests.get(f"{api}/jobs/{job}").json().get("phase") not in ("teacher",):
        time.sleep(0.5)
    time.sleep(2)  # training is under way
    busy: dict[str, list[float]] = {"test": [], "job": []}
    threads = [
        threading.Thread(target=lambda k=k, u=u: busy[k].extend(_probe(u, seconds)))
        for k, u in (("test", f"{api}/test"), ("job", f"{api}/jobs/{job}"))
    ]
    window_start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    window = [e for e in events if e >= window_start]
    gaps = [b - a for a, b in itertools.pairwise(window)]
    asked = time.perf_counter()
    requests.post(f"{api}/cancel_training", json={"job_id": job})
    while requests.get(f"{api}/jobs/{job}").json().get("state") != "cancelled":
        time.sleep(0.05)
    cancel_s = time.perf_counter() - asked
    sio.disconnect()
    return {
        "idle": {"GET /test": _percentiles(idle["test"]), "GET /jobs/<id>": _percentiles(idle["job"])},
        "training": {"GET /test": _percentiles(busy["test"]), "GET /jobs/<id>": _percentiles(busy["job"])},
        "progress_events_per_s": len(window) / seconds,
        "progress_max_gap_s": max(gaps) if gaps else None,
        "cancel_to_cancelled_s": cancel_s,
        "target_p99_ms_while_training": 100.0,
    }

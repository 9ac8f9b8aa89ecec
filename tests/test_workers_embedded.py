"""The embedded server as a real process: jobs in supervised worker processes, a locked data dir, clean stops.

SIGKILL of the local worker mid-job -> the job is failed with the reason, the API stays healthy and a fresh
worker trains the next job (then cancels it on request); a second server on the same data dir refuses to start; SIGTERM mid-job cancels the
running job ("server shutdown"), keeps the queued one and exits within 10 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from backend.jobs.store import JobStore
from tests.engine_helpers import SERVER_JOB
from tests.servers import ROOT, free_port, start_app, stop, until, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]

TINY = {**SERVER_JOB, "model_name": "resnet18"}
LONG = {**TINY, "epochs": 200, "seed": 7}  # a teacher phase long enough to act on


def job(base: str, job_id: str) -> dict:
    return requests.get(f"{base}/jobs/{job_id}", timeout=30).json()


@pytest.fixture()
def server(tmp_path):
    data_dir, log = tmp_path / "data", tmp_path / "server.log"
    proc, base = start_app(data_dir, log, env={"KD_TORCH_THREADS": "1"})
    wait_for(f"{base}/test", proc, timeout=300)
    yield {"proc": proc, "base": base, "data_dir": data_dir, "log": log}
    if proc.poll() is None:
        stop(proc)


def test_killed_worker_fails_its_job_and_the_next_job_runs(server):
    base = server["base"]
    doomed = requests.post(f"{base}/train", json=LONG, timeout=10).json()["job_id"]
    after = requests.post(f"{base}/train", json=TINY, timeout=10).json()["job_id"]
    running = until(lambda: (j := job(base, doomed))["phase"] == "teacher" and j, 300, "the job trains")
    worker = running["worker"]
    assert worker["mode"] == "local" and worker["device"] == "cpu" and worker["pid"] != server["proc"].pid
    os.kill(worker["pid"], signal.SIGKILL)  # what the out-of-memory killer does
    failed = until(lambda: (j := job(base, doomed))["state"] == "failed" and j, 60, "the job is marked")
    assert failed["error_type"] == "worker_lost" and "SIGKILL" in failed["error"]
    assert requests.get(f"{base}/test", timeout=10).status_code == 200  # the API is unharmed
    # A fresh worker process takes the next job and trains it through to pruning (measuring a finished job is
    # covered elsewhere); then it obeys a cancel like any worker.
    pruning = until(lambda: (j := job(base, after))["phase"] in ("prune", "evaluate") and j, 300, "next job prunes")
    assert pruning["state"] == "running" and pruning["worker"]["pid"] not in (worker["pid"], server["proc"].pid)
    assert requests.post(f"{base}/cancel_training", json={"job_id": after}, timeout=10).status_code == 200
    ended = until(lambda: (j := job(base, after))["state"] in ("cancelled", "succeeded", "failed") and j, 60, "ends")
    assert ended["state"] == "cancelled", ended.get("error")


def test_locked_data_dir_and_sigterm_mid_job(server):
    base, proc, data_dir = server["base"], server["proc"], server["data_dir"]
    second = subprocess.run(
        [sys.executable, "backend/app.py", "--port", str(free_port()), "--data-dir", str(data_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode != 0
    assert str(data_dir.resolve()) in second.stderr and f"PID {proc.pid}" in second.stderr
    assert requests.get(f"{base}/test", timeout=10).status_code == 200  # the first one is untouched

    running = requests.post(f"{base}/train", json=LONG, timeout=10).json()["job_id"]
    waiting = requests.post(f"{base}/train", json=TINY, timeout=10).json()["job_id"]
    until(lambda: job(base, running)["phase"] == "teacher", 300, "the job trains")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)
    assert time.monotonic() - started < 10
    store = JobStore(data_dir / "jobs.sqlite3")
    try:
        assert store.get(running).state == "cancelled" and store.get(running).error == "server shutdown"
        assert store.get(waiting).state == "queued"  # runs after the next start
    finally:
        store.close()
    assert "server shutdown" in server["log"].read_text()


def test_gunicorn_serves_rest_and_websocket_and_stops(tmp_path):
    import socketio

    port = free_port()
    env = {**os.environ, "KD_DATA_DIR": str(tmp_path / "data")}
    with open(tmp_path / "gunicorn.log", "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                "1",
                "--threads",
                "20",
                "--timeout",
                "120",
                "--graceful-timeout",
                "10",
                "-b",
                f"127.0.0.1:{port}",
                "backend.wsgi:app",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/test", proc, timeout=300)
        client = socketio.Client()
        client.connect(base, transports=["websocket"], wait_timeout=30)  # simple-websocket under gunicorn
        assert client.transport() == "websocket"
        client.disconnect()
        assert (tmp_path / "data" / "server.lock").read_text().strip().isdigit()  # the data dir is locked
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            stop(proc)

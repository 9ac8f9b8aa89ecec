"""Scale-out for real: redis-server, the API with --broker and two Celery workers, all as processes.

Three jobs at once succeed spread over both workers, with their events reaching a python-socketio client of
the API and the teacher trained once; cancel of a queued and of a running job; SIGKILL of a worker mid-job
(its job marked by the heartbeat reaper); the API restarted mid-job (the job completes and is served); Redis
restarted (every finished result still served byte for byte, and the next job runs).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.engine_helpers import SERVER_JOB
from tests.servers import free_port, stop, until, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]

ROOT = Path(__file__).resolve().parent.parent
REDIS = shutil.which("redis-server")
TINY = SERVER_JOB
LONG = {**TINY, "epochs": 200}


class Cluster:
    """redis-server + API + workers on one temporary data dir."""

    def __init__(self, tmp: Path) -> None:
        self.data_dir = tmp / "data"
        self.redis_port = free_port()
        self.broker = f"redis://127.0.0.1:{self.redis_port}/0"
        self.env = {**os.environ, "KD_TORCH_THREADS": "1", "KD_WORKER_TIMEOUT_S": "15", "PYTHONUNBUFFERED": "1"}
        self.procs: list[subprocess.Popen] = []
        self.workers: dict[str, subprocess.Popen] = {}
        self.api: subprocess.Popen | None = None
        self.base = ""

    def spawn(self, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.procs.append(proc)
        return proc

    def start_redis(self) -> None:
        import redis

        proc = subprocess.Popen(
            [REDIS, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        self.redis = proc
        until(lambda: _ping(redis.Redis(port=self.redis_port)), 20, "redis answers")

    def start_api(self) -> None:
        port = free_port()
        self.api = self.spawn(
            "backend/app.py", "--port", str(port), "--data-dir", str(self.data_dir), "--broker", self.broker
        )
        self.base = f"http://127.0.0.1:{port}"

    def start_worker(self, name: str) -> None:
        self.workers[name] = self.spawn(
            "-m",
            "backend.worker",
            "--broker",
            self.broker,
            "--data-dir",
            str(self.data_dir),
            "--name",
            name,
            "--loglevel",
            "WARNING",
        )

    def job(self, job_id: str) -> dict:
        return requests.get(f"{self.base}/jobs/{job_id}", timeout=30).json()

    def submit(self, options: dict) -> str:
        res = requests.post(f"{self.base}/train", json=options, timeout=10)
        assert res.status_code == 202, res.text
        return res.json()["job_id"]

    def finished(self, job_id: str, timeout: float) -> dict:
        return until(
            lambda: (j := self.job(job_id))["state"] in ("succeeded", "failed", "cancelled") and j,
            timeout,
            f"{job_id} finishes",
        )

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                stop(proc)


def _ping(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if REDIS is None:
        pytest.skip("redis-server is not installed (scripts/test.sh installs it)")
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start_redis()
        c.start_api()
        c.start_worker("w1")
        c.start_worker("w2")
        wait_for(f"{c.base}/test", c.api, timeout=300)
        yield c
    finally:
        c.close()


class Listener:
    """A python-socketio client of the API that joined some jobs' rooms."""

    def __init__(self, base: str) -> None:
        import socketio

        self.events: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.sio = socketio.Client()
        self.sio.on("*", self._record)
        self.sio.connect(base, wait_timeout=20)

    def _record(self, event, data) -> None:
        with self.lock:
            self.events.append((event, data))

    def join(self, job_id: str) -> None:
        ack = self.sio.call("join", {"job_id": job_id}, timeout=10)
        assert ack["ok"], ack

    def of(self, job_id: str, event: str) -> list[dict]:
        with self.lock:
            return [d for e, d in self.events if e == event and d.get("job_id") == job_id]


def test_three_jobs_spread_over_two_workers_with_events(cluster):
    listener = Listener(cluster.base)
    try:
        ids = [cluster.submit(TINY) for _ in range(3)]
        for job_id in ids:
            listener.join(job_id)
        jobs = [cluster.finished(job_id, 900) for job_id in ids]
        assert [j["state"] for j in jobs] == ["succeeded"] * 3, [j["error"] for j in jobs]
        assert {j["worker"]["name"] for j in jobs} == {"w1", "w2"}
        assert all(j["worker"]["host"] and j["worker"]["device"] == "cpu" for j in jobs)
        time.sleep(1.0)  # the last events travel through Redis
        for job_id in ids:
            assert listener.of(job_id, "training_progress"), job_id
            assert listener.of(job_id, "training_status")[-1]["phase"] == "done"
        sources = [
            requests.get(f"{cluster.base}/evaluate?job_id={i}", timeout=30).json()["metadata"]["teacher_source"]["kind"]
            for i in ids
        ]
        assert sorted(sources).count("trained") == 1 and sources.count("cache") == 2  # trained once
        res = requests.get(f"{cluster.base}/download?job_id={ids[-1]}", timeout=30)
        assert res.status_code == 200 and res.content[:2] == b"PK"
    finally:
        listener.sio.disconnect()


def test_cancel_queued_and_running_then_kill_a_worker(cluster):
    first, second = cluster.submit({**LONG, "seed": 11}), cluster.submit({**LONG, "seed": 12})
    queued = cluster.submit(TINY)
    until(lambda: all(cluster.job(j)["phase"] == "teacher" for j in (first, second)), 300, "both train")
    assert cluster.job(queued)["state"] == "queued"
    res = requests.post(f"{cluster.base}/cancel_training", json={"job_id": queued}, timeout=10)
    assert res.status_code == 200 and res.json()["state"] == "cancelled"
    started = time.monotonic()
    requests.post(f"{cluster.base}/cancel_training", json={"job_id": first}, timeout=30)
    assert cluster.finished(first, 10)["state"] == "cancelled" and time.monotonic() - started < 10

    victim = cluster.job(second)["worker"]["name"]
    cluster.workers[victim].send_signal(signal.SIGKILL)
    failed = cluster.finished(second, 60)
    assert failed["state"] == "failed" and failed["error_type"] == "worker_lost" and victim in failed["error"]
    time.sleep(2)
    assert cluster.job(queued)["state"] == "cancelled" and cluster.job(queued)["worker"] == {}  # never ran
    assert requests.get(f"{cluster.base}/test", timeout=10).status_code == 200


def test_api_restart_mid_job(cluster):
    job_id = cluster.submit(TINY)  # the teacher of the first test, cached: distil, prune and measure still run
    until(lambda: cluster.job(job_id)["state"] == "running", 300, "a worker takes it")
    stop(cluster.api)
    cluster.start_api()
    wait_for(f"{cluster.base}/test", cluster.api, timeout=300)
    done = cluster.finished(job_id, 900)
    assert done["state"] == "succeeded", done["error"]
    report = requests.get(f"{cluster.base}/evaluate?job_id={job_id}", timeout=30)
    assert report.status_code == 200 and report.json()["metadata"]["job_id"] == job_id
    json.dumps(report.json(), allow_nan=False)


def test_redis_restart_loses_no_result(cluster):
    """Redis holds only the queue: results live in the data dir, and API and workers reconnect."""
    jobs = requests.get(f"{cluster.base}/jobs?state=succeeded", timeout=30).json()["jobs"]
    finished = [j["id"] for j in jobs]
    assert len(finished) >= 4  # three spread over the workers, one across the API restart
    before = {j: requests.get(f"{cluster.base}/evaluate?job_id={j}", timeout=30).content for j in finished}
    stop(cluster.redis)
    cluster.start_redis()  # the same port, empty: nothing was persisted
    after = {j: requests.get(f"{cluster.base}/evaluate?job_id={j}", timeout=30).content for j in finished}
    assert after == before
    job_id = cluster.submit(TINY)  # through the restarted broker to a reconnected worker
    until(lambda: cluster.job(job_id)["state"] == "running", 120, "a worker takes the job after the restart")
    requests.post(f"{cluster.base}/cancel_training", json={"job_id": job_id}, timeout=30)
    assert cluster.finished(job_id, 30)["state"] == "cancelled"

"""The documented production server (gunicorn -c backend/gunicorn_conf.py 'backend.wsgi:app') under many clients.

- Twenty half-open connections (a request line and half the headers, then silence) do not stop GET /test from
  answering, and the server closes each of them once it has been silent for KD_REQUEST_TIMEOUT_S: no thread is
  held forever.
- Thirty Socket.IO clients (WebSocket) that joined one real job each receive every training_status event of
  the job, in order, the same sequence as a client that joined nothing. Timings are not asserted here:
  benchmarks/load.py measures them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from backend.kd.callbacks import PHASES
from tests.engine_helpers import SERVER_JOB
from tests.servers import ROOT, free_port, stop, until, wait_for

pytestmark = pytest.mark.slow

REQUEST_TIMEOUT_S = 2.0  # the test's KD_REQUEST_TIMEOUT_S: short, so the bound shows quickly
CLIENTS = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    env = {
        **os.environ,
        "KD_DATA_DIR": str(tmp / "data"),
        "KD_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
        "KD_TORCH_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    with open(tmp / "gunicorn.log", "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "backend/gunicorn_conf.py", "-b", f"127.0.0.1:{port}"]
            + ["backend.wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/test", proc, timeout=300)
        yield {"base": base, "port": port, "proc": proc}
    finally:
        stop(proc)


def _half_open(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET /test HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never finished
    return sock


def test_half_open_connections_neither_block_nor_stay(server):
    socks = [_half_open(server["port"]) for _ in range(20)]
    try:
        time.sleep(0.5)  # each has a thread reading its headers by now
        for _ in range(5):
            res = requests.get(f"{server['base']}/test", timeout=30)
            assert res.status_code == 200 and res.json()["status"] == "ok"
        opened = time.monotonic()
        for sock in socks:  # closed by the server once silent for REQUEST_TIMEOUT_S (recv: b"" = closed)
            sock.settimeout(max(1.0, REQUEST_TIMEOUT_S + 20 - (time.monotonic() - opened)))
            try:
                assert sock.recv(1024) == b""
            except ConnectionResetError:
                pass  # closed with a reset: freed all the same
    finally:
        for sock in socks:
            sock.close()
    assert requests.get(f"{server['base']}/test", timeout=30).status_code == 200


class _Client:
    """A python-socketio client over WebSocket recording the training_status events it receives."""

    def __init__(self, base: str) -> None:
        import socketio

        self.statuses: list[dict] = []
        self.lock = threading.Lock()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("training_status", self._on_status)
        self.sio.connect(base, transports=["websocket"], wait_timeout=30)

    def _on_status(self, data: dict) -> None:
        with self.lock:
            self.statuses.append(data)

    def phases(self, job_id: str) -> list[str]:
        with self.lock:
            return [d["phase"] for d in self.statuses if d.get("job_id") == job_id]


def test_every_joined_client_gets_every_status_in_order(server):
    base = server["base"]
    listener = _Client(base)  # joins nothing: hears every job
    clients = []
    try:
        for _ in range(CLIENTS):
            clients.append(_Client(base))  # connected before the job exists: they hear its "queued"
        res = requests.post(f"{base}/train", json=SERVER_JOB, timeout=30)
        assert res.status_code == 202, res.text
        job_id = res.json()["job_id"]
        for client in clients:  # narrows each to the job (the job's room is entered before "all" is left)
            assert client.sio.call("join", {"job_id": job_id}, timeout=30)["ok"]
        until(lambda: requests.get(f"{base}/jobs/{job_id}", timeout=30).json()["state"] != "running"
              and listener.phases(job_id)[-1:] in (["done"], ["failed"], ["cancelled"]), 900, "the job ends")  # fmt: skip
        state = requests.get(f"{base}/jobs/{job_id}", timeout=30).json()["state"]
        assert state == "succeeded"
        time.sleep(1.0)  # the last event reaches the last client
        expected = listener.phases(job_id)
        order = ["queued", *PHASES, "done"]
        assert expected[0] == "queued" and expected[-1] == "done"
        assert expected == sorted(expected, key=order.index) and len(set(expected)) == len(expected), expected
        for client in clients:
            assert client.phases(job_id) == expected  # every event, in order, once
    finally:
        for client in [listener, *clients]:
            client.sio.disconnect()

"""A real server process (python backend/app.py) and test_backend.py run against it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.servers import free_port, wait_for

pytestmark = pytest.mark.slow  # trains a job through a real server (about 60 s; DistilBERT, the cheapest)

ROOT = Path(__file__).resolve().parent.parent


def _wait_up(url: str, server: subprocess.Popen, timeout: float = 90) -> None:
    wait_for(f"{url}/test", server, timeout)


def test_backend_script_passes_against_a_real_server(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "backend/app.py", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_up(url, server)
        run = subprocess.run(
            [sys.executable, "test_backend.py", "--url", url, "--job-timeout", "500", "--model", "distilbert"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=560,
        )
        print(run.stdout)
        assert run.returncode == 0, run.stdout + run.stderr + (tmp_path / "server.log").read_text()[-3000:]
        assert "PASS connectivity" in run.stdout and " 0 failed" in run.stdout
        assert requests.get(f"{url}/jobs", timeout=10).json()["jobs"][0]["state"] == "succeeded"
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

"""A real server process (python backend/app.py) and test_backend.py run against it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from tests.servers import ROOT, start_app, stop, wait_for

pytestmark = pytest.mark.slow  # trains a job through a real server (about 60 s; DistilBERT, the cheapest)


def test_backend_script_passes_against_a_real_server(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server, url = start_app(tmp_path / "data", tmp_path / "server.log")
    try:
        wait_for(f"{url}/test", server, 90)
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
        stop(server)

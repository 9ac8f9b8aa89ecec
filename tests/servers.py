"""Real server processes for the tests that drive one from outside: starting, a free port, waiting, stopping."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(
    data_dir: Path,
    log: Path,
    *args: str,
    env: dict[str, str] | None = None,
    program: str = "backend/app.py",
) -> tuple[subprocess.Popen, str]:
    """`python backend/app.py` on a free loopback port with its own data dir; the process and its base URL.

    Output goes to the file `log`, not a pipe: an undrained pipe fills up and blocks the server's logging. `env`
    is added to this process's environment. `program`: another script that takes app.py's arguments (a launcher
    such as tests/throwaway_server.py), relative to the repository root."""
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, program, "--port", str(port), "--data-dir", str(data_dir), *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, f"http://127.0.0.1:{port}"


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until `url` answers 200; fails at once if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """Terminate, then kill if it does not go."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def until(predicate, timeout: float, what: str, every: float = 0.3):
    """predicate()'s first truthy value within `timeout` s (a request that fails counts as not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except requests.RequestException:  # a loaded machine can be slow to answer: ask again
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s: {what}")

"""Local worker processes of the embedded mode: the API supervises them, they run the jobs.

Each worker is a `spawn`ed process (a fresh interpreter: no copy of the API's threads or sockets) that
takes one job at a time over a pipe and sends the job's events back through it; the API emits them to the
clients that follow the job (backend/jobs/rooms.py). The job's state lives in the shared SQLite store,
which the worker writes itself. If a worker dies (SIGKILL, the out-of-memory killer, a crash in native
code) the pipe closes, the API marks its job failed with the reason at once, and the next job gets a
fresh worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import socket
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from backend.jobs.events import Emit
from backend.jobs.execute import execute_job
from backend.jobs.store import JobStore
from backend.runtime import set_torch_threads

log = logging.getLogger(__name__)
_CTX = multiprocessing.get_context("spawn")


class LocalWorker:
    """One supervised worker process that runs the jobs sent to it, one at a time."""

    def __init__(
        self,
        name: str,
        *,
        data_dir: Path,
        upload_dir: Path,
        torch_threads: int = 0,
        heartbeat_s: float = 1.0,
        progress_interval_s: float = 0.1,
        device: str | None = None,
    ) -> None:
        self.name = name
        self.settings = {
            "name": name,
            "data_dir": str(data_dir),
            "upload_dir": str(upload_dir),
            "torch_threads": int(torch_threads),
            "heartbeat_s": float(heartbeat_s),
            "progress_interval_s": float(progress_interval_s),
            "device": device,
        }
        self._proc: Any = None
        self._conn: Connection | None = None
        self._spawn_lock = threading.Lock()
        self.spawned = 0  # how many processes this slot has started (a fresh one after each death)

    @property
    def pid(self) -> int | None:
        """The current process's id, or None when none runs."""
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    def ensure_started(self) -> None:
        """Start the process if none runs (it imports the pipeline while it waits for a job)."""
        with self._spawn_lock:
            self._ensure()

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._close()
        parent, child = _CTX.Pipe()
        proc = _CTX.Process(target=_child_main, args=(child, self.settings), name=f"kd-{self.name}", daemon=True)
        proc.start()
        child.close()  # the parent keeps only its end: a dead child then reads as EOF
        self._proc, self._conn = proc, parent
        self.spawned += 1
        log.info("started local worker %s (pid %s)", self.name, proc.pid)

    def run(self, job_id: str, emit: Emit) -> tuple[str | None, str | None]:
        """Run a job in the worker; (final state or None, None) or (None, why the worker died)."""
        self.ensure_started()
        assert self._conn is not None
        relay = _Relay(emit)
        try:
            self._conn.send(("run", job_id))
            while True:
                if not self._conn.poll(0.5):
                    if not self._proc.is_alive():
                        raise EOFError
                    continue
                message = self._conn.recv()
                if message[0] == "emit":
                    relay.put(message[1:])
                elif message[0] == "done" and message[1] == job_id:
                    return message[2], None
        except (EOFError, OSError, BrokenPipeError):
            return None, self._death_reason()
        finally:
            relay.close()  # every event the job sent is emitted before its end is

    def _death_reason(self) -> str:
        proc = self._proc
        if proc is not None:
            proc.join(2)
        code = proc.exitcode if proc is not None else None
        self._close()
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = " (the system's out-of-memory killer sends it)" if -code == signal.SIGKILL else ""
            return f"the worker process running this job was killed by {name}{hint}"
        return f"the worker process running this job exited unexpectedly (exit code {code})"

    def stop(self, timeout: float = 3.0) -> None:
        """Ask the process to exit; terminate it, then kill it, if it does not."""
        proc, conn = self._proc, self._conn
        if proc is None:
            return
        try:
            if conn is not None:
                conn.send(("stop",))
        except (OSError, ValueError):
            pass
        proc.join(timeout * 0.5)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout * 0.25)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout * 0.25)
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
        self._proc, self._conn = None, None


class _Relay:
    """Emits a job's events, in the order the job sent them, from a thread of its own.

    The pipe from the worker is read at once and emitting (to every client that follows the job, under load
    from pollers too) happens beside it: a full pipe would block the job's `send`, so slow emitting would slow
    training. close() waits until every event queued has been emitted."""

    def __init__(self, emit: Emit) -> None:
        self._emit, self._queue = emit, queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="job-event-relay", daemon=True)
        self._thread.start()

    def put(self, event: tuple) -> None:
        self._queue.put(event)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            _safe_emit(self._emit, *event)


def _safe_emit(emit: Emit, event: str, payload: dict, room: str | None) -> None:
    try:
        emit(event, payload, room=room)
    except Exception:  # a broken listener must not stop the relay of the job
        log.exception("emit of %s failed", event)


def worker_identity(name: str, device: str | None, mode: str) -> dict[str, Any]:
    """What GET /jobs/<id> says about the process that ran a job."""
    if not device:
        try:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:  # pragma: no cover
            device = "cpu"
    return {"name": name, "host": socket.gethostname(), "device": device, "pid": os.getpid(), "mode": mode}


def _watch_parent(parent_pid: int) -> None:
    """Exit when the API process is gone (SIGKILLed), so no orphan keeps training."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(1)


def _child_main(conn: Connection, settings: dict[str, Any]) -> None:
    """The worker process: wait for job ids, run each, report back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal reaches the whole group: the API decides
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True, name="watch-parent").start()
    set_torch_threads(settings["torch_threads"])
    data_dir = Path(settings["data_dir"])
    store = JobStore(data_dir / "jobs.sqlite3")
    worker = worker_identity(settings["name"], settings.get("device"), "local")
    import backend.pipeline  # noqa: F401 - imported now, while no job waits for it

    lock = threading.Lock()

    def emit(event: str, payload: dict, room: str | None = None) -> None:
        with lock:  # the job's thread and its heartbeat thread both send
            conn.send(("emit", event, payload, room))

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] != "run":
            return
        state = execute_job(
            store,
            message[1],
            emit=emit,
            cache_dir=data_dir / "cache",
            upload_dir=Path(settings["upload_dir"]),
            worker=worker,
            heartbeat_s=settings["heartbeat_s"],
            progress_interval_s=settings["progress_interval_s"],
        )
        with lock:
            conn.send(("done", message[1], state))

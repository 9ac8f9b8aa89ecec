"""The job queue: submit, run in background workers, cancel, persist, recover after a restart."""
from __future__ import annotations

import gc
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from backend.jobconfig import JobConfig
from backend.jobs.events import Emit, JobRelay, jsonable
from backend.jobs.store import CANCELLED, FAILED, INTERRUPTED, QUEUED, RUNNING, SUCCEEDED, JobRecord, JobStore
from backend.kd.callbacks import JobCancelled

log = logging.getLogger(__name__)

Runner = Callable[..., Any]  # run_job(config, callbacks, *, job_id, out_dir, cache_dir, upload_dir) -> JobResult


class JobNotFound(LookupError):
    """No job has that id."""


class JobStateError(Exception):
    """The job is in a state that does not allow the operation (e.g. cancel a finished job)."""

    def __init__(self, message: str, state: str | None = None) -> None:
        super().__init__(message)
        self.state = state


@dataclass
class _Running:
    relay: JobRelay
    thread: str


def _no_emit(event: str, payload: dict, room: str | None = None) -> None:
    """Emitter used when nobody listens."""


def _default_runner(*args: Any, **kwargs: Any) -> Any:
    from backend.pipeline import run_job  # imported late: heavy, and the manager must start without it

    return run_job(*args, **kwargs)


class JobManager:
    """Queue and workers of training jobs; the source of truth is the SQLite store under data_dir."""

    def __init__(self, data_dir: str | Path, upload_dir: str | Path, *, emit: Emit | None = None,
                 workers: int = 1, torch_threads: int = 0, start: bool = True, runner: Runner | None = None,
                 cancel_wait_s: float = 5.0, heartbeat_s: float = 1.0, progress_interval_s: float = 0.1) -> None:
        self.data_dir, self.upload_dir = Path(data_dir), Path(upload_dir)
        self.jobs_dir, self.cache_dir = self.data_dir / "jobs", self.data_dir / "cache"
        for d in (self.jobs_dir, self.cache_dir, self.upload_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.store = JobStore(self.data_dir / "jobs.sqlite3")
        self._emit = emit or _no_emit
        self._runner = runner or _default_runner
        self.workers, self.torch_threads = max(1, int(workers)), int(torch_threads)
        self.cancel_wait_s, self.heartbeat_s, self.progress_interval_s = cancel_wait_s, heartbeat_s, progress_interval_s
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._running: dict[str, _Running] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._recover()
        if start:
            self.start()

    # -- lifecycle ------------------------------------------------------------------------------

    def _recover(self) -> None:
        interrupted, queued = self.store.recover()
        for job_id in interrupted:
            log.warning("job %s was running when the server stopped; marked failed (interrupted)", job_id)
        self._queue.extend(queued)

    def start(self) -> None:
        """Start the worker threads and the progress heartbeat."""
        with self._cond:
            if self._threads:
                return
            self._stopping = False
            for i in range(self.workers):
                self._threads.append(threading.Thread(target=self._work, name=f"kd-worker-{i}", daemon=True))
            self._threads.append(threading.Thread(target=self._beat, name="kd-heartbeat", daemon=True))
        for t in self._threads:
            t.start()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop running jobs, stop the workers and close the store. Queued jobs stay queued."""
        with self._cond:
            self._stopping = True
            for running in self._running.values():
                running.relay.stop_event.set()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        threads, self._threads = self._threads, []
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if not any(t.is_alive() for t in threads):
            self.store.close()

    # -- queries --------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        """A job by id; JobNotFound otherwise."""
        record = self.store.get(job_id) if isinstance(job_id, str) else None
        if record is None:
            raise JobNotFound(f"No job with id {job_id!r}.")
        return record

    def list_jobs(self, **filters: Any) -> list[JobRecord]:
        """Jobs, newest first (filters: state, model_name, limit)."""
        return self.store.list(**filters)

    def latest_succeeded(self, model_name: str | None = None) -> JobRecord | None:
        """The most recent succeeded job (of one model)."""
        return self.store.latest(SUCCEEDED, model_name)

    def latest_succeeded_per_model(self) -> dict[str, JobRecord]:
        """model -> its most recent succeeded job."""
        return self.store.latest_per_model(SUCCEEDED)

    def queue_length(self) -> int:
        """Jobs waiting to run."""
        with self._cond:
            return len(self._queue)

    def running_job_id(self) -> str | None:
        """The running job (the oldest, with several workers), or None."""
        with self._cond:
            return next(iter(self._running), None)

    def queue_position(self, job_id: str) -> int | None:
        """1 for the next job to run; None when the job is not queued."""
        with self._cond:
            return self._queue.index(job_id) + 1 if job_id in self._queue else None

    def report(self, record: JobRecord) -> dict[str, Any]:
        """The report of a succeeded job, read from its out_dir."""
        return json.loads(self.artifact_path(record, "report").read_text(encoding="utf-8"))

    def artifact_path(self, record: JobRecord, name: str) -> Path:
        """Absolute path of a job artifact; FileNotFoundError when missing."""
        if name not in record.artifacts or not record.out_dir:
            raise FileNotFoundError(f"Job {record.id} has no {name!r} artifact.")
        base = Path(record.out_dir).resolve()
        path = (base / record.artifacts[name]).resolve()
        if (base != path and base not in path.parents) or not path.exists():
            raise FileNotFoundError(f"Job {record.id}: the {name!r} artifact is missing.")
        return path

    # -- commands -------------------------------------------------------------------------------

    def submit(self, config: JobConfig) -> JobRecord:
        """Queue a validated job; it runs when a worker is free."""
        job_id = "job_" + uuid.uuid4().hex[:16]
        record = self.store.create(job_id, config.to_dict(), out_dir=str(self.jobs_dir / job_id))
        with self._cond:  # announced before a worker can take it, so "queued" always comes first
            self._queue.append(job_id)
            self._emit("training_status", {"job_id": job_id, "status": QUEUED, "phase": QUEUED,
                                           "model_name": config.model_name, "queue_position": len(self._queue)},
                       room=job_id)
            self._cond.notify_all()  # the heartbeat waits on this condition too
        return record

    def cancel(self, job_id: str | None = None) -> JobRecord:
        """Cancel a queued job at once, or stop a running one (waits up to cancel_wait_s for it to end)."""
        with self._cond:
            if job_id is None:
                job_id = next(iter(self._running), None)
                if job_id is None:
                    raise JobStateError("No job is running; name a job_id to cancel a queued one.")
            queued = job_id in self._queue
            if queued:
                self._queue.remove(job_id)
                self._finish(job_id, CANCELLED, error="cancelled before it started")
            running = self._running.get(job_id)
            if running is not None:
                running.relay.cancel_requested = True
                running.relay.stop_event.set()
        if queued:
            self._announce(job_id, CANCELLED)
            return self.get(job_id)
        if running is None:
            record = self.get(job_id)
            raise JobStateError(f"Job {job_id} already {record.state}; nothing to cancel.", record.state)
        return self.wait(job_id, self.cancel_wait_s)

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """Block until the job is finished or timeout passes; returns its record either way."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while job_id in self._running or job_id in self._queue:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left if left is not None else 1.0)
        return self.get(job_id)

    def run_next(self) -> str | None:
        """Run the next queued job in the calling thread (for tests that drive the queue)."""
        job_id = self._take(block=False)
        if job_id is not None:
            self._run(job_id)
        return job_id

    # -- workers --------------------------------------------------------------------------------

    def _work(self) -> None:
        _set_torch_threads(self.torch_threads)
        while True:
            job_id = self._take(block=True)
            if job_id is None:
                return
            try:
                self._run(job_id)
            except Exception:  # e.g. the store failed while recording the end: keep the worker alive
                log.exception("worker error after job %s", job_id)

    def _beat(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                relays = [r.relay for r in self._running.values()]
                self._cond.wait(min(0.25, self.heartbeat_s / 2))
            for relay in relays:
                try:
                    relay.heartbeat()
                except Exception:  # a broken listener must not stop the heartbeat
                    log.exception("heartbeat failed")

    def _take(self, *, block: bool) -> str | None:
        """Pop the next job and mark it running, atomically with respect to cancel()."""
        with self._cond:
            while not self._queue:
                if self._stopping or not block:
                    return None
                self._cond.wait(1.0)
            if self._stopping:
                return None
            job_id = self._queue.popleft()
            relay = JobRelay(job_id, self._emit, on_update=lambda **kw: self.store.update(job_id, **kw),
                             min_interval_s=self.progress_interval_s, heartbeat_s=self.heartbeat_s)
            self._running[job_id] = _Running(relay, threading.current_thread().name)
            self.store.update(job_id, state=RUNNING, phase="starting", started_at=time.time())
            return job_id

    def _run(self, job_id: str) -> None:
        relay = self._running[job_id].relay
        record = self.get(job_id)
        out_dir = Path(record.out_dir)
        try:
            config = JobConfig.from_dict(record.config)
            result = self._runner(config, relay, job_id=job_id, out_dir=out_dir, cache_dir=self.cache_dir,
                                  upload_dir=self.upload_dir)
            artifacts = _store_result(result, out_dir)
        except JobCancelled:
            if relay.cancel_requested or not self._stopping:
                self._end(job_id, CANCELLED, relay, error="cancelled while running")
            else:  # stopped by shutdown, not by a user: same as a restart
                self._end(job_id, FAILED, relay, error=INTERRUPTED, error_type="interrupted")
        except ValueError as exc:  # bad input found by the pipeline: the user's to fix
            self._end(job_id, FAILED, relay, error=str(exc) or type(exc).__name__, error_type="invalid_input")
        except MemoryError:
            self._end(job_id, FAILED, relay, error="out of memory; try a smaller max_samples or batch_size",
                      error_type="out_of_memory")
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self._end(job_id, FAILED, relay, error=f"{type(exc).__name__}: {exc}", error_type="error")
        else:
            done = {"job_id": job_id, "phase": "done", "percent": 100.0, "overall_percent": 100.0,
                    "elapsed_s": relay.elapsed_s()}
            self._end(job_id, SUCCEEDED, relay, artifacts=artifacts, summary=_summary(result.report), progress=done)
        finally:
            gc.collect()

    def _end(self, job_id: str, state: str, relay: JobRelay, **fields: Any) -> None:
        relay.close()
        with self._cond:
            self._running.pop(job_id, None)
            self._finish(job_id, state, phase_timings=relay.phase_timings, **fields)
        self._announce(job_id, state, fields.get("error"), fields.get("error_type"))

    def _finish(self, job_id: str, state: str, **fields: Any) -> None:
        """Record the final state and wake waiters (caller holds the condition)."""
        phase = "done" if state == SUCCEEDED else state
        self.store.update(job_id, state=state, phase=phase, finished_at=time.time(), **fields)
        self._cond.notify_all()

    def _announce(self, job_id: str, state: str, error: str | None = None, error_type: str | None = None) -> None:
        """Final events of a job: training_error (when failed), then training_status."""
        payload = {"job_id": job_id, "status": state, "phase": "done" if state == SUCCEEDED else state}
        if state == FAILED:
            payload["error"] = error
            self._emit("training_error", {"job_id": job_id, "message": error, "error_type": error_type}, room=job_id)
        self._emit("training_status", payload, room=job_id)


def _store_result(result: Any, out_dir: Path) -> dict[str, str]:
    """Artifacts of a finished job; writes report.json (atomically) if the pipeline did not."""
    artifacts = dict(getattr(result, "artifacts", None) or {})
    report_rel = artifacts.get("report", "report.json")
    report_path = out_dir / report_rel
    if not report_path.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = report_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(jsonable(result.report), indent=2, allow_nan=False), encoding="utf-8")
        os.replace(tmp, report_path)
    artifacts["report"] = report_rel
    return {str(k): str(v) for k, v in artifacts.items()}


def _summary(report: Any) -> dict[str, Any]:
    """A few headline figures for job lists, where the report has them."""
    if not isinstance(report, dict):
        return {}
    perf = report.get("student_model_performance") or {}
    derived = (report.get("teacher_vs_student_comparison") or {}).get("derived") or {}
    speedup = derived.get("speedup") if isinstance(derived.get("speedup"), dict) else {}
    picks = {"student_accuracy": perf.get("accuracy"), "student_f1_macro": perf.get("f1_macro"),
             "teacher_accuracy": derived.get("accuracy_teacher"),
             "compression_ratio": derived.get("compression_ratio"), "parameter_ratio": derived.get("parameter_ratio"),
             **{f"speedup_{k}": v for k, v in speedup.items()}}
    return jsonable({k: v for k, v in picks.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})


def _set_torch_threads(requested: int) -> None:
    """Leave a core to the web server unless told otherwise."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(requested if requested > 0 else max(1, (os.cpu_count() or 2) - 1))

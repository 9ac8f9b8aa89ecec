"""The job queue: submit, hand to worker processes, cancel, persist, recover after a restart."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from backend import cachefiles
from backend.jobconfig import JobConfig
from backend.jobs import disk
from backend.jobs.events import Emit
from backend.jobs.execute import SHUTDOWN, USER_CANCEL, Runner, announce, execute_job
from backend.jobs.local import LocalWorker, worker_identity
from backend.jobs.store import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, JobRecord, JobStore

log = logging.getLogger(__name__)


class JobNotFound(LookupError):
    """No job has that id."""


class ArtifactAltered(ValueError):
    """A job's artifact no longer matches the sha256 digest written at the end of the job (truncated, altered)."""


class JobStateError(Exception):
    """The job is in a state that does not allow the operation (e.g. cancel a finished job)."""

    def __init__(self, message: str, state: str | None = None) -> None:
        super().__init__(message)
        self.state = state


def _no_emit(event: str, payload: dict, room: str | None = None) -> None:
    """Emitter used when nobody listens."""


class JobManager:
    """Queue of training jobs run by supervised local worker processes; the SQLite store under data_dir is the
    source of truth.

    Training never runs in the process that holds the manager: each of `workers` slots owns a worker process
    (backend/jobs/local.py). `runner` is for unit tests only: given one, jobs run in a thread of this process
    with that runner instead of the pipeline (the served app never passes one).
    """

    def __init__(
        self,
        data_dir: str | Path,
        upload_dir: str | Path,
        *,
        emit: Emit | None = None,
        workers: int = 1,
        torch_threads: int = 0,
        start: bool = True,
        runner: Runner | None = None,
        cancel_wait_s: float = 5.0,
        heartbeat_s: float = 1.0,
        progress_interval_s: float = 0.1,
        device: str | None = None,
    ) -> None:
        self.data_dir, self.upload_dir = Path(data_dir), Path(upload_dir)
        self.jobs_dir, self.cache_dir = self.data_dir / "jobs", self.data_dir / "cache"
        for d in (self.jobs_dir, self.cache_dir, self.upload_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.store = JobStore(self.data_dir / "jobs.sqlite3")
        self._emit = emit or _no_emit
        self._runner = runner
        self.workers, self.torch_threads, self.device = max(1, int(workers)), int(torch_threads), device
        self.cancel_wait_s, self.heartbeat_s, self.progress_interval_s = cancel_wait_s, heartbeat_s, progress_interval_s
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._running: dict[str, threading.Event] = {}  # job id -> its stop flag (in this process)
        self._threads: list[threading.Thread] = []
        self.slots = (
            [
                LocalWorker(
                    f"local-{i}",
                    data_dir=self.data_dir,
                    upload_dir=self.upload_dir,
                    torch_threads=torch_threads,
                    heartbeat_s=heartbeat_s,
                    progress_interval_s=progress_interval_s,
                    device=device,
                )
                for i in range(self.workers)
            ]
            if runner is None
            else []
        )
        self._stopping = False
        self._recover()
        self.retention = disk.Retention()
        self.clean_leftovers()  # before any worker starts: nothing can be writing yet
        if start:
            self.start()

    # -- lifecycle ------------------------------------------------------------------------------

    def _recover(self) -> None:
        interrupted, queued = self.store.recover()
        for job_id in interrupted:
            log.warning("job %s was running when the server stopped; marked failed (interrupted)", job_id)
        self._queue.extend(queued)

    def start(self) -> None:
        """Start the threads that hand queued jobs to the worker processes (spawned when a job comes)."""
        with self._cond:
            if self._threads:
                return
            self._stopping = False
            for i in range(self.workers):
                self._threads.append(threading.Thread(target=self._work, args=(i,), name=f"kd-slot-{i}", daemon=True))
        for t in self._threads:
            t.start()

    def prewarm(self) -> None:
        """Start the worker processes now (in the background), so the first job does not wait for their imports."""

        def warm() -> None:
            for slot in self.slots:
                with self._cond:
                    if self._stopping:
                        return
                slot.ensure_started()

        threading.Thread(target=warm, name="kd-prewarm", daemon=True).start()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel running jobs (reason "server shutdown"), stop the workers, close the store; queued jobs stay
        queued and run after the next start."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
            for job_id, stop in self._running.items():
                self.store.request_cancel(job_id, SHUTDOWN)
                stop.set()
            self._cond.notify_all()
        threads, self._threads = self._threads, []
        for t in threads:  # a cancelled job ends within a step or two; keep time to stop the processes
            t.join(max(0.0, deadline - time.monotonic() - 3.0))
        for slot in self.slots:  # the time left, shared: a stop never takes longer than asked
            slot.stop(timeout=max(0.5, (deadline - time.monotonic() - 0.5) / max(1, len(self.slots))))
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

    def broker_state(self) -> str | None:
        """ "up" or "down" for the job broker; None when jobs need none (local workers)."""
        return None

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
        """Absolute path of a job artifact; FileNotFoundError when missing, ArtifactAltered when it does not match
        the digest the job wrote (jobs finished before digests were kept are served unchecked)."""
        if name not in record.artifacts or not record.out_dir:
            raise FileNotFoundError(f"Job {record.id} has no {name!r} artifact.")
        base = Path(record.out_dir).resolve()
        path = (base / record.artifacts[name]).resolve()
        if (base != path and base not in path.parents) or not path.exists():
            raise FileNotFoundError(f"Job {record.id}: the {name!r} artifact is missing.")
        problem = cachefiles.check_file(base, record.artifacts[name])
        if problem is not None:
            log.warning("job %s: artifact %s fails its digest check: %s", record.id, name, problem)
            raise ArtifactAltered(f"Job {record.id}: the {name} file was changed after the job wrote it ({problem}).")
        return path

    # -- commands -------------------------------------------------------------------------------

    def submit(self, config: JobConfig) -> JobRecord:
        """Queue a validated job; it runs when a worker is free."""
        job_id = "job_" + uuid.uuid4().hex[:16]
        record = self.store.create(job_id, config.to_dict(), out_dir=str(self.jobs_dir / job_id))
        with self._cond:  # announced before a worker can take it, so "queued" always comes first
            self._queue.append(job_id)
            self._emit(
                "training_status",
                {
                    "job_id": job_id,
                    "status": QUEUED,
                    "phase": QUEUED,
                    "model_name": config.model_name,
                    "queue_position": len(self._queue),
                },
                room=job_id,
            )
            self._cond.notify_all()
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
                self.store.finish_if_unfinished(job_id, CANCELLED, error="cancelled before it started")
                self._cond.notify_all()
            stop = self._running.get(job_id)
            if stop is not None:
                self.store.request_cancel(job_id, USER_CANCEL)  # crosses to the worker process
                stop.set()
        if queued:
            announce(self._relay_emit, job_id, CANCELLED)
            return self.get(job_id)
        if stop is None:
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
            self._run(job_id, 0)
        return job_id

    # -- workers --------------------------------------------------------------------------------

    def _relay_emit(self, event: str, payload: dict, room: str | None = None) -> None:
        """Emit through the current emitter (looked up per call: tests wrap it after construction)."""
        self._emit(event, payload, room=room)

    def _work(self, slot: int) -> None:
        while True:
            job_id = self._take(block=True)
            if job_id is None:
                return
            try:
                self._run(job_id, slot)
            except Exception:  # e.g. the store failed while recording the end: keep the slot alive
                log.exception("worker slot error after job %s", job_id)

    def _take(self, *, block: bool) -> str | None:
        """Pop the next job and mark it taken, atomically with respect to cancel()."""
        with self._cond:
            while not self._queue:
                if self._stopping or not block:
                    return None
                self._cond.wait(1.0)
            if self._stopping:
                return None
            job_id = self._queue.popleft()
            self._running[job_id] = threading.Event()
            return job_id

    def _run(self, job_id: str, slot: int) -> None:
        try:
            if self._runner is not None:  # unit tests only: a scripted runner in this process
                execute_job(
                    self.store,
                    job_id,
                    emit=self._relay_emit,
                    cache_dir=self.cache_dir,
                    upload_dir=self.upload_dir,
                    worker=worker_identity("in-process", "cpu", "thread"),
                    runner=self._runner,
                    stop_event=self._running[job_id],
                    heartbeat_s=self.heartbeat_s,
                    progress_interval_s=self.progress_interval_s,
                )
            else:
                _, died = self.slots[slot].run(job_id, self._relay_emit)
                if died is not None:
                    self._worker_died(job_id, died)
        finally:
            with self._cond:
                self._running.pop(job_id, None)
                self._cond.notify_all()
            self._after_job()

    def _worker_died(self, job_id: str, reason: str) -> None:
        """Record the end of a job whose worker process died; the slot spawns a fresh one for the next job."""
        if self._stopping:  # killed by our own shutdown: the job was being cancelled anyway
            if self.store.finish_if_unfinished(job_id, CANCELLED, error=SHUTDOWN):
                announce(self._relay_emit, job_id, CANCELLED, SHUTDOWN)
            return
        log.error("job %s: %s", job_id, reason)
        if self.store.finish_if_unfinished(job_id, FAILED, error=reason, error_type="worker_lost"):
            announce(self._relay_emit, job_id, FAILED, reason, "worker_lost")

    # -- disk -----------------------------------------------------------------------------------

    def delete(self, job_id: str) -> None:
        """Remove a finished job: its row and its folder (report, bundle, plots, ...). 409 material otherwise."""
        with self._cond:  # no worker can take or finish a job meanwhile
            record = self.get(job_id)
            if job_id in self._queue or job_id in self._running or not record.finished:
                raise JobStateError(
                    f"Job {job_id} is {record.state}; cancel it first (POST /cancel_training "
                    "with its job_id), then delete it.",
                    record.state,
                )
            trash = disk.move_to_trash(self._folder_of(record))
            self.store.delete(job_id)
        disk.remove(trash)

    def _folder_of(self, record: JobRecord) -> Path:
        """The job's folder; always the one under jobs_dir, whatever the row says."""
        folder = Path(record.out_dir) if record.out_dir else self.jobs_dir / record.id
        return folder if disk.inside(self.jobs_dir, folder) and folder != self.jobs_dir else self.jobs_dir / record.id

    def jobs_using_upload(self, upload_id: str) -> list[str]:
        """Queued or running jobs that use an upload as dataset or teacher_upload_id."""
        active = self.store.list(state=QUEUED, limit=10**6) + self.store.list(state=RUNNING, limit=10**6)
        return [r.id for r in active if upload_id in (r.config.get("dataset"), r.config.get("teacher_upload_id"))]

    def clean_leftovers(self) -> list[str]:
        """Remove staging/temporary files and partial folders an earlier, killed run left (see disk.clean_leftovers)."""
        rows = self.store.list(limit=10**9)
        interrupted = [r.id for r in rows if r.state == FAILED and r.error_type == "interrupted" and not r.artifacts]
        return disk.clean_leftovers(
            self.upload_dir,
            self.jobs_dir,
            self.cache_dir,
            known_jobs=[r.id for r in rows],
            interrupted_jobs=interrupted,
        )

    def set_retention(self, retention: disk.Retention) -> list[str]:
        """Set what to keep and apply it now; returns the ids of the jobs deleted."""
        self.retention = retention
        return self.apply_retention()

    def apply_retention(self, now: float | None = None) -> list[str]:
        """Delete finished jobs past retain_jobs / retain_days (as DELETE does) and bound the teacher cache."""
        keep, now = self.retention, time.time() if now is None else now
        doomed: list[str] = []
        if keep.retain_jobs > 0 or keep.retain_days > 0:
            finished = [r for r in self.store.list(limit=10**9) if r.finished]  # newest first
            for rank, record in enumerate(finished):
                too_many = keep.retain_jobs > 0 and rank >= keep.retain_jobs
                too_old = (
                    keep.retain_days > 0 and (record.finished_at or record.created_at) < now - keep.retain_days * 86400
                )
                if too_many or too_old:
                    doomed.append(record.id)
        for job_id in doomed:
            try:
                self.delete(job_id)
            except (JobNotFound, JobStateError):  # deleted meanwhile by a user
                pass
        if doomed:
            log.info("retention: deleted %d finished job(s): %s", len(doomed), ", ".join(doomed[:20]))
        for kind in ("teachers", "students"):  # each bounded by the same settings
            disk.prune_model_cache(self.cache_dir / kind, max_entries=keep.cache_max_entries, max_mb=keep.cache_max_mb)
        return doomed

    def _after_job(self) -> None:
        """Retention after a job ends; a failure here must never take the worker down."""
        try:
            self.apply_retention()
        except Exception:
            log.exception("retention after a job failed")

"""Scale-out on Celery + Redis: the API queues each job as a Celery task; `python -m backend.worker` runs them.

The SQLite store in the shared data dir stays the one source of truth. A worker claims a job in the store
before running it (so a job cancelled while it waited in the broker, or delivered twice, never runs), beats a
heartbeat into its row while it runs, and polls the row's cancel column between steps. The API fails the jobs
of workers whose heartbeat stops (SIGKILL, out of memory, a lost machine). Events reach clients through
Flask-SocketIO's message queue on the same Redis. Nothing here imports torch.

A lost broker: while Redis does not answer, `broker_state()` is "down" (the API refuses new jobs with 503).
Redis holds only the messages, so a Redis that restarts comes back empty: the API's watch notices the new
server (its `run_id` changed) and sends every job the store still calls queued again, in order. A message
that was not lost after all is then delivered twice, which the claim in the store makes harmless. A job
running meanwhile goes on in its worker (its events are dropped while Redis is away) and is recorded by it,
or failed by the heartbeat watch if the worker went too.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from backend.jobconfig import JobConfig
from backend.jobs.events import Emit
from backend.jobs.execute import USER_CANCEL, announce
from backend.jobs.manager import JobManager, JobStateError
from backend.jobs.store import CANCELLED, FAILED, QUEUED, RUNNING, JobRecord

log = logging.getLogger(__name__)
TASK_NAME = "kd.run_job"
QUEUE_NAME = "kd-jobs"


def make_celery(broker_url: str) -> Celery:
    """The Celery app shared by the API (sends) and the workers (run): one job at a time, no prefetching."""
    app = Celery("kd_pruning", broker=broker_url)
    app.conf.update(
        task_acks_late=True,  # a job's message goes back to the broker if its worker dies before the end
        worker_prefetch_multiplier=1,  # a busy worker holds no second long job that another could run
        worker_concurrency=1,
        task_ignore_result=True,  # results live in the data dir, not in Redis
        task_default_queue=QUEUE_NAME,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # A message unacknowledged this long is delivered again (the claim in the store makes that harmless).
        broker_transport_options={"visibility_timeout": 24 * 3600},
    )
    return app


class BrokerJobManager(JobManager):
    """JobManager whose jobs go to Celery workers; queue and running state are read from the shared store."""

    def __init__(
        self,
        data_dir: str | Path,
        upload_dir: str | Path,
        *,
        broker_url: str,
        emit: Emit | None = None,
        start: bool = True,
        cancel_wait_s: float = 5.0,
        worker_timeout_s: float = 30.0,
        **_local_only: Any,
    ) -> None:
        self.broker_url, self.worker_timeout_s = broker_url, float(worker_timeout_s)
        self.celery = make_celery(broker_url)
        # Short timeouts: a health check or an admission must not hang on a broker that went away.
        self._redis = redis.Redis.from_url(broker_url, socket_connect_timeout=1.0, socket_timeout=1.0)
        self._broker_run_id: str | None = None  # the Redis server last seen: a new one lost every message
        self._stop_reaper = threading.Event()
        self._reaper: threading.Thread | None = None
        super().__init__(data_dir, upload_dir, emit=emit, start=start, cancel_wait_s=cancel_wait_s, workers=1)
        self.slots = []  # no local workers: training happens in the Celery workers

    def _recover(self) -> None:
        """Nothing to redo: queued jobs wait in the broker, running ones belong to live workers (or the reaper)."""

    def clean_leftovers(self) -> list[str]:
        """Leftovers are removed only while no job is queued or running: workers elsewhere may be writing."""
        if self.store.list(state=QUEUED, limit=1) or self.store.list(state=RUNNING, limit=1):
            return []
        return super().clean_leftovers()

    def start(self) -> None:
        """Start the reaper that fails the jobs of workers that stopped beating."""
        if self._reaper is None:
            self._stop_reaper.clear()
            self._reaper = threading.Thread(target=self._reap, name="kd-reaper", daemon=True)
            self._reaper.start()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the reaper and close the store; the workers' jobs go on (a restarted API shows them)."""
        self._stop_reaper.set()
        if self._reaper is not None:
            self._reaper.join(timeout)
            self._reaper = None
        self.store.close()

    # -- queries from the store -------------------------------------------------------------------

    def broker_state(self) -> str:
        """ "up" when Redis answers a PING now, else "down"."""
        try:
            return "up" if self._redis.ping() else "down"
        except redis.RedisError:
            return "down"

    def queue_length(self) -> int:
        """Jobs waiting for a worker."""
        return len(self.store.queued_ids())

    def running_job_id(self) -> str | None:
        """The oldest running job, or None."""
        rows = self.store.list(state=RUNNING, limit=1, newest_first=False)
        return rows[0].id if rows else None

    def queue_position(self, job_id: str) -> int | None:
        """1 for the next job a worker takes; None when not queued."""
        queued = self.store.queued_ids()
        return queued.index(job_id) + 1 if job_id in queued else None

    # -- commands -------------------------------------------------------------------------------

    def submit(self, config: JobConfig) -> JobRecord:
        """Record the job, announce it, and send it to the broker (the API checks broker_state() first)."""
        job_id = "job_" + uuid.uuid4().hex[:16]
        record = self.store.create(job_id, config.to_dict(), out_dir=str(self.jobs_dir / job_id))
        self._emit(
            "training_status",
            {
                "job_id": job_id,
                "status": QUEUED,
                "phase": QUEUED,
                "model_name": config.model_name,
                "queue_position": self.queue_position(job_id),
            },
            room=job_id,
        )
        try:
            self.celery.send_task(TASK_NAME, args=[job_id], task_id=job_id, queue=QUEUE_NAME)
        except Exception:  # the broker went away since the API's admission check: the job stays queued, accepted,
            # and is sent again when the broker is back (resend_if_broker_restarted)
            log.warning("job %s accepted but not sent: the broker is unreachable; it is sent when it is back", job_id)
            self._broker_run_id = None
        return self.get(record.id)

    def cancel(self, job_id: str | None = None) -> JobRecord:
        """Cancel a job waiting in the broker at once (revoked, and skipped by any worker), or stop a running one."""
        if job_id is None:
            job_id = self.running_job_id()
            if job_id is None:
                raise JobStateError("No job is running; name a job_id to cancel a queued one.")
        self.get(job_id)  # JobNotFound
        self.store.request_cancel(job_id, USER_CANCEL)  # set first: a worker claiming it now stops at once
        if self.store.cancel_queued(job_id, "cancelled before it started"):
            try:  # not while the broker is down (Celery would retry its connection): the store says enough
                if self.broker_state() == "up":
                    self.celery.control.revoke(job_id)
            except Exception:  # the store already says cancelled: a worker that gets it skips it
                log.warning("revoke of %s failed", job_id, exc_info=True)
            announce(self._relay_emit, job_id, CANCELLED)
            return self.get(job_id)
        record = self.get(job_id)
        if record.state != RUNNING:
            raise JobStateError(f"Job {job_id} already {record.state}; nothing to cancel.", record.state)
        return self.wait(job_id, self.cancel_wait_s)

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """Poll the store until the job is finished or timeout passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self.get(job_id)
            if record.finished or (deadline is not None and time.monotonic() >= deadline):
                return record
            time.sleep(0.2)

    def run_next(self) -> str | None:
        """Not available: Celery workers take the jobs."""
        raise JobStateError("jobs run on Celery workers in this mode")

    def _reap(self) -> None:
        period = max(0.5, min(5.0, self.worker_timeout_s / 4))
        while not self._stop_reaper.wait(period):
            try:
                for record in self.store.stale_running(self.worker_timeout_s):
                    self._worker_lost(record)
                self.resend_if_broker_restarted()
            except Exception:  # a busy or closed database: try again next round
                log.exception("reaper round failed")

    def resend_if_broker_restarted(self) -> list[str]:
        """Send the queued jobs again when the Redis server is a new one (or seen for the first time since this API
        started); returns their ids. Nothing while Redis is down."""
        try:
            run_id = self._redis.info("server").get("run_id")
        except redis.RedisError:
            return []
        if run_id == self._broker_run_id:
            return []
        queued = self.store.queued_ids()  # oldest first: the broker's order stays the submission order
        for job_id in queued:
            self.celery.send_task(TASK_NAME, args=[job_id], task_id=job_id, queue=QUEUE_NAME)
        self._broker_run_id = run_id
        if queued:
            log.warning("the broker is a new Redis server: sent %d queued job(s) again", len(queued))
        return queued

    def _worker_lost(self, record: JobRecord) -> None:
        who = record.worker or {}
        reason = (
            f"worker {who.get('name', '?')} on {who.get('host', '?')} stopped sending heartbeats for "
            f"{self.worker_timeout_s:g} s (killed, out of memory, or its machine was lost)"
        )
        if self.store.finish_if_unfinished(record.id, FAILED, error=reason, error_type="worker_lost"):
            log.error("job %s: %s", record.id, reason)
            announce(self._relay_emit, record.id, FAILED, reason, "worker_lost")

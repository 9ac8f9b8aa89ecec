"""Run one queued job wherever a worker lives: claim it in the store, run it, record and announce the end.

The same function runs in a local worker process, a Celery worker and (for unit tests only) a thread of
the manager. The SQLite store is the one source of truth: the claim is atomic (queued -> running), the
running job beats a heartbeat into its row, and a cancel is a column the job polls between steps.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.jobconfig import JobConfig
from backend.jobs import disk
from backend.jobs.events import Emit, JobRelay, jsonable
from backend.jobs.store import CANCELLED, FAILED, FINISHED, SUCCEEDED, JobStore
from backend.kd.callbacks import JobCancelled

log = logging.getLogger(__name__)

Runner = Callable[..., Any]  # run_job(config, callbacks, *, job_id, out_dir, cache_dir, upload_dir) -> JobResult
USER_CANCEL = "cancelled while running"
SHUTDOWN = "server shutdown"


def default_runner(*args: Any, **kwargs: Any) -> Any:
    """The real pipeline, imported late: heavy, and the API process never needs it."""
    from backend.pipeline import run_job

    return run_job(*args, **kwargs)


class StoreRelay(JobRelay):
    """A JobRelay whose stop flag is also the store's cancel column (polled, so it crosses processes)."""

    def __init__(self, job_id: str, emit: Emit, store: JobStore, *, poll_s: float = 0.25, **kwargs: Any) -> None:
        super().__init__(job_id, emit, on_update=lambda **kw: store.update(job_id, **kw), **kwargs)
        self._store, self._poll_s, self._polled = store, poll_s, float("-inf")
        self.cancel_reason: str | None = None

    def should_stop(self) -> bool:
        """True once a cancel was set here or in the store."""
        if self.stop_event.is_set():
            return True
        now = time.monotonic()
        if now - self._polled >= self._poll_s:
            self._polled = now
            reason = self._store.cancel_reason(self.job_id)
            if reason:
                self.cancel_reason = reason
                self.stop_event.set()
        return self.stop_event.is_set()


def announce(emit: Emit, job_id: str, state: str, error: str | None = None, error_type: str | None = None) -> None:
    """Final events of a job: training_error (when failed), then training_status."""
    payload: dict[str, Any] = {"job_id": job_id, "status": state, "phase": "done" if state == SUCCEEDED else state}
    if state == FAILED:
        payload["error"] = error
        emit("training_error", {"job_id": job_id, "message": error, "error_type": error_type}, room=job_id)
    elif state == CANCELLED and error:
        payload["reason"] = error
    emit("training_status", payload, room=job_id)


def execute_job(
    store: JobStore,
    job_id: str,
    *,
    emit: Emit,
    cache_dir: Path,
    upload_dir: Path,
    worker: dict[str, Any],
    runner: Runner | None = None,
    stop_event: threading.Event | None = None,
    heartbeat_s: float = 1.0,
    progress_interval_s: float = 0.1,
    store_beat_s: float = 2.0,
) -> str | None:
    """Claim and run one job; returns its final state, or None when it was not queued (taken or cancelled)."""
    if not store.claim(job_id, worker):
        log.info("job %s is not queued any more; skipped", job_id)
        return None
    record = store.get(job_id)
    relay = StoreRelay(job_id, emit, store, min_interval_s=progress_interval_s, heartbeat_s=heartbeat_s)
    if stop_event is not None:
        relay.stop_event = stop_event
    beating = threading.Event()
    beat = threading.Thread(
        target=_beat,
        args=(store, job_id, relay, beating, heartbeat_s, store_beat_s),
        name=f"beat-{job_id}",
        daemon=True,
    )
    beat.start()
    out_dir = Path(record.out_dir)
    try:
        config = _on_device(JobConfig.from_dict(record.config), worker.get("device"))
        result = (runner or default_runner)(
            config, relay, job_id=job_id, out_dir=out_dir, cache_dir=cache_dir, upload_dir=upload_dir
        )
        artifacts = _store_result(result, out_dir)
    except JobCancelled:
        reason = relay.cancel_reason or store.cancel_reason(job_id) or USER_CANCEL
        return _end(store, emit, relay, beating, CANCELLED, error=reason)
    except MemoryError:
        return _end(
            store,
            emit,
            relay,
            beating,
            FAILED,
            error="out of memory; try a smaller max_samples or batch_size",
            error_type="out_of_memory",
        )
    except Exception as exc:
        # bad input found by the pipeline (a ValueError) is the user's to fix, unless its words say the disk is full
        folders = () if isinstance(exc, ValueError) else (out_dir, cache_dir, upload_dir)
        if disk.is_disk_full(exc, folders):
            message = _disk_full(job_id, exc, out_dir, cache_dir, upload_dir)
            return _end(store, emit, relay, beating, FAILED, error=message, error_type="disk_full")
        if isinstance(exc, ValueError):
            return _end(
                store, emit, relay, beating, FAILED, error=str(exc) or type(exc).__name__, error_type="invalid_input"
            )
        log.exception("job %s failed", job_id)
        return _end(store, emit, relay, beating, FAILED, error=f"{type(exc).__name__}: {exc}", error_type="error")
    finally:
        gc.collect()
    done = {
        "job_id": job_id,
        "phase": "done",
        "percent": 100.0,
        "overall_percent": 100.0,
        "elapsed_s": relay.elapsed_s(),
    }
    return _end(
        store, emit, relay, beating, SUCCEEDED, artifacts=artifacts, summary=_summary(result.report), progress=done
    )


def _disk_full(job_id: str, exc: Exception, out_dir: Path, cache_dir: Path, upload_dir: Path) -> str:
    """Remove the job's partial files (freeing what it wrote, so its end can be recorded) and say where the disk
    is full: the data dir (the parent of its cache), or the upload dir where that has less free space.

    The frames of the failure are cleared first: a half-written file still open in one of them (torch.save's
    writer) would otherwise keep its blocks after it is deleted."""
    seen: set[int] = set()
    failure: BaseException | None = exc
    while failure is not None and id(failure) not in seen:
        seen.add(id(failure))
        traceback.clear_frames(failure.__traceback__)
        failure = failure.__cause__ or failure.__context__
    disk.remove_tree(out_dir)
    fullest = min((cache_dir.parent, upload_dir), key=disk.free_bytes)  # a tie names the data dir
    log.error("job %s: disk full (%s: %s); its partial files were removed", job_id, type(exc).__name__, exc)
    return disk.disk_full_message(fullest)


def _end(store: JobStore, emit: Emit, relay: JobRelay, beating: threading.Event, state: str, **fields: Any) -> str:
    relay.close()
    beating.set()
    phase = "done" if state == SUCCEEDED else state
    if not store.finish_if_unfinished(relay.job_id, state, phase=phase, phase_timings=relay.phase_timings, **fields):
        # Someone else wrote the end first (the API marked the worker lost): theirs stands.
        current = store.get(relay.job_id)
        log.warning("job %s already %s; result of this run not recorded", relay.job_id, current and current.state)
        return current.state if current else state
    announce(emit, relay.job_id, state, fields.get("error"), fields.get("error_type"))
    return state


def _beat(
    store: JobStore, job_id: str, relay: JobRelay, stop: threading.Event, heartbeat_s: float, store_beat_s: float
) -> None:
    """Progress heartbeats to clients, and the liveness stamp in the store that tells the API we are alive."""
    last_store = time.monotonic()
    while not stop.wait(min(0.25, heartbeat_s / 2)):
        try:
            relay.heartbeat()
            if time.monotonic() - last_store >= store_beat_s:
                last_store = time.monotonic()
                store.update(job_id, heartbeat_at=time.time())
        except Exception:  # a broken listener or a busy database must not stop the beat
            log.exception("heartbeat of job %s failed", job_id)


def _on_device(config: JobConfig, device: str | None) -> JobConfig:
    """The worker's device for a job that left it to the worker."""
    if device and config.device in (None, "", "auto"):
        return config.replace(device=device)
    return config


def _store_result(result: Any, out_dir: Path) -> dict[str, str]:
    """Artifacts of a finished job, as the pipeline wrote and named them (name -> path under out_dir)."""
    return {str(k): str(v) for k, v in (getattr(result, "artifacts", None) or {}).items()}


def _summary(report: Any) -> dict[str, Any]:
    """A few headline figures for job lists, where the report has them."""
    if not isinstance(report, dict):
        return {}
    perf = report.get("student_model_performance") or {}
    derived = (report.get("teacher_vs_student_comparison") or {}).get("derived") or {}
    speedup = derived.get("speedup") if isinstance(derived.get("speedup"), dict) else {}
    picks = {
        "student_accuracy": perf.get("accuracy"),
        "student_f1_macro": perf.get("f1_macro"),
        "teacher_accuracy": derived.get("accuracy_teacher"),
        "compression_ratio": derived.get("compression_ratio"),
        "parameter_ratio": derived.get("parameter_ratio"),
        **{f"speedup_{k}": v for k, v in speedup.items()},
    }
    return jsonable({k: v for k, v in picks.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})


def is_finished(state: str | None) -> bool:
    """True for succeeded, failed, cancelled."""
    return state in FINISHED

"""JobManager on its own: states, events, throttling, heartbeat, cancellation, failures, restart recovery.

A scripted runner stands in for the pipeline here so that timing is exact; tests/test_api_jobs_real.py
runs the real pipeline.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time

import pytest

from backend.jobconfig import JobConfig
from backend.jobs import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    JobManager,
    JobNotFound,
    JobStateError,
    JobStore,
    jsonable,
)
from backend.jobs.store import INTERRUPTED
from backend.kd.callbacks import CallbackList
from tests.fake_jobs import finished


class Recorder:
    """An emit() that records (event, payload, room)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict, str | None, float]] = []
        self.lock = threading.Lock()

    def __call__(self, event, payload, room=None):
        with self.lock:
            self.events.append((event, payload, room, time.monotonic()))

    def of(self, event: str) -> list[dict]:
        with self.lock:
            return [p for e, p, _, _ in self.events if e == event]

    def statuses(self, job_id: str) -> list[str]:
        return [p["phase"] for p in self.of("training_status") if p["job_id"] == job_id]


def scripted(steps: int = 3, step_s: float = 0.0, fail: Exception | None = None, phases=("data", "teacher")):
    """A runner that walks phases and steps through the callbacks like the pipeline does."""

    def run(config, callbacks, *, job_id, out_dir, cache_dir, upload_dir):
        cb = CallbackList(callbacks)
        for phase in phases:
            cb.check_stop()
            cb.on_phase_start(phase, {"phase": phase})
            for step in range(1, steps + 1):
                time.sleep(step_s)
                cb.on_step_end(phase, step, steps, {"loss": 1.0 / step, "kd_loss": float("nan")}, 1.0)
                cb.check_stop()
            cb.on_metrics(phase, {"val_accuracy": 0.5})
            cb.on_phase_end(phase, {"seconds": 0.01})
        if fail is not None:
            raise fail
        return finished(
            out_dir,
            {"student_model_performance": {"accuracy": 0.9}, "metadata": {"job_id": job_id}},
            {"bundle": ("bundle.zip", b"PK")},
        )

    return run


def config(**extra) -> JobConfig:
    return JobConfig.from_dict({"model_name": "resnet18", "max_samples": 100, **extra})


@pytest.fixture()
def make(tmp_path):
    managers = []

    def _make(runner=None, start=False, **kwargs):
        rec = Recorder()
        manager = JobManager(
            tmp_path / "data", tmp_path / "uploads", emit=rec, runner=runner or scripted(), start=start, **kwargs
        )
        managers.append(manager)
        return manager, rec

    yield _make
    for manager in managers:
        manager.shutdown()


def test_job_succeeds_with_event_sequence_and_artifacts(make):
    manager, rec = make()
    job = manager.submit(config())
    assert job.state == QUEUED and manager.queue_length() == 1 and manager.queue_position(job.id) == 1
    assert manager.run_next() == job.id
    done = manager.get(job.id)
    assert done.state == SUCCEEDED and done.phase == "done" and done.error is None
    assert rec.statuses(job.id) == ["queued", "data", "teacher", "done"]
    assert manager.report(done)["metadata"]["job_id"] == job.id  # the report.json it wrote
    assert set(done.artifacts) == {"bundle", "report"} and done.summary == {"student_accuracy": 0.9}
    assert done.phase_timings == {"data": 0.01, "teacher": 0.01}
    assert done.started_at and done.finished_at >= done.started_at
    assert all(p["job_id"] == job.id for _, p, _, _ in rec.events)
    assert all(room == job.id for _, _, room, _ in rec.events)
    progress = rec.of("training_progress")
    assert progress[-1]["step"] == 3 and progress[-1]["percent"] == 100.0 and progress[-1]["loss"] == 1 / 3
    assert progress[-1]["kd_loss"] is None  # NaN never reaches a client
    assert [m["metrics"]["val_accuracy"] for m in rec.of("training_metrics")] == [0.5, 0.5]
    assert manager.latest_succeeded().id == job.id and manager.latest_succeeded("distilbert") is None


def test_failed_job_keeps_the_service_going(make):
    manager, rec = make(runner=scripted(fail=RuntimeError("boom in teacher")))
    bad, good = manager.submit(config()), manager.submit(config())
    manager._runner = scripted(fail=RuntimeError("boom in teacher"))
    manager.run_next()
    manager._runner = scripted()
    manager.run_next()
    bad, good = manager.get(bad.id), manager.get(good.id)
    assert bad.state == FAILED and bad.error == "RuntimeError: boom in teacher" and bad.error_type == "error"
    assert good.state == SUCCEEDED
    assert rec.statuses(bad.id)[-1] == "failed"
    assert rec.of("training_error")[0] == {
        "job_id": bad.id,
        "message": "RuntimeError: boom in teacher",
        "error_type": "error",
    }


def test_bad_input_and_out_of_memory_are_named(make):
    manager, _ = make(runner=scripted(fail=ValueError("CSV has one class")))
    job = manager.submit(config())
    manager.run_next()
    assert manager.get(job.id).error == "CSV has one class" and manager.get(job.id).error_type == "invalid_input"
    manager._runner = scripted(fail=MemoryError())
    job = manager.submit(config())
    manager.run_next()
    assert manager.get(job.id).error_type == "out_of_memory"


def test_progress_is_throttled(make):
    manager, rec = make(runner=scripted(steps=2000, step_s=0.0005, phases=("distill",)))
    job = manager.submit(config())
    start = time.monotonic()
    manager.run_next()
    elapsed = time.monotonic() - start
    progress = rec.of("training_progress")
    assert manager.get(job.id).state == SUCCEEDED
    assert len(progress) <= elapsed * 10 + 3, (len(progress), elapsed)  # about 10 a second at most
    assert progress[-1]["step"] == 2000  # the last step always goes out


def test_heartbeat_covers_slow_steps(make):
    manager, rec = make(runner=scripted(steps=2, step_s=2.5, phases=("teacher",)), start=True, heartbeat_s=1.0)
    job = manager.submit(config())
    assert manager.wait(job.id, 20).state == SUCCEEDED
    times = [t for e, p, _, t in rec.events if e == "training_progress"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 4 and max(gaps) < 2.0, gaps
    assert any(p["heartbeat"] for p in rec.of("training_progress"))


def test_cancel_running_job_stops_it_within_seconds(make):
    slow, quick, slow_ids = scripted(steps=10_000, step_s=0.01), scripted(), set()

    def runner(config, callbacks, **kwargs):
        return (slow if kwargs["job_id"] in slow_ids else quick)(config, callbacks, **kwargs)

    manager, rec = make(runner=runner)
    job = manager.submit(config())
    slow_ids.add(job.id)
    follower = manager.submit(config())
    manager.start()
    deadline = time.monotonic() + 10
    while manager.running_job_id() != job.id and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    record = manager.cancel()  # default: the running job
    assert time.monotonic() - started < 3
    assert record.id == job.id and record.state == CANCELLED and record.phase == "cancelled"
    assert rec.statuses(job.id)[-1] == "cancelled"
    assert manager.wait(follower.id, 20).state == SUCCEEDED  # the next queued job ran
    with pytest.raises(JobStateError):
        manager.cancel(job.id)  # already finished: untouched
    assert manager.get(job.id).state == CANCELLED


def test_cancel_queued_job_and_errors(make):
    manager, rec = make()
    first, second = manager.submit(config()), manager.submit(config())
    record = manager.cancel(second.id)
    assert record.state == CANCELLED and manager.queue_length() == 1
    assert rec.statuses(second.id) == ["queued", "cancelled"]
    assert manager.run_next() == first.id and manager.run_next() is None
    with pytest.raises(JobStateError):
        manager.cancel()  # nothing running
    with pytest.raises(JobNotFound):
        manager.cancel("job_nope")
    with pytest.raises(JobStateError):
        manager.cancel(first.id)


def test_restart_marks_interrupted_and_keeps_results(make, tmp_path):
    manager, _ = make()
    done, running, waiting = manager.submit(config()), manager.submit(config()), manager.submit(config())
    manager.run_next()
    manager.store.update(running.id, state=RUNNING, phase="distill")  # as if the process died mid-job
    manager._queue.remove(running.id)
    manager.shutdown()

    again, _ = make()
    assert again.get(done.id).state == SUCCEEDED and again.report(again.get(done.id))
    interrupted = again.get(running.id)
    assert interrupted.state == FAILED and interrupted.error == INTERRUPTED and interrupted.error_type == "interrupted"
    assert again.queue_length() == 1 and again.queue_position(waiting.id) == 1  # queued jobs wait again
    assert again.run_next() == waiting.id and again.get(waiting.id).state == SUCCEEDED


def test_shutdown_during_a_job_cancels_it_and_keeps_the_queue(make):
    manager, rec = make(runner=scripted(steps=10_000, step_s=0.01), start=True)
    job, waiting = manager.submit(config()), manager.submit(config())
    deadline = time.monotonic() + 10
    while manager.running_job_id() != job.id and time.monotonic() < deadline:
        time.sleep(0.02)
    manager.shutdown()
    store = JobStore(manager.data_dir / "jobs.sqlite3")
    assert store.get(job.id).state == CANCELLED and store.get(job.id).error == "server shutdown"
    assert store.get(waiting.id).state == QUEUED  # runs after the next start
    store.close()
    assert rec.of("training_status")[-1] == {
        "job_id": job.id,
        "status": CANCELLED,
        "phase": CANCELLED,
        "reason": "server shutdown",
    }


def test_store_latest_per_model_and_listing(tmp_path):
    store = JobStore(tmp_path / "j.sqlite3")
    for i, model in enumerate(["resnet18", "distilbert", "resnet18"]):
        store.create(f"job_{i}", {"model_name": model}, out_dir=str(tmp_path))
        store.update(f"job_{i}", state=SUCCEEDED)
    assert {m: r.id for m, r in store.latest_per_model().items()} == {"distilbert": "job_1", "resnet18": "job_2"}
    assert [r.id for r in store.list(limit=2)] == ["job_2", "job_1"]
    assert store.count(SUCCEEDED) == 3
    public = store.get("job_0").to_public()
    assert public["created_at"].endswith("Z") and "out_dir" not in public
    store.close()


def test_jsonable_makes_strict_json():
    import numpy as np
    import torch

    data = jsonable(
        {"a": float("inf"), "b": np.float32(1.5), "c": torch.tensor([1, 2]), "d": (np.int64(3),), 1: math.nan}
    )
    assert data == {"a": None, "b": 1.5, "c": [1, 2], "d": [3], "1": None}
    json.dumps(data, allow_nan=False)

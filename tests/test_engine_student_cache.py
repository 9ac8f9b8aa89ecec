"""The teacher and distilled-student caches: a second job with another sparsity reuses both."""
from __future__ import annotations

import threading

import pytest

from backend.kd.callbacks import CallbackList, Callbacks, JobCancelled
from backend.pipeline import cache_lock
from tests.engine_helpers import tiny_job

OPTIONS = {"pretrained": False, "max_samples": 200, "pruning_steps": 1, "latency_runs": 30}


@pytest.mark.slow
def test_second_sparsity_reuses_teacher_and_student(tmp_path, one_torch_thread):
    first = tiny_job(tmp_path, "resnet18", job_id="job-a", sparsity=0.3, **OPTIONS).report["metadata"]
    second = tiny_job(tmp_path, "resnet18", job_id="job-b", sparsity=0.6, **OPTIONS).report
    meta = second["metadata"]
    assert first["teacher_source"]["kind"] == "trained" and first["student_source"]["kind"] == "distilled"
    assert meta["teacher_source"]["kind"] == "cache"
    assert meta["teacher_source"]["cache_key"] == first["teacher_source"]["cache_key"]
    assert meta["student_source"]["kind"] == "cache"
    assert meta["student_source"]["cache_key"] == first["student_source"]["cache_key"]
    assert second["pruning_analysis"]["target_sparsity"] == 0.6


def test_cache_lock_waits_and_stays_cancellable(tmp_path):
    path = tmp_path / "cache" / "entry"
    stop = threading.Event()

    class Stopper(Callbacks):
        def should_stop(self) -> bool:
            return stop.is_set()

    cb = CallbackList(Stopper())
    with cache_lock(path, cb):
        outcome: list[str] = []

        def waiter() -> None:
            try:
                with cache_lock(path, cb, poll_s=0.05):
                    outcome.append("acquired")
            except JobCancelled:
                outcome.append("cancelled")

        thread = threading.Thread(target=waiter)
        thread.start()
        thread.join(0.3)
        assert thread.is_alive() and outcome == []  # held by us: it waits
        stop.set()
        thread.join(5)
    assert outcome == ["cancelled"]
    stop.clear()
    with cache_lock(path, cb):  # released by both
        pass

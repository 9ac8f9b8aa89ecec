"""The pieces that make several processes safe on one data dir: atomic claims, cancel columns, heartbeats,
the data-dir lock and the teacher-cache lock."""

from __future__ import annotations

import os
import threading
import time

import pytest

from backend.jobs.store import CANCELLED, FAILED, RUNNING, JobStore
from backend.lifecycle import DataDirLock, DataDirLocked
from backend.models.teachers import cache_lock


@pytest.fixture()
def store(tmp_path):
    s = JobStore(tmp_path / "jobs.sqlite3")
    s.create("job_a", {"model_name": "resnet18"}, out_dir=str(tmp_path / "a"))
    yield s
    s.close()


def test_claim_is_atomic_across_connections(store, tmp_path):
    other = JobStore(tmp_path / "jobs.sqlite3")  # another process's connection to the same file
    try:
        assert store.claim("job_a", {"name": "w1"}) is True
        assert other.claim("job_a", {"name": "w2"}) is False  # delivered twice: runs once
        record = other.get("job_a")
        assert record.state == RUNNING and record.worker == {"name": "w1"} and record.heartbeat_at
        assert other.cancel_queued("job_a", "x") is False  # too late to cancel as queued
    finally:
        other.close()


def test_cancel_queued_then_no_worker_can_claim(store):
    assert store.cancel_queued("job_a", "cancelled before it started") is True
    assert store.claim("job_a", {"name": "w1"}) is False
    assert store.get("job_a").state == CANCELLED and store.get("job_a").worker == {}


def test_cancel_column_heartbeat_and_first_final_state_wins(store):
    store.claim("job_a", {"name": "w1"})
    assert store.cancel_reason("job_a") is None
    store.request_cancel("job_a", "server shutdown")
    assert store.cancel_reason("job_a") == "server shutdown"
    store.update("job_a", heartbeat_at=time.time() - 100)
    assert [r.id for r in store.stale_running(30)] == ["job_a"]
    assert store.finish_if_unfinished("job_a", FAILED, error="worker lost") is True
    assert store.finish_if_unfinished("job_a", "succeeded") is False  # a late worker does not overwrite it
    assert store.get("job_a").state == FAILED and store.stale_running(30) == []
    public = store.get("job_a").to_public()
    assert "cancel_reason" not in public and public["heartbeat_at"].endswith("Z")


def test_old_database_gains_the_new_columns(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "old.sqlite3")
    db.execute(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, model_name TEXT NOT NULL, "
        "dataset TEXT, config TEXT NOT NULL, state TEXT NOT NULL, phase TEXT NOT NULL, progress TEXT NOT "
        "NULL DEFAULT '{}', created_at REAL NOT NULL, started_at REAL, finished_at REAL, error TEXT, "
        "error_type TEXT, out_dir TEXT, artifacts TEXT NOT NULL DEFAULT '{}', phase_timings TEXT NOT NULL "
        "DEFAULT '{}', summary TEXT NOT NULL DEFAULT '{}')"
    )
    db.execute(
        "INSERT INTO jobs (id, seq, model_name, config, state, phase, created_at) VALUES "
        "('job_old', 1, 'resnet18', '{}', 'queued', 'queued', 1.0)"
    )
    db.commit()
    db.close()
    store = JobStore(tmp_path / "old.sqlite3")
    try:
        assert store.get("job_old").worker == {} and store.claim("job_old", {"name": "w"})
    finally:
        store.close()


def test_data_dir_lock_names_dir_and_pid(tmp_path):
    first = DataDirLock(tmp_path / "d").acquire()
    try:
        with pytest.raises(DataDirLocked) as err:
            DataDirLock(tmp_path / "d").acquire()
        assert str((tmp_path / "d").resolve()) in str(err.value) and f"PID {os.getpid()}" in str(err.value)
    finally:
        first.release()
    DataDirLock(tmp_path / "d").acquire().release()  # free again once released


def test_teacher_cache_lock_serialises_and_checks_for_cancel(tmp_path):
    key = tmp_path / "teachers" / "abc"
    order, checks = [], []
    holding = threading.Event()

    def first():
        with cache_lock(key):
            holding.set()
            time.sleep(0.6)
            order.append("first done")

    t = threading.Thread(target=first)
    t.start()
    holding.wait(5)
    with cache_lock(key, check=lambda: checks.append(1), poll_s=0.05):
        order.append("second in")
    t.join()
    assert order == ["first done", "second in"] and len(checks) >= 3

    class Stop(Exception):
        pass

    def cancelled():
        raise Stop

    with cache_lock(key):  # held here; a cancelled waiter gives up instead of waiting
        done = []

        def waiter():
            try:
                with cache_lock(key, check=cancelled, poll_s=0.05):
                    done.append("entered")
            except Stop:
                done.append("stopped")

        w = threading.Thread(target=waiter)
        w.start()
        w.join(5)
    assert done == ["stopped"]

"""Concurrent writers on one jobs database: the API and two worker processes under a burst of submits and cancels.

The "API" here is this process making the store calls the API makes (create; request_cancel then cancel_queued,
as BrokerJobManager.cancel does), plus a reader polling as GET /jobs does. The two workers are real processes
running backend.jobs.execute.execute_job, as a Celery worker does, with a scripted runner in place of the
pipeline that beats progress into the store every few milliseconds. Afterwards every job's history must be one
legal path, each job must have run at most once, and no process may have met "database is locked".
"""

from __future__ import annotations

import logging
import multiprocessing
import random
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from backend.jobs.execute import execute_job
from backend.jobs.store import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, SUCCEEDED, JobStore
from backend.kd.callbacks import JobCancelled

pytestmark = pytest.mark.slow  # two spawned processes and a 30-job burst: about 15 s
JOBS = 30
CONFIG = {"model_name": "resnet18"}
LEGAL = ([QUEUED, CANCELLED], [QUEUED, RUNNING, SUCCEEDED], [QUEUED, RUNNING, CANCELLED], [QUEUED, RUNNING, FAILED])


def scripted_runner(config, callbacks, *, job_id, out_dir, cache_dir, upload_dir):
    """Ten 30 ms steps with progress (stored each step), stopping when asked; notes each run in out_dir/runs."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "runs", "a") as runs:
        runs.write("run\n")
    callbacks.on_phase_start("distill", {"total_steps": 10})
    for step in range(1, 11):
        if callbacks.should_stop():
            raise JobCancelled()
        time.sleep(0.03)
        callbacks.on_step_end("distill", step, 10, {"loss": 1.0 / step}, None)
    callbacks.on_phase_end("distill", {})
    (out_dir / "report.json").write_text("{}")  # the pipeline's result, as small as it gets (no torch to import)
    return SimpleNamespace(report={}, out_dir=out_dir, artifacts={"report": "report.json"})


class _Errors(logging.Handler):
    def __init__(self, path: Path) -> None:
        super().__init__(logging.WARNING)
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        with open(self.path, "a") as out:
            out.write(f"{record.getMessage()} {record.exc_text or ''}\n")


def worker_main(name: str, db: str, tmp: str, done_flag: str) -> None:
    """Take queued jobs until told to stop and nothing is queued; every warning or error goes to a file."""
    tmp_path = Path(tmp)
    handler = _Errors(tmp_path / f"{name}.errors")
    handler.setFormatter(logging.Formatter())
    logging.getLogger().addHandler(handler)
    store = JobStore(db)
    rng = random.Random(name)
    (tmp_path / f"{name}.ready").touch()
    try:
        while True:
            queued = store.queued_ids()
            if not queued:
                if Path(done_flag).exists():
                    return
                time.sleep(0.005)
                continue
            execute_job(  # both workers go for the same few jobs: the claim decides
                store,
                rng.choice(queued[:2]),
                emit=lambda *a, **k: None,
                cache_dir=tmp_path / "cache",
                upload_dir=tmp_path / "uploads",
                worker={"name": name, "host": "test", "device": "cpu", "pid": 0, "mode": "celery"},
                runner=scripted_runner,
                heartbeat_s=0.02,
                progress_interval_s=0.0,
                store_beat_s=0.02,
            )
    except Exception:
        logging.getLogger(name).exception("worker loop failed")
    finally:
        store.close()


def test_burst_of_submits_and_cancels_with_two_workers(tmp_path):
    db = str(tmp_path / "jobs.sqlite3")
    api = JobStore(db)
    ctx = multiprocessing.get_context("spawn")
    done_flag = tmp_path / "done"
    workers = [ctx.Process(target=worker_main, args=(f"w{i}", db, str(tmp_path), str(done_flag))) for i in (1, 2)]
    for w in workers:
        w.start()
    api_errors: list[BaseException] = []
    stop_reading = threading.Event()

    def reader() -> None:  # GET /jobs and GET /jobs/<id> while everything writes
        while not stop_reading.is_set():
            try:
                for record in api.list(limit=100):
                    api.history(record.id)
            except Exception as exc:  # noqa: BLE001 - any error is a failure of the test
                api_errors.append(exc)
            time.sleep(0.005)

    reading = threading.Thread(target=reader, daemon=True)
    reading.start()
    rng = random.Random(25)
    ids: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("w*.ready"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # both workers have imported and wait
        for i in range(JOBS):
            job_id = f"job_{i:02d}"
            api.create(job_id, CONFIG, out_dir=str(tmp_path / "jobs" / job_id))
            ids.append(job_id)
            if rng.random() < 0.4:  # a cancel, of a running job or a queued one (whichever there is)
                first, second = rng.sample((RUNNING, QUEUED), 2)
                pool = api.list(state=first, limit=100) or api.list(state=second, limit=100)
            else:
                pool = []
            for victim in [r.id for r in pool][:1]:
                api.request_cancel(victim, "cancelled while running")  # what BrokerJobManager.cancel does
                api.cancel_queued(victim, "cancelled before it started")
            time.sleep(rng.uniform(0.0, 0.06))
        done_flag.touch()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(not api.get(j).finished for j in ids):
            time.sleep(0.05)
        for w in workers:
            w.join(30)
    finally:
        stop_reading.set()
        reading.join(5)
        for w in workers:
            if w.is_alive():
                w.kill()

    assert [w.exitcode for w in workers] == [0, 0]
    assert not api_errors, api_errors
    logged = "".join(p.read_text() for p in tmp_path.glob("w*.errors"))
    assert "database is locked" not in logged and "failed" not in logged, logged
    states, workers_used = {}, set()
    for job_id in ids:
        record = api.get(job_id)
        history = [h["state"] for h in api.history(job_id)]
        assert record.state in FINISHED, (job_id, record.state)
        assert history in LEGAL and history[-1] == record.state, (job_id, history, record.state)
        runs = tmp_path / "jobs" / job_id / "runs"
        ran = len(runs.read_text().splitlines()) if runs.exists() else 0
        assert ran == (1 if RUNNING in history else 0), (job_id, ran, history)  # never twice, never unrecorded
        states[job_id] = tuple(history)
        workers_used.update([record.worker.get("name")] if record.worker else [])
    # The burst exercised what it is meant to: both workers ran jobs, and cancels hit queued and running jobs.
    paths = set(states.values())
    api.close()
    assert {(QUEUED, RUNNING, SUCCEEDED), (QUEUED, CANCELLED), (QUEUED, RUNNING, CANCELLED)} <= paths, paths
    assert workers_used == {"w1", "w2"}

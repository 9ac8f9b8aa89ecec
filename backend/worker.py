"""A Celery worker that runs training jobs: python -m backend.worker --broker redis://HOST:6379/0 --data-dir DIR.

One job at a time, no prefetching (a long job never waits behind another on a busy worker). It shares the
API's data dir (jobs database, uploads, teacher cache: one machine, or a shared mount) and emits the jobs'
Socket.IO events through Flask-SocketIO's message queue on the same Redis, as a write-only emitter. Start as
many as you like, on any machine that mounts the data dir; stop them at any time (a killed worker's job is
marked failed by the API when its heartbeat stops).

A start-up error (a broker URL that is not a Redis URL, a data dir whose jobs database cannot be opened: not a
folder, not writable, locked past the busy timeout) prints `error: <message>` and exits 1; `--debug` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sqlite3
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as a script: python backend/worker.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.config import load_config
from backend.jobs.execute import execute_job
from backend.jobs.local import worker_identity
from backend.jobs.store import JobStore
from backend.runtime import set_torch_threads


def socketio_emitter(broker_url: str):
    """emit(event, payload, room=job_id) through the message queue (write-only), to the same rooms as the API's
    own emitter (backend/jobs/rooms.py): the clients that joined nothing and those that joined the job or its
    study, once each."""
    from flask_socketio import SocketIO

    from backend.jobs.rooms import job_event_rooms

    sio = SocketIO(message_queue=broker_url)

    def emit(event: str, payload: dict[str, Any], room: str | None = None) -> None:
        sio.emit(event, payload, namespace="/", to=job_event_rooms(room))

    return emit


def build_worker(
    broker_url: str,
    data_dir: str | Path,
    *,
    upload_dir: str | Path | None = None,
    name: str | None = None,
    device: str | None = None,
    torch_threads: int = 0,
    heartbeat_s: float = 1.0,
):
    """The Celery app with the job task bound to this data dir; returns (app, identity)."""
    data_dir = Path(data_dir)
    store = JobStore(data_dir / "jobs.sqlite3")  # first: a data dir it cannot use stops the start at once

    from backend.jobs.distributed import TASK_NAME, make_celery  # Celery: only a worker that starts needs it

    upload_dir = Path(upload_dir) if upload_dir else data_dir / "uploads"
    set_torch_threads(torch_threads)
    identity = worker_identity(name or f"worker-{socket.gethostname()}-{os.getpid()}", device, "celery")
    app = make_celery(broker_url)
    emit = socketio_emitter(broker_url)

    @app.task(name=TASK_NAME, acks_late=True, ignore_result=True)
    def run_job_task(job_id: str) -> str | None:
        """Run one job if it is still queued in the store (cancelled or taken ones are skipped)."""
        return execute_job(
            store,
            job_id,
            emit=emit,
            cache_dir=data_dir / "cache",
            upload_dir=upload_dir,
            worker=identity,
            heartbeat_s=heartbeat_s,
        )

    return app, identity


REDIS_SCHEMES = ("redis", "rediss", "redis+socket")


class StartupError(Exception):
    """The worker cannot start; the message says why and what to give instead."""


def check_broker_url(url: str) -> None:
    """StartupError unless url is a Redis URL (the only broker the API and the workers share)."""
    scheme = urlsplit(url).scheme
    if scheme not in REDIS_SCHEMES:
        raise StartupError(
            f"--broker: {url!r} is not a Redis URL; give redis://HOST:6379/0 (or rediss://, redis+socket://), "
            "the same URL as the API's --broker"
        )


def main(argv: list[str] | None = None) -> None:
    """Parse the options and run the worker until it is stopped."""
    defaults = load_config()
    parser = argparse.ArgumentParser(description="KD-Pruning Simulator job worker (Celery over Redis)")
    parser.add_argument(
        "--broker",
        default=defaults["BROKER_URL"] or None,
        help="Redis URL, the same as the API's --broker (or KD_BROKER_URL)",
    )
    parser.add_argument("--data-dir", default=defaults["DATA_DIR"], help="the API's data dir (shared)")
    parser.add_argument("--upload-dir", default=None, help="default: DATA_DIR/uploads, as the API")
    parser.add_argument("--name", default=None, help="shown in GET /jobs/<id> (default: worker-HOST-PID)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:0 ... (default: CUDA when present)")
    parser.add_argument("--torch-threads", type=int, default=defaults["TORCH_THREADS"])
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--debug", action="store_true", help="on a start-up error, show the traceback")
    args = parser.parse_args(argv)
    if not args.broker:
        parser.error("--broker redis://HOST:6379/0 (or KD_BROKER_URL) is required")
    logging.basicConfig(level=args.loglevel, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    upload_dir = args.upload_dir or load_config({"DATA_DIR": args.data_dir})["UPLOAD_DIR"]  # as the API finds it
    try:
        check_broker_url(args.broker)
        app, identity = build_worker(
            args.broker,
            args.data_dir,
            upload_dir=upload_dir,
            name=args.name,
            device=args.device,
            torch_threads=args.torch_threads,
        )
    except (StartupError, OSError, sqlite3.Error) as exc:
        if args.debug:
            raise
        reason = str(exc) if isinstance(exc, StartupError) else f"cannot use the data dir {args.data_dir}: {exc}"
        print(f"error: {reason}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    print(f"KD-Pruning worker {identity['name']} on {identity['host']} ({identity['device']})", flush=True)
    # solo pool: the job runs in this process, so killing the worker stops its job and nothing is orphaned.
    app.worker_main(
        [
            "worker",
            "--pool=solo",
            "--concurrency=1",
            f"--hostname={identity['name']}@%h",
            f"--loglevel={args.loglevel}",
            "--without-gossip",
            "--without-mingle",
            "-Q",
            "kd-jobs",
        ]
    )


if __name__ == "__main__":
    main()

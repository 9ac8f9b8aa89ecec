"""HTTP blueprints, one per concern, and the wiring of the job service into the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask
    from flask_socketio import SocketIO


def register_service(app: Flask, socketio: SocketIO) -> None:
    """Job manager (app.extensions["jobs"]), Socket.IO handlers, upload-aware requests and blueprints."""
    from backend.api import dashboard, openapi, results, sockets, studies, testing, training, uploads
    from backend.jobs import JobManager
    from backend.jobs.studies import StudyService, StudyStore

    app.request_class = uploads.UploadRequest
    emit = sockets.init_sockets(app, socketio)
    manager_class, extra = JobManager, {}
    if app.config.get("BROKER_URL"):  # scale-out: Celery workers over Redis
        from backend.jobs.distributed import BrokerJobManager

        manager_class = BrokerJobManager
        extra = {"broker_url": app.config["BROKER_URL"], "worker_timeout_s": float(app.config["WORKER_TIMEOUT_S"])}
    app.extensions["jobs"] = manager_class(
        app.config["DATA_DIR"],
        app.config["UPLOAD_DIR"],
        emit=emit,
        workers=app.config["WORKERS"],
        **extra,
        torch_threads=app.config["TORCH_THREADS"],
        start=app.config["START_WORKERS"],
        cancel_wait_s=float(app.config["CANCEL_WAIT_S"]),
        heartbeat_s=float(app.config["HEARTBEAT_S"]),
        progress_interval_s=float(app.config["PROGRESS_INTERVAL_S"]),
    )
    _apply_retention(app)
    _register_studies(app, socketio, StudyService, StudyStore)
    for module in (dashboard, openapi, training, results, testing, uploads, studies):
        app.register_blueprint(module.bp)


def _apply_retention(app: Flask) -> None:
    """Retention of finished jobs and the teacher cache bound, from the config; applied at start (and by the
    manager after every job)."""
    from backend.jobs.disk import Retention

    cfg = app.config
    app.extensions["jobs"].set_retention(
        Retention(
            retain_jobs=int(cfg["RETAIN_JOBS"]),
            retain_days=float(cfg["RETAIN_DAYS"]),
            cache_max_entries=int(cfg["TEACHER_CACHE_MAX_ENTRIES"]),
            cache_max_mb=float(cfg["TEACHER_CACHE_MAX_MB"]),
        )
    )


def _register_studies(app: Flask, socketio: SocketIO, service_cls, store_cls) -> None:
    """Study service (app.extensions["studies"]), emitting study_progress as the points of a study end."""
    from pathlib import Path

    from backend.api import sockets

    manager = app.extensions["jobs"]
    service = service_cls(manager, store_cls(Path(app.config["DATA_DIR"]) / "jobs.sqlite3"))
    service.add_listener(sockets.make_study_emitter(socketio))
    if app.config["START_WORKERS"]:
        service.start_watching()  # study_progress: a thread polls the job states of unfinished studies
    app.extensions["studies"] = service

"""App factory and entry point: `python backend/app.py` serves on 127.0.0.1:5001."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Mapping

if __package__ in (None, ""):  # run as a script (python backend/app.py, or python app.py in backend/)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask
from flask_cors import CORS
from flask_socketio import SocketIO

from backend.config import load_config

socketio = SocketIO()


def _cors_origins(setting: str) -> str | list[str]:
    origins = [o.strip() for o in str(setting).split(",") if o.strip()]
    return "*" if origins in ([], ["*"]) else origins


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app: configuration, CORS, Socket.IO, blueprints, job manager."""
    app = Flask(__name__)
    app.config.update(load_config(config))
    app.json.sort_keys = False
    for key in ("DATA_DIR", "UPLOAD_DIR"):
        Path(app.config[key]).mkdir(parents=True, exist_ok=True)

    origins = _cors_origins(app.config["CORS_ORIGINS"])
    CORS(app, origins=origins, expose_headers=["Content-Disposition"])
    # With a broker, Socket.IO also listens on it: workers on other processes or machines emit through it.
    socketio.init_app(app, async_mode="threading", cors_allowed_origins=origins,
                      message_queue=app.config.get("BROKER_URL") or None)

    from backend.api.errors import register_error_handlers
    from backend.api import health

    register_error_handlers(app)
    app.register_blueprint(health.bp)
    _register_service(app)
    return app


def _register_service(app: Flask) -> None:
    """Blueprints and the job manager of the service, where present."""
    try:
        from backend.api import register_service
    except ImportError:
        return
    register_service(app, socketio)


def serve_prepare(overrides: Mapping[str, Any] | None = None) -> Flask:
    """A served app: the data dir locked for this process, SIGTERM/SIGINT cancel the running job and exit.

    Exits with status 1 and a message naming the dir and the holder's PID when another server holds it.
    """
    from backend.lifecycle import DataDirLock, DataDirLocked, install_shutdown_handlers

    data_dir = load_config(overrides)["DATA_DIR"]
    try:
        lock = DataDirLock(data_dir).acquire()
    except DataDirLocked as exc:
        print(f"KD-Pruning Simulator: cannot start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    app = create_app(overrides)
    app.extensions["data_dir_lock"] = lock  # referenced for the app's life: the lock goes with the file object
    manager = app.extensions.get("jobs")
    if manager is not None:
        install_shutdown_handlers(lambda: manager.shutdown(timeout=8.0))
        if app.config.get("START_WORKERS") and hasattr(manager, "prewarm"):
            manager.prewarm()
    return app


def main(argv: list[str] | None = None) -> None:
    """Parse --host/--port/--data-dir/--broker and serve."""
    parser = argparse.ArgumentParser(description="KD-Pruning Simulator backend")
    parser.add_argument("--host", default=os.environ.get("KD_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("KD_PORT", "5001")))
    parser.add_argument("--data-dir", default=os.environ.get("KD_DATA_DIR"))
    parser.add_argument("--broker", default=os.environ.get("KD_BROKER_URL"),
                        help="Redis URL (redis://HOST:6379/0): jobs go to Celery workers started with "
                             "python -m backend.worker; default: local worker processes")
    parser.add_argument("--workers", type=int, default=None, help="local worker processes (embedded mode)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides: dict[str, Any] = {"HOST": args.host, "PORT": args.port}
    if args.data_dir:
        overrides["DATA_DIR"] = args.data_dir
    if args.broker:
        overrides["BROKER_URL"] = args.broker
    if args.workers:
        overrides["WORKERS"] = args.workers
    app = serve_prepare(overrides)
    print(f"KD-Pruning Simulator on http://{args.host}:{args.port}", flush=True)
    socketio.run(app, host=args.host, port=args.port, allow_unsafe_werkzeug=True)


if __name__ == "__main__":
    main()

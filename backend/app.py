"""App factory and entry point: `python backend/app.py` serves on 127.0.0.1:5001."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (python backend/app.py, or python app.py in backend/)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask
from flask_cors import CORS
from flask_socketio import SocketIO

from backend.config import add_setting_arguments, load_config, settings_from_args
from backend.devserver import KeepAliveHandler

socketio = SocketIO()


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app: configuration, CORS, Socket.IO, blueprints, job manager."""
    app = Flask(__name__)
    app.config.update(load_config(config))
    app.json.sort_keys = False
    for key in ("DATA_DIR", "UPLOAD_DIR"):
        Path(app.config[key]).mkdir(parents=True, exist_ok=True)

    from backend.api.security import LOOPBACK_ORIGIN, Guard, init_security

    guard = Guard(app.config)  # never "*": loopback origins, the configured ones, and the page's own
    CORS(
        app,
        origins=[LOOPBACK_ORIGIN, *guard.origins],
        expose_headers=["Content-Disposition", "Retry-After"],
        allow_headers=["Content-Type", "Authorization"],
        max_age=600,
    )
    # With a broker, Socket.IO also listens on it: workers on other processes or machines emit through it.
    socketio.init_app(
        app,
        async_mode="threading",
        cors_allowed_origins=guard.origin_allowed,
        message_queue=app.config.get("BROKER_URL") or None,
    )

    from backend.api import health
    from backend.api.errors import register_error_handlers

    init_security(app, guard)  # after init_app: its Host check and headers wrap Socket.IO's answers too
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


LOOPBACK_BIND = {"127.0.0.1", "localhost", "::1"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The server's command line: one argument per setting with a flag (backend/config.py), each defaulting to its
    KD_* variable, then its default."""
    parser = argparse.ArgumentParser(description="KD-Pruning Simulator backend")
    add_setting_arguments(parser)
    parser.add_argument(
        "--insecure-no-token",
        action="store_true",
        help="serve a non-loopback --host without a token (anyone who reaches the port can train)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve; a non-loopback address needs a token (or --insecure-no-token)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides: dict[str, Any] = settings_from_args(args)
    settings = load_config(overrides)
    host, port = settings["HOST"], settings["PORT"]
    if host not in LOOPBACK_BIND and not settings["API_TOKEN"] and not args.insecure_no_token:
        sys.exit(
            f"Refusing to serve {host} without an API token: anyone who can reach the port could "
            "start jobs and read results. Give --api-token (or KD_API_TOKEN), or --insecure-no-token to "
            "serve it open anyway."
        )
    if settings["DEVICE"] != "auto" or "DEVICE" in overrides:
        from backend.devices import DeviceError, check_device

        try:
            overrides["DEVICE"] = check_device(settings["DEVICE"])
        except DeviceError as exc:
            sys.exit(f"--device: {exc}")
    app = serve_prepare(overrides)
    print(f"KD-Pruning Simulator on http://{host}:{port}", flush=True)
    socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=True, request_handler=KeepAliveHandler)


if __name__ == "__main__":
    main()

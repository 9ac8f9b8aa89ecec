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
    socketio.init_app(app, async_mode="threading", cors_allowed_origins=origins)

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


def main(argv: list[str] | None = None) -> None:
    """Parse --host/--port/--data-dir and serve."""
    parser = argparse.ArgumentParser(description="KD-Pruning Simulator backend")
    parser.add_argument("--host", default=os.environ.get("KD_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("KD_PORT", "5001")))
    parser.add_argument("--data-dir", default=os.environ.get("KD_DATA_DIR"))
    parser.add_argument("--device", default=os.environ.get("KD_DEVICE"),
                        help="default device of jobs that name none: auto (CUDA when present, else CPU), cpu, "
                             "cuda, cuda:N, mps")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides: dict[str, Any] = {"HOST": args.host, "PORT": args.port}
    if args.data_dir:
        overrides["DATA_DIR"] = args.data_dir
    if args.device:
        from backend.devices import DeviceError, check_device

        try:
            overrides["DEVICE"] = check_device(args.device)
        except DeviceError as exc:
            parser.error(str(exc))
    app = create_app(overrides)
    print(f"KD-Pruning Simulator on http://{args.host}:{args.port}", flush=True)
    socketio.run(app, host=args.host, port=args.port, allow_unsafe_werkzeug=True)


if __name__ == "__main__":
    main()

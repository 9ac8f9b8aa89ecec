"""Service configuration: defaults, overridden by environment variables, then by a dict."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BACKEND_DIR = Path(__file__).resolve().parent

# name -> (environment variable, default, parser)
_SETTINGS: dict[str, tuple[str, Any, type]] = {
    "HOST": ("KD_HOST", "127.0.0.1", str),
    "PORT": ("KD_PORT", 5001, int),
    "DATA_DIR": ("KD_DATA_DIR", str(BACKEND_DIR / "instance"), str),
    "UPLOAD_DIR": ("KD_UPLOAD_DIR", str(BACKEND_DIR / "uploads"), str),
    "MAX_UPLOAD_MB": ("KD_MAX_UPLOAD_MB", 200, int),
    # Security (README "Security"): extra allowed origins and Host names, comma-separated; loopback is always in.
    "CORS_ORIGINS": ("KD_CORS_ORIGINS", "", str),
    "ALLOWED_HOSTS": ("KD_ALLOWED_HOSTS", "", str),
    "API_TOKEN": ("KD_API_TOKEN", "", str),  # empty: no token asked for (loopback only, see app.main)
    "MAX_QUEUED_JOBS": ("KD_MAX_QUEUED_JOBS", 20, int),
    "MAX_BODY_KB": ("KD_MAX_BODY_KB", 1024, int),  # non-upload request bodies
    "MAX_JSON_DEPTH": ("KD_MAX_JSON_DEPTH", 32, int),
    "WORKERS": ("KD_WORKERS", 1, int),
    "TORCH_THREADS": ("KD_TORCH_THREADS", 0, int),  # 0: leave one core for the web server
    "START_WORKERS": ("KD_START_WORKERS", True, bool),
    "DEVICE": ("KD_DEVICE", "auto", str),  # jobs' device when a request names none: auto (CUDA if present), cpu, ...
    # Scale-out: a Redis URL sends jobs to Celery workers (python -m backend.worker) instead of local ones.
    "BROKER_URL": ("KD_BROKER_URL", "", str),
    "WORKER_TIMEOUT_S": ("KD_WORKER_TIMEOUT_S", 30.0, float),  # no heartbeat for this long: the job is failed
}


def _parse(raw: str, kind: type) -> Any:
    if kind is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return kind(raw)


def load_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then KD_* environment variables, then `overrides`."""
    config = {}
    for name, (env, default, kind) in _SETTINGS.items():
        raw = os.environ.get(env)
        config[name] = _parse(raw, kind) if raw not in (None, "") else default
    if overrides:
        config.update(overrides)
    # Upload directory follows an explicitly chosen data directory unless set itself.
    if overrides and "DATA_DIR" in overrides and "UPLOAD_DIR" not in overrides and not os.environ.get("KD_UPLOAD_DIR"):
        config["UPLOAD_DIR"] = str(Path(overrides["DATA_DIR"]) / "uploads")
    config["MAX_CONTENT_LENGTH"] = int(config["MAX_UPLOAD_MB"]) * 1024 * 1024
    return config

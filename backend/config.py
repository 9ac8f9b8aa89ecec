"""Service settings, each declared once: defaults, overridden by KD_* environment variables, then by a dict
(the command line's values, or a test's).

`python backend/app.py` builds its arguments from `SETTINGS` (those with a flag), and the README's
Configuration table is `python -m backend.config` (a test checks the two agree).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BACKEND_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Setting:
    """One service setting: its config key, KD_* variable, default, type, what it does, its flag (if any)."""

    key: str
    default: Any
    kind: type
    help: str
    flag: str | None = None
    shown_default: str | None = None  # the default as the README shows it, where the value itself would not do
    env_alias: str | None = None  # the variable, where it is not KD_<key>

    @property
    def env(self) -> str:
        return self.env_alias or f"KD_{self.key}"

    def parse(self, raw: str) -> Any:
        if self.kind is bool:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        return self.kind(raw)


SETTINGS: tuple[Setting, ...] = (
    Setting("HOST", "127.0.0.1", str, "host", flag="--host"),
    Setting("PORT", 5001, int, "port", flag="--port"),
    Setting("DATA_DIR", str(BACKEND_DIR / "instance"), str, "data directory (jobs database, results, teacher cache)",
            flag="--data-dir", shown_default="`backend/instance`"),
    Setting("UPLOAD_DIR", str(BACKEND_DIR / "uploads"), str, "upload directory",
            shown_default="`backend/uploads` (or `<data-dir>/uploads` when `--data-dir` is given)"),
    Setting("MAX_UPLOAD_MB", 200, int, "upload size limit, MB"),
    Setting("MIN_FREE_DISK_MB", 1024.0, float, "free-space floor, MB: new jobs, studies and uploads get 507 while the "
            "data or upload dir's filesystem has less free (0: no floor)", flag="--min-free-disk",
            shown_default="`1024` (1 GiB)"),
    # Security (README "Security"): extra allowed origins and Host names; loopback is always in.
    Setting("CORS_ORIGINS", "", str, "more allowed origins (REST and Socket.IO), comma-separated",
            flag="--cors-origins", shown_default="none: same origin and loopback only"),
    Setting("ALLOWED_HOSTS", "", str, "more served Host names, comma-separated", flag="--allowed-hosts",
            shown_default="none: loopback and `--host`"),
    Setting("API_TOKEN", "", str, "API token (Bearer)", flag="--api-token",
            shown_default="none (required for a non-loopback `--host`, or `--insecure-no-token`)"),
    Setting("MAX_QUEUED_JOBS", 20, int, "queue cap (429 past it)", flag="--max-queued-jobs"),
    Setting("MAX_BODY_KB", 1024, int, "non-upload request body limit, KiB"),
    Setting("MAX_JSON_DEPTH", 32, int, "JSON nesting limit"),
    Setting("MAX_ZIP_ENTRIES", 20_000, int, "entries an uploaded ZIP may hold"),
    Setting("MAX_UNCOMPRESSED_MB", 1024, int, "bytes an uploaded ZIP may inflate to, MB"),
    Setting("MAX_TENSOR_MB", 1024, int, "tensor bytes a checkpoint may hold, MB"),
    Setting("WORKERS", 1, int, "local worker processes (embedded mode)", flag="--workers"),
    Setting("TORCH_THREADS", 0, int, "torch threads for jobs (0: all cores but one, so the server stays responsive)"),
    Setting("START_WORKERS", True, bool, "start the local workers with the server (off: jobs wait in the queue)"),
    Setting("DEVICE", "auto", str, "default device of jobs naming none (`auto`: CUDA when present, else CPU)",
            flag="--device"),
    # Scale-out: a Redis URL sends jobs to Celery workers (python -m backend.worker) instead of local ones.
    Setting("BROKER_URL", "", str, "job broker: Redis URL, jobs go to Celery workers (see Deploy)", flag="--broker",
            shown_default="none (local workers)"),
    Setting("WORKER_TIMEOUT_S", 30.0, float,
            "seconds without a worker heartbeat before its job is failed (broker mode)"),
    Setting("RETAIN_JOBS", 0, int, "keep only the newest N finished jobs (0: all)", flag="--retain-jobs"),
    Setting("RETAIN_DAYS", 0.0, float, "delete finished jobs older than D days (0: never)", flag="--retain-days"),
    Setting("TEACHER_CACHE_MAX_ENTRIES", 0, int, "at most N cached teachers, least recently used evicted (0: no bound)",
            flag="--teacher-cache-max-entries"),
    Setting("TEACHER_CACHE_MAX_MB", 0.0, float, "at most this many MB of cached teachers (0: no bound)",
            flag="--teacher-cache-max-mb"),
    Setting("CANCEL_WAIT_S", 5.0, float, "seconds a cancelled job gets to stop before its worker is ended"),
    Setting("PROGRESS_INTERVAL_S", 0.1, float, "least seconds between two training_progress events of a job"),
    Setting("HEARTBEAT_S", 1.0, float, "seconds between a running job's heartbeats (and its idle progress events)"),
    # The production server (gunicorn -c backend/gunicorn_conf.py, README "Operations"); the dev server ignores them.
    Setting("SERVER_THREADS", 100, int,
            "gunicorn threads: each serves one request, or one WebSocket client for its life"),
    Setting("REQUEST_TIMEOUT_S", 10.0, float,
            "gunicorn: seconds a client may stay silent while its request is read or answered before it is closed"),
)  # fmt: skip


def load_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then KD_* environment variables, then `overrides`."""
    config = {}
    for setting in SETTINGS:
        raw = os.environ.get(setting.env)
        config[setting.key] = setting.parse(raw) if raw not in (None, "") else setting.default
    if overrides:
        config.update(overrides)
    # Upload directory follows an explicitly chosen data directory unless set itself.
    if overrides and "DATA_DIR" in overrides and "UPLOAD_DIR" not in overrides and not os.environ.get("KD_UPLOAD_DIR"):
        config["UPLOAD_DIR"] = str(Path(overrides["DATA_DIR"]) / "uploads")
    config["MAX_CONTENT_LENGTH"] = int(config["MAX_UPLOAD_MB"]) * 1024 * 1024
    return config


def add_setting_arguments(parser: argparse.ArgumentParser) -> None:
    """One argument per setting with a flag; each defaults to None (not given: the variable, then the default)."""
    for setting in SETTINGS:
        if setting.flag:
            kind = setting.kind if setting.kind in (int, float) else str
            parser.add_argument(setting.flag, dest=setting.key, type=kind, default=None, help=_help(setting))


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, by config key."""
    return {s.key: getattr(args, s.key) for s in SETTINGS if s.flag and getattr(args, s.key, None) is not None}


def _help(setting: Setting) -> str:
    return f"{setting.help} ({setting.env}; default: {setting.shown_default or setting.default})".replace("%", "%%")


def _shown(setting: Setting) -> str:
    if setting.shown_default is not None:
        return setting.shown_default
    value = setting.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"


def markdown_table() -> str:
    """The README's Configuration table."""
    lines = ["| setting | environment variable | command-line | default |", "|---|---|---|---|"]
    for s in SETTINGS:
        flag = f"`{s.flag}`" if s.flag else ""
        lines.append(f"| {s.help} | `{s.env}` | {flag} | {_shown(s)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())

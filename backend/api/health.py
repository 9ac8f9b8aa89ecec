"""Health and version information."""

from __future__ import annotations

import platform

from flask import Blueprint, current_app, jsonify

from backend import __version__
from backend.api.common import disk_state
from backend.devices import DeviceError, available_devices, resolve_device
from backend.runtime import environment_info

bp = Blueprint("health", __name__)


@bp.get("/test")
def health():
    """Status, library versions, device, threads, broker and queue length."""
    info = {"status": "ok", "version": __version__, "python": platform.python_version()}
    info.update(environment_info())
    info["devices"] = available_devices()  # what exists: name and memory of each
    info["default_device"] = current_app.config.get("DEVICE", "auto")
    try:
        info["device"] = str(resolve_device(info["default_device"]))  # where a job naming no device runs
    except DeviceError as exc:  # a server default this machine lacks: say so rather than fail the health check
        info["device"], info["device_reason"] = None, str(exc)
    manager = current_app.extensions.get("jobs")
    # "up" / "down" with a broker (--broker), None with local workers; new jobs are refused while it is down.
    info["broker"] = manager.broker_state() if manager is not None else None
    if info["broker"] == "down":
        info["status"] = "degraded"
    info["queue_length"] = manager.queue_length() if manager is not None else 0
    info["running_job_id"] = manager.running_job_id() if manager is not None else None
    info.update(disk_state())  # disk_free_bytes and min_free_disk_bytes: below the floor, new work gets 507
    return jsonify(info)

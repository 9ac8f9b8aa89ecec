"""Socket.IO: the emitter handed to the job manager, the connect check, and join/leave of per-job rooms.

A job's events go to its room only (room "job:<id>"): a client emits 'join' with {job_id} to follow a job,
and nothing about a job reaches a client that did not ask for it. When the server has an API token, the
connection needs it: `auth={"token": ...}` (or an `Authorization: Bearer` header on the handshake).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, request
from flask_socketio import SocketIO, join_room, leave_room

from backend.api.security import bearer
from backend.echo import clip
from backend.jobs import JobNotFound

NAMESPACE = "/"


def room_of(job_id: str) -> str:
    """The room of one job's events."""
    return f"job:{job_id}"


def make_emitter(socketio: SocketIO) -> Callable[..., None]:
    """emit(event, payload, room=job_id): to the job's room only; an event without a job goes nowhere."""
    server = socketio.server  # bound now: a later app in the same process gets its own server

    def emit(event: str, payload: dict[str, Any], room: str | None = None) -> None:
        if room is not None:
            server.emit(event, payload, namespace=NAMESPACE, to=room_of(room))

    return emit


def _on_connect(auth: Any = None) -> bool:
    """Refuse the connection without the server's token (when it has one)."""
    guard = current_app.extensions["kd_guard"]
    supplied = auth.get("token") if isinstance(auth, dict) else None
    if not isinstance(supplied, str):
        supplied = bearer(request.headers.get("Authorization"))
    if not guard.token_ok(supplied):
        raise ConnectionRefusedError("unauthorized: connect with auth={'token': '<the API token>'}")
    return True


def study_room(study_id: str) -> str:
    """The room of one study's study_progress events."""
    return f"study:{study_id}"


def make_study_emitter(socketio: SocketIO) -> Callable[[dict[str, Any]], None]:
    """emit(study_progress payload): to the study's room only."""
    server = socketio.server

    def emit(payload: dict[str, Any]) -> None:
        server.emit("study_progress", payload, namespace=NAMESPACE, to=study_room(payload["study_id"]))

    return emit


def _join_study(study_id: Any) -> dict[str, Any]:
    """Join a study's room and the rooms of its jobs, so both kinds of events arrive."""
    studies = current_app.extensions.get("studies")
    try:
        study = studies.get(study_id)
    except LookupError:
        return {"ok": False, "error": f"No study with id '{clip(study_id)}'."}
    join_room(study_room(study.id))
    for job_id in study.job_ids:
        join_room(room_of(job_id))
    summary = studies.summary(study)
    return {
        "ok": True,
        "study_id": study.id,
        "state": summary["state"],
        "points_done": summary["points_done"],
        "points_total": summary["points_total"],
        "job_ids": study.job_ids,
    }


def _on_join(data: Any = None) -> dict[str, Any]:
    """Join a job's room: {job_id} (ack: the job's current status), or a study's: {study_id}."""
    if isinstance(data, dict) and "study_id" in data and "job_id" not in data:
        return _join_study(data["study_id"])
    job_id = data.get("job_id") if isinstance(data, dict) else None
    if not isinstance(job_id, str):
        return {"ok": False, "error": 'send {"job_id": "..."}'}
    try:
        record = current_app.extensions["jobs"].get(job_id)
    except JobNotFound:
        return {"ok": False, "error": f"No job with id '{clip(job_id)}'."}
    join_room(room_of(job_id))
    return {"ok": True, "job_id": job_id, "status": record.state, "phase": record.phase, "progress": record.progress}


def _on_leave(data: Any = None) -> dict[str, Any]:
    """Leave a job's room: {job_id}, or a study's: {study_id}."""
    study_id = data.get("study_id") if isinstance(data, dict) else None
    if isinstance(study_id, str):
        leave_room(study_room(study_id))
    job_id = data.get("job_id") if isinstance(data, dict) else None
    if isinstance(job_id, str):
        leave_room(room_of(job_id))
    return {"ok": True}


def init_sockets(app, socketio: SocketIO) -> Callable[..., None]:
    """Register the handlers on this app's Socket.IO server and return the app's emitter."""
    # After init_app, on_event registers on the current server only (each app gets a new server),
    # so this runs for every app; a second registration on one server replaces the first.
    socketio.on_event("connect", _on_connect, namespace=NAMESPACE)
    socketio.on_event("join", _on_join, namespace=NAMESPACE)
    socketio.on_event("leave", _on_leave, namespace=NAMESPACE)
    return make_emitter(socketio)

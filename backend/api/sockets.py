"""Socket.IO: the emitter handed to the job manager, and the join/leave handlers for per-job rooms.

Every event goes to every connected client, except that a client which joined one or more job
rooms gets only those jobs' events (each exactly once).
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from flask import current_app, request
from flask_socketio import SocketIO, join_room, leave_room

from backend.jobs import JobNotFound

NAMESPACE = "/"


def room_of(job_id: str) -> str:
    """The room of one job's events."""
    return f"job:{job_id}"


class Subscribers:
    """Sids that joined at least one job room, and so only get their jobs' events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rooms: dict[str, set[str]] = {}

    def add(self, sid: str, job_id: str) -> None:
        with self._lock:
            self._rooms.setdefault(sid, set()).add(job_id)

    def remove(self, sid: str, job_id: str | None = None) -> None:
        with self._lock:
            rooms = self._rooms.get(sid, set())
            rooms.discard(job_id) if job_id is not None else rooms.clear()
            if not rooms:
                self._rooms.pop(sid, None)

    def sids(self) -> list[str]:
        with self._lock:
            return list(self._rooms)


def make_emitter(socketio: SocketIO, subscribers: Subscribers) -> Callable[..., None]:
    """emit(event, payload, room=job_id): to every client not subscribed elsewhere, and to the job's room."""
    server = socketio.server  # bound now: a later app in the same process gets its own server

    def emit(event: str, payload: dict[str, Any], room: str | None = None) -> None:
        skip = subscribers.sids()
        server.emit(event, payload, namespace=NAMESPACE, skip_sid=skip or None)
        if room is not None and skip:
            server.emit(event, payload, namespace=NAMESPACE, to=room_of(room))

    return emit


def study_room(study_id: str) -> str:
    """The room of one study's study_progress events."""
    return f"study:{study_id}"


def make_study_emitter(socketio: SocketIO, subscribers: Subscribers) -> Callable[[dict[str, Any]], None]:
    """emit(study_progress payload): to every client not subscribed elsewhere, and to the study's room."""
    server = socketio.server

    def emit(payload: dict[str, Any]) -> None:
        skip = subscribers.sids()
        server.emit("study_progress", payload, namespace=NAMESPACE, skip_sid=skip or None)
        if skip:
            server.emit("study_progress", payload, namespace=NAMESPACE, to=study_room(payload["study_id"]))

    return emit


def _join_study(study_id: Any) -> dict[str, Any]:
    """Join a study's room and the rooms of its jobs, so both kinds of events arrive."""
    studies = current_app.extensions.get("studies")
    try:
        study = studies.get(study_id)
    except LookupError:
        return {"ok": False, "error": f"No study with id {study_id!r}."}
    subscribers = current_app.extensions["kd_subscribers"]
    join_room(study_room(study.id))
    subscribers.add(request.sid, study_room(study.id))
    for job_id in study.job_ids:
        join_room(room_of(job_id))
        subscribers.add(request.sid, job_id)
    summary = studies.summary(study)
    return {"ok": True, "study_id": study.id, "state": summary["state"], "points_done": summary["points_done"],
            "points_total": summary["points_total"], "job_ids": study.job_ids}


def _on_join(data: Any = None) -> dict[str, Any]:
    """Join a job's room: {job_id} (ack: the job's current status), or a study's: {study_id}."""
    if isinstance(data, dict) and "study_id" in data and "job_id" not in data:
        return _join_study(data["study_id"])
    job_id = data.get("job_id") if isinstance(data, dict) else None
    if not isinstance(job_id, str):
        return {"ok": False, "error": "send {\"job_id\": \"...\"}"}
    try:
        record = current_app.extensions["jobs"].get(job_id)
    except JobNotFound:
        return {"ok": False, "error": f"No job with id {job_id!r}."}
    join_room(room_of(job_id))
    current_app.extensions["kd_subscribers"].add(request.sid, job_id)
    return {"ok": True, "job_id": job_id, "status": record.state, "phase": record.phase,
            "progress": record.progress}


def _on_leave(data: Any = None) -> dict[str, Any]:
    """Leave a job's room: {job_id}, or a study's: {study_id}."""
    study_id = data.get("study_id") if isinstance(data, dict) else None
    if isinstance(study_id, str):
        leave_room(study_room(study_id))
        current_app.extensions["kd_subscribers"].remove(request.sid, study_room(study_id))
    job_id = data.get("job_id") if isinstance(data, dict) else None
    if isinstance(job_id, str):
        leave_room(room_of(job_id))
        current_app.extensions["kd_subscribers"].remove(request.sid, job_id)
    return {"ok": True}


def _on_disconnect(*_: Any) -> None:
    current_app.extensions["kd_subscribers"].remove(request.sid)


def init_sockets(app, socketio: SocketIO) -> Callable[..., None]:
    """Register the handlers on this app's Socket.IO server and return the app's emitter."""
    subscribers = Subscribers()
    app.extensions["kd_subscribers"] = subscribers
    # After init_app, on_event registers on the current server only (each app gets a new server),
    # so this runs for every app; a second registration on one server replaces the first.
    socketio.on_event("join", _on_join, namespace=NAMESPACE)
    socketio.on_event("leave", _on_leave, namespace=NAMESPACE)
    socketio.on_event("disconnect", _on_disconnect, namespace=NAMESPACE)
    return make_emitter(socketio, subscribers)

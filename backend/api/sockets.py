"""Socket.IO: the emitters handed to the job manager and the study service, the connect check, join/leave.

Who receives what (the rooms are named in backend/jobs/rooms.py):

- A client that connects and only listens receives `training_status`, `training_progress`,
  `training_metrics`, `training_error` and `study_progress` for EVERY job and study (as the seed documented);
  it is in the room "all".
- `join` with {job_id} or {study_id} narrows that client to what it joined: from then on it receives only the
  events of the jobs and studies it joined, the union when it joined several. Joining a study also brings the
  events of the study's jobs (the client enters their rooms). Joining the same thing twice changes nothing.
- `leave` with {job_id} or {study_id} undoes that join (a job that also belongs to a study the client still
  follows keeps coming through the study). A client that has left everything it joined goes back to
  receiving everything.
- Each event is emitted once to a list of rooms (["all", "job:<id>"] or ["all", "study:<id>"]), and
  python-socketio sends it once per client however many of those rooms the client is in: no duplicates.
  The Celery workers emit to the same rooms through the message queue (backend/worker.py).

When the server has an API token, the connection needs it: `auth={"token": ...}` (or an `Authorization:
Bearer` header on the handshake); a client refused at connect (token, or an origin not allowed) gets nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flask import current_app, request
from flask_socketio import SocketIO, join_room, leave_room, rooms

from backend.api.security import bearer
from backend.echo import clip
from backend.jobs import JobNotFound
from backend.jobs.rooms import (
    ALL_ROOM,
    JOB_PREFIX,
    STUDY_PREFIX,
    job_event_rooms,
    job_room,
    study_event_rooms,
    study_room,
)

NAMESPACE = "/"

# One client's join/leave handlers may run at once (python-socketio's async_handlers): its bookkeeping and
# rooms change under this lock.
_rooms_lock = threading.Lock()


def make_emitter(socketio: SocketIO) -> Callable[..., None]:
    """emit(event, payload, room=job_id): to the clients that joined nothing and those that joined the job
    (or its study), once each; an event without a job goes to every client."""
    server = socketio.server  # bound now: a later app in the same process gets its own server

    def emit(event: str, payload: dict[str, Any], room: str | None = None) -> None:
        server.emit(event, payload, namespace=NAMESPACE, to=job_event_rooms(room))

    return emit


def make_study_emitter(socketio: SocketIO) -> Callable[[dict[str, Any]], None]:
    """emit(study_progress payload): to the clients that joined nothing and those that joined the study."""
    server = socketio.server

    def emit(payload: dict[str, Any]) -> None:
        server.emit("study_progress", payload, namespace=NAMESPACE, to=study_event_rooms(payload["study_id"]))

    return emit


def _on_connect(auth: Any = None) -> bool:
    """Refuse the connection without the server's token (when it has one); a listener hears every job."""
    guard = current_app.extensions["kd_guard"]
    supplied = auth.get("token") if isinstance(auth, dict) else None
    if not isinstance(supplied, str):
        supplied = bearer(request.headers.get("Authorization"))
    if not guard.token_ok(supplied):
        raise ConnectionRefusedError("unauthorized: connect with auth={'token': '<the API token>'}")
    join_room(ALL_ROOM)
    return True


def _update_joins(change: Callable[[dict[str, Any]], None]) -> None:
    """Apply change(joined) to this client's joins, then put it in exactly the rooms they call for.

    joined = {"jobs": set of job ids joined by name, "studies": {study id: its job ids}}, kept per client in
    app.extensions["socket_joins"] until it disconnects. The new rooms are entered before the old ones are
    left, so no event falls in between.
    """
    with _rooms_lock:
        clients = current_app.extensions.setdefault("socket_joins", {})
        joined = clients.setdefault(request.sid, {"jobs": set(), "studies": {}})
        change(joined)
        wanted = {job_room(j) for j in joined["jobs"]}
        for study_id, job_ids in joined["studies"].items():
            wanted |= {study_room(study_id), *map(job_room, job_ids)}
        wanted = wanted or {ALL_ROOM}
        ours = {r for r in rooms() if r == ALL_ROOM or str(r).startswith((JOB_PREFIX, STUDY_PREFIX))}
        for room in sorted(wanted - ours):
            join_room(room)
        for room in sorted(ours - wanted):
            leave_room(room)


def _on_disconnect(reason: Any = None) -> None:
    """Forget the client's joins (its rooms go with the connection)."""
    with _rooms_lock:
        current_app.extensions.get("socket_joins", {}).pop(request.sid, None)


def _join_study(study_id: Any) -> dict[str, Any]:
    """Follow a study: its study_progress events and the events of its jobs."""
    studies = current_app.extensions.get("studies")
    try:
        study = studies.get(study_id)
    except LookupError:
        return {"ok": False, "error": f"No study with id '{clip(study_id)}'."}
    _update_joins(lambda joined: joined["studies"].__setitem__(study.id, list(study.job_ids)))
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
    """Follow a job: {job_id} (ack: the job's current status), or a study: {study_id}. Narrows what the
    client receives to what it joined."""
    if isinstance(data, dict) and "study_id" in data and "job_id" not in data:
        return _join_study(data["study_id"])
    job_id = data.get("job_id") if isinstance(data, dict) else None
    if not isinstance(job_id, str):
        return {"ok": False, "error": 'send {"job_id": "..."}'}
    try:
        record = current_app.extensions["jobs"].get(job_id)
    except JobNotFound:
        return {"ok": False, "error": f"No job with id '{clip(job_id)}'."}
    _update_joins(lambda joined: joined["jobs"].add(job_id))
    return {"ok": True, "job_id": job_id, "status": record.state, "phase": record.phase, "progress": record.progress}


def _on_leave(data: Any = None) -> dict[str, Any]:
    """Undo a join: {job_id} and/or {study_id}; with nothing joined any more, the client hears every job."""
    study_id = data.get("study_id") if isinstance(data, dict) else None
    job_id = data.get("job_id") if isinstance(data, dict) else None

    def change(joined: dict[str, Any]) -> None:
        if isinstance(study_id, str):
            joined["studies"].pop(study_id, None)
        if isinstance(job_id, str):
            joined["jobs"].discard(job_id)

    _update_joins(change)
    return {"ok": True}


def init_sockets(app, socketio: SocketIO) -> Callable[..., None]:
    """Register the handlers on this app's Socket.IO server and return the app's emitter."""
    # After init_app, on_event registers on the current server only (each app gets a new server),
    # so this runs for every app; a second registration on one server replaces the first.
    socketio.on_event("connect", _on_connect, namespace=NAMESPACE)
    socketio.on_event("join", _on_join, namespace=NAMESPACE)
    socketio.on_event("leave", _on_leave, namespace=NAMESPACE)
    socketio.on_event("disconnect", _on_disconnect, namespace=NAMESPACE)
    return make_emitter(socketio)

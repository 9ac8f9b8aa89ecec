"""Who receives a job's or a study's Socket.IO events: the rooms each event is emitted to. No Flask here.

Every connected client is in exactly one of two situations:

- it joined nothing (or has left all it joined): it is in the room ALL_ROOM and receives every job's and
  every study's events, as the seed documented (a client that connects and only listens hears everything);
- it joined jobs and/or studies: it is out of ALL_ROOM and in "job:<id>" / "study:<id>" rooms, and receives
  the union of what it joined (joining a study also puts it in the rooms of the study's jobs).

Each event is emitted in ONE call to a list of rooms (ALL_ROOM plus the event's own room): python-socketio
sends once per client for a list of rooms (socketio.base_manager.BaseManager.get_participants merges the
rooms by client id), so a client in several of those rooms still gets the event once. The API process
(embedded workers) and the Celery workers (through the message queue) both use these functions.
"""

from __future__ import annotations

ALL_ROOM = "all"  # clients that joined nothing: they receive every event
JOB_PREFIX = "job:"
STUDY_PREFIX = "study:"


def job_room(job_id: str) -> str:
    """The room of one job's events."""
    return f"{JOB_PREFIX}{job_id}"


def study_room(study_id: str) -> str:
    """The room of one study's study_progress events."""
    return f"{STUDY_PREFIX}{study_id}"


def job_event_rooms(job_id: str | None) -> list[str] | None:
    """The rooms of a job's event: the listeners and the job's room; None (every client) for a job-less event."""
    return None if job_id is None else [ALL_ROOM, job_room(job_id)]


def study_event_rooms(study_id: str) -> list[str]:
    """The rooms of a study_progress event: the listeners and the study's room."""
    return [ALL_ROOM, study_room(study_id)]

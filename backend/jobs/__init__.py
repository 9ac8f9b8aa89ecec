"""Job queue, states, SQLite persistence, cancellation and the event relay. No Flask here."""

from backend.jobs import disk
from backend.jobs.events import JobRelay, jsonable
from backend.jobs.manager import ArtifactAltered, JobManager, JobNotFound, JobStateError
from backend.jobs.store import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, STATES, SUCCEEDED, JobRecord, JobStore

__all__ = [
    "ArtifactAltered",
    "JobManager",
    "disk",
    "JobNotFound",
    "JobStateError",
    "JobRelay",
    "JobRecord",
    "JobStore",
    "jsonable",
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
    "STATES",
    "FINISHED",
]

"""SQLite persistence of jobs: one row per job, JSON columns for the structured fields."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
INTERRUPTED = "interrupted: the server stopped while this job was running"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    model_name TEXT NOT NULL,
    dataset TEXT,
    config TEXT NOT NULL,
    state TEXT NOT NULL,
    phase TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    error TEXT,
    error_type TEXT,
    out_dir TEXT,
    artifacts TEXT NOT NULL DEFAULT '{}',
    phase_timings TEXT NOT NULL DEFAULT '{}',
    summary TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS jobs_state_seq ON jobs(state, seq);
"""
# Columns added for worker processes; ALTER TABLE adds them to a data dir made by an older version.
_ADDED_COLUMNS = {"worker": "TEXT NOT NULL DEFAULT '{}'", "heartbeat_at": "REAL", "cancel_reason": "TEXT"}
_JSON_FIELDS = ("config", "progress", "artifacts", "phase_timings", "summary", "worker")


@dataclass
class JobRecord:
    """One job as stored."""

    id: str
    seq: int
    model_name: str
    dataset: str | None
    config: dict[str, Any]
    state: str
    phase: str
    created_at: float
    progress: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    error_type: str | None = None
    out_dir: str | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    phase_timings: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    worker: dict[str, Any] = field(default_factory=dict)  # name, host, device, pid of the process that ran it
    heartbeat_at: float | None = None
    cancel_reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def duration_s(self) -> float | None:
        """Seconds from start to end (or to now while running)."""
        if self.started_at is None:
            return None
        return round((self.finished_at or time.time()) - self.started_at, 3)

    def to_public(self) -> dict[str, Any]:
        """The JSON shape the API answers with (ISO times, no server paths)."""
        data = asdict(self)
        data.pop("seq")
        data.pop("out_dir")
        data.pop("cancel_reason")
        for key in ("created_at", "started_at", "finished_at", "heartbeat_at"):
            data[key] = iso_time(data[key])
        data["duration_s"] = self.duration_s()
        data["artifacts"] = sorted(self.artifacts)
        return data


def iso_time(stamp: float | None) -> str | None:
    """UTC ISO-8601 with a Z, or None."""
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JobStore:
    """Thread-safe access to the jobs table (one connection behind a lock).

    Several processes (the API and its workers) open the same file: WAL mode lets readers run beside the
    one writer, and the busy timeout makes a writer wait for another instead of failing.
    """

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            have = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            for name, decl in _ADDED_COLUMNS.items():
                if name not in have:
                    try:
                        self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")
                    except sqlite3.OperationalError:  # another process added it meanwhile
                        pass

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def create(self, job_id: str, config: dict[str, Any], *, out_dir: str) -> JobRecord:
        """Insert a queued job."""
        now = time.time()
        with self._lock:
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            self._db.execute(
                "INSERT INTO jobs (id, seq, model_name, dataset, config, state, phase, created_at, out_dir) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    seq,
                    config["model_name"],
                    config.get("dataset"),
                    json.dumps(config),
                    QUEUED,
                    QUEUED,
                    now,
                    out_dir,
                ),
            )
        return self.get(job_id)

    def update(self, job_id: str, **values: Any) -> None:
        """Set columns of one job; dict fields are stored as JSON."""
        if not values:
            return
        cols = ", ".join(f"{k} = ?" for k in values)
        args = [json.dumps(v) if k in _JSON_FIELDS else v for k, v in values.items()]
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*args, job_id))

    def get(self, job_id: str) -> JobRecord | None:
        """One job, or None."""
        rows = self._select("WHERE id = ?", (job_id,))
        return rows[0] if rows else None

    def list(
        self, *, state: str | None = None, model_name: str | None = None, limit: int = 50, newest_first: bool = True
    ) -> list[JobRecord]:
        """Jobs filtered by state and model."""
        where, args = [], []
        if state:
            where.append("state = ?")
            args.append(state)
        if model_name:
            where.append("model_name = ?")
            args.append(model_name)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        order = "DESC" if newest_first else "ASC"
        return self._select(f"{clause} ORDER BY seq {order} LIMIT ?", (*args, int(limit)))

    def latest(self, state: str = SUCCEEDED, model_name: str | None = None) -> JobRecord | None:
        """The most recent job in a state (optionally of one model)."""
        rows = self.list(state=state, model_name=model_name, limit=1)
        return rows[0] if rows else None

    def latest_per_model(self, state: str = SUCCEEDED) -> dict[str, JobRecord]:
        """model_name -> its most recent job in that state."""
        rows = self._select(
            "WHERE seq IN (SELECT MAX(seq) FROM jobs WHERE state = ? GROUP BY model_name) ORDER BY seq", (state,)
        )
        return {r.model_name: r for r in rows}

    def count(self, state: str | None = None) -> int:
        """How many jobs (in a state)."""
        with self._lock:
            if state is None:
                return self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (state,)).fetchone()[0]

    def delete(self, job_id: str) -> bool:
        """Remove a job's row; True when there was one."""
        with self._lock:
            return self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    def claim(self, job_id: str, worker: dict[str, Any]) -> bool:
        """Queued -> running for this worker, atomically; False when the job is not queued any more."""
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET state = ?, phase = 'starting', started_at = ?, heartbeat_at = ?, worker = ? "
                "WHERE id = ? AND state = ?",
                (RUNNING, now, now, json.dumps(worker), job_id, QUEUED),
            )
            return cur.rowcount == 1

    def finish_if_unfinished(self, job_id: str, state: str, **values: Any) -> bool:
        """Set a final state unless the job already has one (a worker and the API may race); True if set."""
        values = {"state": state, "phase": state, "finished_at": time.time(), **values}
        cols = ", ".join(f"{k} = ?" for k in values)
        args = [json.dumps(v) if k in _JSON_FIELDS else v for k, v in values.items()]
        with self._lock:
            cur = self._db.execute(
                f"UPDATE jobs SET {cols} WHERE id = ? AND state IN (?, ?)", (*args, job_id, QUEUED, RUNNING)
            )
            return cur.rowcount == 1

    def cancel_queued(self, job_id: str, error: str) -> bool:
        """Queued -> cancelled, atomically (a worker may be claiming it); False when it was not queued."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET state = ?, phase = ?, error = ?, finished_at = ? WHERE id = ? AND state = ?",
                (CANCELLED, CANCELLED, error, time.time(), job_id, QUEUED),
            )
            return cur.rowcount == 1

    def request_cancel(self, job_id: str, reason: str) -> None:
        """Ask the process running the job to stop (it polls this column)."""
        self.update(job_id, cancel_reason=reason)

    def cancel_reason(self, job_id: str) -> str | None:
        """Why the job was asked to stop, or None."""
        with self._lock:
            row = self._db.execute("SELECT cancel_reason FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row[0] if row else None

    def stale_running(self, older_than_s: float) -> list[JobRecord]:
        """Running jobs whose worker has not beaten for older_than_s seconds."""
        return self._select(
            "WHERE state = ? AND COALESCE(heartbeat_at, started_at, 0) < ? ORDER BY seq",
            (RUNNING, time.time() - older_than_s),
        )

    def queued_ids(self) -> list[str]:
        """Queued jobs, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM jobs WHERE state = ? ORDER BY seq", (QUEUED,)).fetchall()
        return [r[0] for r in rows]

    def recover(self) -> tuple[list[str], list[str]]:
        """At start: mark jobs left running as failed (interrupted); return (interrupted, queued) ids."""
        interrupted = [r.id for r in self.list(state=RUNNING, limit=10**6)]
        for job_id in interrupted:
            self.update(
                job_id, state=FAILED, phase=FAILED, error=INTERRUPTED, error_type="interrupted", finished_at=time.time()
            )
        queued = [r.id for r in self.list(state=QUEUED, limit=10**6, newest_first=False)]
        return interrupted, queued

    def _select(self, clause: str, args: tuple) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM jobs {clause}", args).fetchall()
        return [_record(row) for row in rows]


def _record(row: sqlite3.Row) -> JobRecord:
    data = dict(row)
    for key in _JSON_FIELDS:
        data[key] = json.loads(data[key]) if data[key] else {}
    return JobRecord(**data)

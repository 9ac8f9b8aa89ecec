"""SQLite persistence of jobs: one row per job, JSON columns for the structured fields."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
CREATE TABLE IF NOT EXISTS job_history (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    state TEXT NOT NULL,
    at REAL NOT NULL,
    note TEXT
);
CREATE INDEX IF NOT EXISTS job_history_job ON job_history(job_id, n);
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
    one writer, and the busy timeout makes a writer wait for another instead of failing. Every change of a
    job's state is one `BEGIN IMMEDIATE` transaction that checks the state it comes from, writes the new
    one and appends it to the job's history (`job_history`): a transition is either wholly recorded or not
    at all, two writers cannot both move a job out of one state, and the history is the job's every state in
    order. IMMEDIATE takes the write lock at the start, so a transaction never has to upgrade a read lock
    (the case SQLite answers with "database is locked" whatever the busy timeout).
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

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (under the thread lock): committed when the block ends, rolled back on error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @staticmethod
    def _log(db: sqlite3.Connection, job_id: str, state: str, at: float, note: str | None = None) -> None:
        db.execute("INSERT INTO job_history (job_id, state, at, note) VALUES (?, ?, ?, ?)", (job_id, state, at, note))

    def _transition(self, job_id: str, to: str, sources: tuple[str, ...], values: dict[str, Any]) -> bool:
        """Move a job from one of `sources` to `to`, setting `values`, and record it; False when it was in none."""
        values = {"state": to, **values}
        cols = ", ".join(f"{k} = ?" for k in values)
        args = [json.dumps(v) if k in _JSON_FIELDS else v for k, v in values.items()]
        marks = ", ".join("?" * len(sources))
        with self._write() as db:
            cur = db.execute(f"UPDATE jobs SET {cols} WHERE id = ? AND state IN ({marks})", (*args, job_id, *sources))
            if cur.rowcount != 1:
                return False
            self._log(db, job_id, to, time.time(), values.get("error_type"))
            return True

    def history(self, job_id: str) -> list[dict[str, Any]]:
        """The job's states in the order they were entered: [{state, at (ISO time), note}]."""
        with self._lock:
            rows = self._db.execute(
                "SELECT state, at, note FROM job_history WHERE job_id = ? ORDER BY n", (job_id,)
            ).fetchall()
        return [{"state": r[0], "at": iso_time(r[1]), "note": r[2]} for r in rows]

    def create(self, job_id: str, config: dict[str, Any], *, out_dir: str) -> JobRecord:
        """Insert a queued job."""
        now = time.time()
        with self._write() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            db.execute(
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
            self._log(db, job_id, QUEUED, now)
        return self.get(job_id)

    def update(self, job_id: str, **values: Any) -> None:
        """Set columns of one job; dict fields are stored as JSON. The service changes states through the
        checked transitions below (claim, finish_if_unfinished, cancel_queued); a state set here is recorded
        in the history all the same."""
        if not values:
            return
        cols = ", ".join(f"{k} = ?" for k in values)
        args = [json.dumps(v) if k in _JSON_FIELDS else v for k, v in values.items()]
        if "state" not in values:
            with self._lock:
                self._db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*args, job_id))
            return
        with self._write() as db:
            if db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*args, job_id)).rowcount == 1:
                self._log(db, job_id, values["state"], time.time(), values.get("error_type"))

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
        with self._write() as db:
            db.execute("DELETE FROM job_history WHERE job_id = ?", (job_id,))
            return db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    def claim(self, job_id: str, worker: dict[str, Any]) -> bool:
        """Queued -> running for this worker, atomically; False when the job is not queued any more."""
        now = time.time()
        values = {"phase": "starting", "started_at": now, "heartbeat_at": now, "worker": worker}
        return self._transition(job_id, RUNNING, (QUEUED,), values)

    def finish_if_unfinished(self, job_id: str, state: str, **values: Any) -> bool:
        """Set a final state unless the job already has one (a worker and the API may race); True if set."""
        values = {"phase": state, "finished_at": time.time(), **values}
        return self._transition(job_id, state, (QUEUED, RUNNING), values)

    def cancel_queued(self, job_id: str, error: str) -> bool:
        """Queued -> cancelled, atomically (a worker may be claiming it); False when it was not queued."""
        values = {"phase": CANCELLED, "error": error, "finished_at": time.time()}
        return self._transition(job_id, CANCELLED, (QUEUED,), values)

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
        interrupted = [
            r.id
            for r in self.list(state=RUNNING, limit=10**6)
            if self.finish_if_unfinished(r.id, FAILED, error=INTERRUPTED, error_type="interrupted")
        ]
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

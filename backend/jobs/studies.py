"""Compression studies: a grid of job options run as ordinary jobs, with their bookkeeping in SQLite.

A study row holds the grid and the ids of its jobs; every figure of a study is read from its jobs' reports.
"""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.echo import clip
from backend.jobconfig import TARGET_OPTIONS, ConfigError, JobConfig, Option, job_options, option, study_axes
from backend.jobs.manager import JobStateError
from backend.jobs.store import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, iso_time
from backend.metrics.study import aggregate_seeds, point_metrics, with_pareto

MAX_POINTS = 24
REQUIRED_AXES = ("sparsity", "structural_ratio")
# A latency target (an option of the study, or an axis) chooses the structural ratio of each point, so a study that
# sets one sweeps no ratio.
CHOSEN_BY_TARGET = {"structural_ratio": TARGET_OPTIONS}


def missing_axes(given: Mapping[str, Any]) -> list[str]:
    """The required axes that `given` (the grid's axes and the study's options, name -> value) leaves out."""
    targeted = any(given.get(t) is not None for t in TARGET_OPTIONS)
    return [n for n in REQUIRED_AXES if given.get(n) is None and not (targeted and n in CHOSEN_BY_TARGET)]


MAX_SEEDS = (
    5  # `seeds`: every grid point runs once per seed  # a study is a compression trade-off: both amounts are swept
)
log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    model_name TEXT NOT NULL,
    dataset TEXT,
    grid TEXT NOT NULL,
    options TEXT NOT NULL,
    points TEXT NOT NULL,
    created_at REAL NOT NULL,
    cancelled_at REAL
);
"""


class StudyNotFound(LookupError):
    """No study has that id."""


@dataclass
class StudyRecord:
    """One study as stored: its grid, the shared options, and one {job_id, grid values} per point."""

    id: str
    seq: int
    model_name: str
    dataset: str | None
    grid: dict[str, list[float]]
    options: dict[str, Any]
    points: list[dict[str, Any]]
    created_at: float
    cancelled_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def job_ids(self) -> list[str]:
        return [p["job_id"] for p in self.points]


class StudyStore:
    """The studies table, in the same SQLite file as the jobs (its own connection behind a lock)."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.executescript(_SCHEMA)

    def create(self, record: StudyRecord) -> None:
        """Insert a study; its seq is assigned here."""
        with self._lock:
            record.seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM studies").fetchone()[0]
            self._db.execute(
                "INSERT INTO studies (id, seq, model_name, dataset, grid, options, points, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.seq,
                    record.model_name,
                    record.dataset,
                    json.dumps(record.grid),
                    json.dumps(record.options),
                    json.dumps(record.points),
                    record.created_at,
                ),
            )

    def get(self, study_id: str) -> StudyRecord | None:
        """One study, or None."""
        rows = self._select("WHERE id = ?", (study_id,))
        return rows[0] if rows else None

    def list(self, limit: int = 50) -> list[StudyRecord]:
        """Studies, newest first."""
        return self._select("ORDER BY seq DESC LIMIT ?", (int(limit),))

    def mark_cancelled(self, study_id: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE studies SET cancelled_at = ? WHERE id = ? AND cancelled_at IS NULL", (time.time(), study_id)
            )

    def delete(self, study_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM studies WHERE id = ?", (study_id,))

    def find_by_job(self, job_id: str) -> StudyRecord | None:
        """The study a job belongs to, or None (a LIKE prefilter, then an exact check)."""
        for record in self._select("WHERE points LIKE ? ORDER BY seq DESC", (f'%"{job_id}"%',)):
            if job_id in record.job_ids:
                return record
        return None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _select(self, clause: str, args: tuple) -> list[StudyRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM studies {clause}", args).fetchall()
        return [
            StudyRecord(
                **{
                    **dict(r),
                    "grid": json.loads(r["grid"]),
                    "options": json.loads(r["options"]),
                    "points": json.loads(r["points"]),
                }
            )
            for r in rows
        ]


def expand_grid(body: Mapping[str, Any]) -> tuple[dict[str, list[Any]], dict[str, Any], list[JobConfig]]:
    """(grid, shared options, one validated JobConfig per point); ConfigError names the first bad value.

    The axes are the options declared `study_axis` (backend/jobconfig.py). The order groups the points that share
    a distilled student: the axes that act only after distillation (the pruning options) vary fastest, so those
    points run one after another and reuse it.
    """
    if not isinstance(body, Mapping):
        raise ConfigError("body", "The request body must be a JSON object.")
    grid = body.get("grid")
    if not isinstance(grid, Mapping):
        raise ConfigError(
            "grid", 'grid must be an object such as {"sparsity": [0.3, 0.5], "structural_ratio": [0.25, 0.5]}.'
        )
    declared = {o.name: o for o in job_options() if o.study_axis}
    unknown = sorted(set(grid) - set(declared))
    if unknown:
        raise ConfigError(f"grid.{clip(unknown[0])}", f"grid axes can be {list(declared)}, got {clip(unknown)}.")
    for name in missing_axes({**{t: body.get(t) for t in TARGET_OPTIONS}, **grid}):  # amounts: grid axes only
        alternative = f" (or a latency target, {' or '.join(TARGET_OPTIONS)}, which chooses it)"
        raise ConfigError(
            f"grid.{name}",
            f"grid.{name} is required: a list of values to sweep{alternative if name in CHOSEN_BY_TARGET else ''}.",
        )
    seeds = _seeds(body)
    options = {k: v for k, v in body.items() if k not in ("grid", "seeds")}
    if seeds is not None and "seed" in options:
        raise ConfigError("seeds", "give either seed (one) or seeds (a list), not both.")
    axes: dict[str, list[Any]] = {}
    for name, declaration in declared.items():
        if name not in grid:
            continue
        if name in options:
            raise ConfigError(name, f"{name} is a grid axis here; set it in grid.{name}, not as an option.")
        axes[name] = _axis(declaration, grid[name])
    count = 1
    for values in axes.values():
        count *= len(values)
    runs = count * len(seeds or [None])
    if runs > MAX_POINTS:
        raise ConfigError(
            "grid",
            f"the grid has {count} points x {len(seeds or [None])} seeds = {runs} jobs; a study may have at most "
            f"{MAX_POINTS}.",
        )
    late = [n for n in axes if declared[n].group == "pruning" and n != "structural_ratio"]
    order = [n for n in axes if n not in late] + late
    configs = []
    for seed in seeds or [None]:  # seed by seed: each seed's teacher and students are made once, then reused
        for combo in itertools.product(*(axes[n] for n in order)):
            point = dict(zip(order, combo, strict=True))
            try:
                configs.append(
                    JobConfig.from_dict({**options, **point, **({"seed": seed} if seed is not None else {})})
                )
            except ConfigError as exc:
                if exc.field in point:
                    raise ConfigError(f"grid.{exc.field}", f"grid.{exc.field}: {exc}") from None
                raise
    return axes, {**options, **({"seeds": seeds} if seeds is not None else {})}, configs


def grid_points(options: Mapping[str, Any], configs: list[JobConfig]) -> list[int]:
    """The grid point of each config expand_grid returned (they come seed by seed, the grid in the same order)."""
    per_seed = len(configs) // len(options.get("seeds") or [None])
    return [i % per_seed for i in range(len(configs))]


def _seeds(body: Mapping[str, Any]) -> list[int] | None:
    """The study's `seeds`: 1 to MAX_SEEDS distinct valid seeds, or None when not given."""
    if "seeds" not in body:
        return None
    seeds = body["seeds"]
    if not isinstance(seeds, list) or not 1 <= len(seeds) <= MAX_SEEDS:
        raise ConfigError("seeds", f"seeds must be a list of 1 to {MAX_SEEDS} seeds, got {clip(seeds)}.")
    checked = [option("seed").check(v, field="seeds") for v in seeds]
    if len(set(checked)) != len(checked):
        raise ConfigError("seeds", f"seeds lists a seed twice: {clip(seeds)}.")
    return checked


def _axis(option: Option, values: Any) -> list[Any]:
    """A non-empty list of distinct values, each valid for the option."""
    field = f"grid.{option.name}"
    if not isinstance(values, list) or not values:
        raise ConfigError(field, f"{field} must be a non-empty list of values to sweep.")
    checked = []
    for v in values:
        if v is None:
            raise ConfigError(field, f"{field} must hold values, got null.")
        checked.append(option.check(v, field=field))
    dupes = sorted({repr(v) for v in checked if checked.count(v) > 1})
    if dupes:
        raise ConfigError(field, f"{field} has duplicate value(s) {dupes}.")
    return checked


# A study's states: those of its points, plus partial (some points failed) and cancelling (a cancel under way).
STUDY_STATES = (QUEUED, RUNNING, "cancelling", SUCCEEDED, "partial", FAILED, CANCELLED)
STUDY_FINISHED = (SUCCEEDED, "partial", FAILED, CANCELLED)


def study_state(states: list[str], cancelled: bool) -> str:
    """queued, running, succeeded (all points), partial (some failed), failed (none succeeded), cancelled."""
    if any(s in (QUEUED, RUNNING) for s in states):
        if cancelled:
            return "cancelling"
        return QUEUED if all(s == QUEUED for s in states) else RUNNING
    if cancelled:
        return CANCELLED
    if all(s == SUCCEEDED for s in states):
        return SUCCEEDED
    return "partial" if SUCCEEDED in states else FAILED


class StudyService:
    """Studies over a job manager (public methods only: submit, get, cancel, report) and a StudyStore."""

    def __init__(self, manager: Any, store: StudyStore) -> None:
        self.manager, self.store = manager, store
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._watcher: _StudyWatcher | None = None
        self._metrics: dict[str, dict[str, Any]] = {}  # job_id -> its row figures: a succeeded report never changes

    def create(self, body: Mapping[str, Any], admit: Callable[[int], None] | None = None) -> StudyRecord:
        """Validate every point, then submit them all as jobs; nothing is submitted when one is bad.

        `admit(n)` runs after validation, before anything is queued: it raises to refuse the n points (queue cap)."""
        axes, options, configs = expand_grid(body)
        if admit is not None:
            admit(len(configs))
        points = []
        for point, config in zip(grid_points(options, configs), configs, strict=True):
            record = self.manager.submit(config)
            points.append(
                {"job_id": record.id, "point": point, "seed": config.seed,
                 **{n: getattr(config, n) for n in study_axes()}}
            )  # fmt: skip
        first = configs[0]
        study = StudyRecord(
            id="study_" + uuid.uuid4().hex[:16],
            seq=0,
            model_name=first.model_name,
            dataset=first.dataset,
            grid=axes,
            options=dict(options),
            points=points,
            created_at=time.time(),
        )
        self.store.create(study)
        self.watch(study)
        return study

    def get(self, study_id: Any) -> StudyRecord:
        record = self.store.get(study_id) if isinstance(study_id, str) else None
        if record is None:
            raise StudyNotFound(f"No study with id {study_id!r}; GET /studies lists the studies.")
        return record

    def rows(self, study: StudyRecord) -> list[dict[str, Any]]:
        """One row per grid point: grid values, state, measured figures (over seeds: means, standard deviations and
        t-intervals), Pareto flags on the means."""
        return with_pareto(aggregate_seeds(self.runs(study), study_axes()))

    def runs(self, study: StudyRecord) -> list[dict[str, Any]]:
        """One row per job (a grid point at one seed): grid values, seed, job state, measured figures."""
        rows = []
        for i, point in enumerate(study.points):
            row: dict[str, Any] = {"index": i, **point}
            try:
                job = self.manager.get(point["job_id"])
            except LookupError:
                job = None
            row["state"] = job.state if job is not None else "deleted"
            metrics: dict[str, Any] = {}
            if job is not None and job.state == SUCCEEDED:
                try:
                    metrics = self._point_metrics(job)
                except (FileNotFoundError, ValueError):
                    row["error"] = "the report is missing or unreadable"
            elif job is not None and job.error:
                row["error"] = job.error
            rows.append({**row, **metrics})
        return rows

    def _point_metrics(self, job: Any) -> dict[str, Any]:
        if job.id not in self._metrics:
            if len(self._metrics) > 10_000:  # bounded: a long-lived server forgets the oldest
                self._metrics.pop(next(iter(self._metrics)))
            self._metrics[job.id] = point_metrics(self.manager.report(job))
        return self._metrics[job.id]

    def summary(self, study: StudyRecord, runs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The public shape of a study (without rows): its state and progress counted in jobs (points x seeds)."""
        runs = self.runs(study) if runs is None else runs
        states = [r["state"] for r in runs]
        finished = sum(s in (SUCCEEDED, FAILED, CANCELLED, "deleted") for s in states)
        return {
            "study_id": study.id,
            "state": study_state(states, study.cancelled_at is not None),
            "model_name": study.model_name,
            "dataset": study.dataset,
            "grid": study.grid,
            "options": study.options,
            "points_total": len(runs),
            "points_done": finished,
            "grid_points": len({r.get("point", r["index"]) for r in runs}),
            "seeds": study.options.get("seeds") or [study.options.get("seed", 0)],
            "points_succeeded": states.count(SUCCEEDED),
            "job_ids": study.job_ids,
            "created_at": iso_time(study.created_at),
            "cancelled_at": iso_time(study.cancelled_at),
        }

    def detail(self, study: StudyRecord) -> dict[str, Any]:
        """Summary, one row per grid point (means over seeds), one run per job, and the Pareto-optimal points."""
        runs = self.runs(study)
        rows = with_pareto(aggregate_seeds(runs, study_axes()))
        out = self.summary(study, runs)
        out["pareto_latency_job_ids"] = [r["job_id"] for r in rows if r["pareto_latency"]]
        out["pareto_size_job_ids"] = [r["job_id"] for r in rows if r["pareto_size"]]
        out["pareto_note"] = (
            "pareto_latency: no other point has accuracy >= and batch-1 latency <= (one strictly "
            "better); pareto_size: the same with dense model size; unmeasured points are never on "
            "the frontier; with several seeds every figure of a row is the mean over its succeeded seeds "
            "(<metric>_std: standard deviation, <metric>_ci: 95% Student-t interval of the mean), the frontier is "
            "computed on the means, and separable: false marks a frontier point whose accuracy and cost intervals "
            "both overlap those of a point it dominates"
        )
        out["rows"] = rows
        out["runs"] = runs
        return out

    def cancel(self, study: StudyRecord) -> None:
        """Cancel every point not finished; finished points are kept."""
        self.store.mark_cancelled(study.id)
        for job_id in reversed(study.job_ids):  # the last queued first: a free worker takes from the front
            try:
                if not self.manager.get(job_id).finished:
                    self.manager.cancel(job_id)
            except (JobStateError, LookupError):  # finished meanwhile, or deleted
                continue

    # -- progress events ------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """listener(study_progress payload), called when a point of a study ends."""
        self._listeners.append(listener)

    def start_watching(self, interval_s: float = 1.0) -> None:
        """Follow unfinished studies from a background thread; tell the listeners as each point ends.

        Polling the store (the one source of truth for job states) works whichever way jobs run: worker
        threads, local worker processes or Celery workers elsewhere.
        """
        if self._watcher is None:
            self._watcher = _StudyWatcher(self, interval_s)
            for study in self.store.list(limit=1000):
                self._watcher.watch(study, existing=True)
            self._watcher.start()

    def watch(self, study: StudyRecord) -> None:
        """Report this study's progress (a no-op until start_watching)."""
        if self._watcher is not None:
            self._watcher.watch(study)

    def stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()

    def progress_events(self, study: StudyRecord, seen: set[str]) -> tuple[list[dict[str, Any]], bool]:
        """study_progress payloads for points that ended since `seen` (updated), and whether all have ended."""
        rows = self.runs(study)
        summary = self.summary(study, rows)
        ended = [r for r in rows if r["state"] in (SUCCEEDED, FAILED, CANCELLED, "deleted")]
        fresh = [r for r in ended if r["job_id"] not in seen]
        events = []
        for i, row in enumerate(fresh):
            seen.add(row["job_id"])
            done = len(ended) - len(fresh) + i + 1
            state = summary["state"] if done == len(rows) else ("cancelling" if study.cancelled_at else RUNNING)
            events.append({**summary, "points_done": done, "state": state, "latest": row})
        return events, len(ended) == len(rows)


class _StudyWatcher(threading.Thread):
    """Polls the unfinished studies once a second and emits one study_progress per point that ended."""

    def __init__(self, service: StudyService, interval_s: float) -> None:
        super().__init__(name="kd-study-watcher", daemon=True)
        self.service, self.interval_s = service, interval_s
        self._lock = threading.Lock()
        self._active: dict[str, set[str]] = {}
        self._existing: set[str] = set()  # studies found at start: one that had already ended says nothing
        self._wake, self._stopped = threading.Event(), threading.Event()

    def watch(self, study: StudyRecord, *, existing: bool = False) -> None:
        with self._lock:
            self._active.setdefault(study.id, set())
            if existing:
                self._existing.add(study.id)
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def run(self) -> None:
        first = True
        while not self._stopped.is_set():
            with self._lock:
                active = dict(self._active)
            if not active:
                self._wake.wait()
                self._wake.clear()
                continue
            if not first:
                self._stopped.wait(self.interval_s)
            first = False
            for study_id, seen in active.items():
                try:
                    self._check(study_id, seen)
                except sqlite3.ProgrammingError:  # the store was closed: the service is shutting down
                    return
                except Exception:  # a broken listener or report must not stop the watching
                    log.exception("study watcher failed on %s", study_id)

    def _check(self, study_id: str, seen: set[str]) -> None:
        study = self.service.store.get(study_id)
        if study is None:  # deleted
            with self._lock:
                self._active.pop(study_id, None)
            return
        with self._lock:
            ended_before_start = study_id in self._existing and not seen
            self._existing.discard(study_id)
        events, finished = self.service.progress_events(study, seen)
        if not (ended_before_start and finished):  # a study that had ended before the server started: nothing new
            for payload in events:
                for listener in list(self.service._listeners):
                    listener(payload)
        if finished:
            with self._lock:
                self._active.pop(study_id, None)

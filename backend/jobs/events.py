"""The bridge from a job's callbacks to events: phase changes, throttled progress, metrics, stop flag."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from backend.kd.callbacks import PHASES, Callbacks
from backend.metrics.jsonsafe import jsonable

__all__ = ["PHASES", "Emit", "JobRelay", "jsonable"]

# Rough share of a job's time per phase, for an overall percentage (an estimate, and named so).
# The optional phases (latency_target, controls) weigh nothing: a job without it must still reach 100% (an estimate, and named so).
_PHASE_WEIGHT = {
    "data": 5,
    "latency_target": 0,
    "teacher": 30,
    "student": 5,
    "distill": 25,
    "prune": 25,
    "controls": 0,
    "evaluate": 10,
}

Emit = Callable[..., None]  # emit(event, payload, room=None)


class JobRelay(Callbacks):
    """Callbacks of one job: turns them into events and store updates, and carries its stop flag."""

    def __init__(
        self,
        job_id: str,
        emit: Emit,
        *,
        on_update: Callable[..., None] | None = None,
        min_interval_s: float = 0.1,
        heartbeat_s: float = 1.0,
        persist_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self.stop_event = threading.Event()
        self.cancel_requested = False  # set by a user's cancel, as opposed to a shutdown
        self._emit, self._on_update, self._clock = emit, on_update or (lambda **kw: None), clock
        self.min_interval_s, self.heartbeat_s, self.persist_s = min_interval_s, heartbeat_s, persist_s
        self._lock = threading.Lock()
        self.phase: str | None = None
        self.phase_timings: dict[str, float] = {}
        self._started = clock()
        self._progress: dict[str, Any] = {}
        self._last_emit = self._last_persist = float("-inf")
        self._phase_started = self._started
        self._closed = False

    # -- Callbacks ---------------------------------------------------------------------------

    def on_phase_start(self, phase: str, info: dict[str, Any]) -> None:
        """Announce the phase and reset its progress."""
        with self._lock:
            self.phase, self._phase_started = phase, self._clock()
            total = info.get("total_steps") if isinstance(info, Mapping) else None
            self._progress = {
                "phase": phase,
                "step": 0,
                "total": int(total or 0),
                "percent": 0.0,
                "losses": {},
                "eta_s": None,
            }
            progress = self._progress_payload(heartbeat=False)
        self._send("training_status", {"status": "running", "phase": phase, "info": info})
        self._on_update(phase=phase, progress=progress)

    def on_phase_end(self, phase: str, info: dict[str, Any]) -> None:
        """Record how long the phase took."""
        with self._lock:
            seconds = info.get("seconds") if isinstance(info, Mapping) else None
            if not isinstance(seconds, (int, float)):
                seconds = self._clock() - self._phase_started
            self.phase_timings[phase] = round(float(seconds), 3)
            timings = dict(self.phase_timings)
        self._on_update(phase_timings=timings)

    def on_step_end(self, phase: str, step: int, total: int, losses: dict[str, float], eta_s: float | None) -> None:
        """Progress, emitted at most every min_interval_s (and always on a phase's last step)."""
        with self._lock:
            self.phase = phase
            percent = round(100.0 * step / total, 2) if total else None
            self._progress = {
                "phase": phase,
                "step": int(step),
                "total": int(total or 0),
                "percent": percent,
                "losses": jsonable(dict(losses or {})),
                "eta_s": _rounded(eta_s),
            }
            now = self._clock()
            due = now - self._last_emit >= self.min_interval_s or (total and step >= total)
        if due:
            self._emit_progress(heartbeat=False)

    def on_metrics(self, phase: str, metrics: dict[str, Any]) -> None:
        """Validation or pruning-step results, relayed as they come."""
        self._send("training_metrics", {"phase": phase, "metrics": metrics})

    def should_stop(self) -> bool:
        """True once cancellation was asked for."""
        return self.stop_event.is_set()

    # -- driven by the manager ----------------------------------------------------------------

    def heartbeat(self) -> None:
        """Re-send the last progress when nothing was sent for heartbeat_s (a step can be slow)."""
        with self._lock:
            quiet = self.phase is not None and self._clock() - self._last_emit >= self.heartbeat_s
        if quiet:
            self._emit_progress(heartbeat=True)

    def close(self) -> None:
        """No progress after this returns (the job's final status follows)."""
        with self._lock:
            self._closed = True

    def elapsed_s(self) -> float:
        return round(self._clock() - self._started, 3)

    def _emit_progress(self, *, heartbeat: bool) -> None:
        # Sent under the lock so that nothing follows close(); listeners never call back into the relay.
        with self._lock:
            if self._closed:
                return
            payload = self._progress_payload(heartbeat)
            now = self._clock()
            self._last_emit = now
            self._send("training_progress", payload)
            if now - self._last_persist >= self.persist_s:
                self._last_persist = now
                self._on_update(progress=payload)

    def _progress_payload(self, heartbeat: bool) -> dict[str, Any]:
        progress = dict(self._progress)
        payload = {
            "job_id": self.job_id,
            **progress,
            "overall_percent": self._overall(progress),
            "elapsed_s": self.elapsed_s(),
            "heartbeat": heartbeat,
        }
        for name, value in progress.get("losses", {}).items():
            payload.setdefault(name, value)  # loss terms also at top level: loss, kd_loss, ce_loss ...
        return payload

    @staticmethod
    def _overall(progress: Mapping[str, Any]) -> float | None:
        phase = progress.get("phase")
        if phase not in _PHASE_WEIGHT:
            return None
        done = sum(_PHASE_WEIGHT[p] for p in PHASES[: PHASES.index(phase)])
        frac = (progress.get("percent") or 0.0) / 100.0
        return round(100.0 * (done + frac * _PHASE_WEIGHT[phase]) / sum(_PHASE_WEIGHT.values()), 2)

    def _send(self, event: str, payload: dict[str, Any]) -> None:
        self._emit(event, jsonable({"job_id": self.job_id, **payload}), room=self.job_id)


def _rounded(value: Any) -> float | None:
    if isinstance(value, (int, float)) and math.isfinite(value):
        return round(float(value), 2)
    return None

"""Callbacks through which a job reports progress; the loop knows nothing of Flask or Socket.IO."""

from __future__ import annotations

from typing import Any

# A job's phases, in order: the pipeline runs them, the relay weights progress by them, the report times them.
PHASES = ("data", "latency_target", "teacher", "student", "distill", "prune", "controls", "evaluate")
# run only when the job asks for them: a latency target (target_latency_ms / target_speedup), controls (`controls`)
OPTIONAL_PHASES = ("latency_target", "controls")
# What each phase (and the statuses around them) means to a person: the dashboard and the CLI show these.
PHASE_LABELS = {
    "queued": "Waiting in the queue",
    "starting": "Starting",
    "data": "Loading the data",
    "latency_target": "Searching the compression that meets the latency target",
    "teacher": "Training the teacher",
    "student": "Building the smaller student",
    "distill": "Distilling the teacher into the student",
    "prune": "Pruning and fine-tuning the student",
    "controls": "Training the control arms (no teacher)",
    "evaluate": "Measuring teacher and student",
    "done": "Done",
    "cancelled": "Cancelled",
    "failed": "Failed",
}


class JobCancelled(Exception):
    """Raised inside a job when its stop flag is set."""


class Callbacks:
    """Hooks a job calls; every method is optional. Subclass and override what you need."""

    def on_phase_start(self, phase: str, info: dict[str, Any]) -> None:
        """A phase begins: data, teacher, student, distill, prune, evaluate."""

    def on_phase_end(self, phase: str, info: dict[str, Any]) -> None:
        """A phase ended; info holds its seconds and results."""

    def on_step_end(self, phase: str, step: int, total: int, losses: dict[str, float], eta_s: float | None) -> None:
        """One optimisation step ended (step counts from 1 within the phase)."""

    def on_metrics(self, phase: str, metrics: dict[str, Any]) -> None:
        """Validation results, or the results of one pruning step."""

    def should_stop(self) -> bool:
        """True when the job must stop as soon as it can."""
        return False


class CallbackList(Callbacks):
    """Fans each call out to several callbacks; any of them may ask to stop."""

    def __init__(self, *callbacks: Callbacks | None) -> None:
        self.callbacks = [c for c in callbacks if c is not None]

    def on_phase_start(self, phase, info):
        for c in self.callbacks:
            c.on_phase_start(phase, info)

    def on_phase_end(self, phase, info):
        for c in self.callbacks:
            c.on_phase_end(phase, info)

    def on_step_end(self, phase, step, total, losses, eta_s):
        for c in self.callbacks:
            c.on_step_end(phase, step, total, losses, eta_s)

    def on_metrics(self, phase, metrics):
        for c in self.callbacks:
            c.on_metrics(phase, metrics)

    def should_stop(self) -> bool:
        return any(c.should_stop() for c in self.callbacks)

    def check_stop(self) -> None:
        """Raise JobCancelled when any callback asks to stop."""
        if self.should_stop():
            raise JobCancelled("cancelled")

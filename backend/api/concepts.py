"""The service's vocabulary, each word defined once where it belongs and gathered here for clients.

GET /models returns it as `concepts`: the dashboard, test_backend.py and other clients read phases, states,
presets, precisions, datasets, report sections, metric keys and plot kinds from the server instead of keeping
copies that drift.
"""

from __future__ import annotations

from typing import Any

from backend.devices import PRECISIONS
from backend.jobconfig import BUILTIN_DATASETS, DEFAULT_DATASET, OPTION_GROUPS, QUANTIZE_OPTIONS
from backend.jobs import FINISHED, STATES
from backend.jobs.studies import MAX_POINTS, MAX_SEEDS, REQUIRED_AXES, STUDY_FINISHED, STUDY_STATES
from backend.kd.callbacks import OPTIONAL_PHASES, PHASE_LABELS, PHASES
from backend.metrics.keys import EFFECTIVENESS_KEYS, LOSS_TERMS, SECTIONS
from backend.metrics.plots import PLOT_KINDS
from backend.metrics.study import METRICS as STUDY_METRICS
from backend.metrics.study import STUDY_PLOT_KINDS
from backend.models.registry import PRESETS

# The Socket.IO events a job emits (README "Socket.IO events"), and the study's.
EVENTS = ("training_status", "training_progress", "training_metrics", "training_error", "study_progress")


def concepts() -> dict[str, Any]:
    """Every word a client needs, from its one definition."""
    from backend.data.public import listing  # imports torch (its loaders): the API process starts without it

    return {
        "phases": list(PHASES),
        "optional_phases": list(OPTIONAL_PHASES),
        "phase_labels": dict(PHASE_LABELS),
        "job_states": list(STATES),
        "finished_states": list(FINISHED),
        "study_states": list(STUDY_STATES),
        "study_finished_states": list(STUDY_FINISHED),
        "required_study_axes": list(REQUIRED_AXES),
        "max_study_jobs": MAX_POINTS,
        "max_study_seeds": MAX_SEEDS,
        "option_groups": OPTION_GROUPS,
        "presets": list(PRESETS),
        "precisions": list(PRECISIONS),
        "quantize_options": list(QUANTIZE_OPTIONS),
        "datasets": {family: list(names) for family, names in BUILTIN_DATASETS.items()},
        "default_datasets": dict(DEFAULT_DATASET),
        "public_datasets": [d["name"] for d in listing()],
        "report_sections": list(SECTIONS),
        "effectiveness_metrics": list(EFFECTIVENESS_KEYS),
        "loss_terms": list(LOSS_TERMS),
        "plot_kinds": list(PLOT_KINDS),
        "study_plot_kinds": list(STUDY_PLOT_KINDS),
        "study_metrics": list(STUDY_METRICS),
        "events": list(EVENTS),
    }

"""Small real jobs shared by the engine tests."""

from __future__ import annotations

from pathlib import Path

from backend.jobconfig import JobConfig
from backend.pipeline import JobResult, run_job

TINY = {"epochs": 1, "kd_epochs": 1, "finetune_epochs": 1, "pruning_steps": 3, "max_samples": 240}


def tiny_job(tmp: Path, model: str, callbacks=None, job_id: str = "job-test", **options) -> JobResult:
    """A real job, shrunk (few samples, one epoch a phase) so it runs in seconds."""
    config = JobConfig.from_dict({"model_name": model, **TINY, **options})
    return run_job(
        config, callbacks, job_id=job_id, out_dir=tmp / job_id, cache_dir=tmp / "cache", upload_dir=tmp / "uploads"
    )

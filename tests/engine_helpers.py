"""Small real jobs shared by the engine tests."""

from __future__ import annotations

from pathlib import Path

from backend.jobconfig import JobConfig
from backend.pipeline import JobResult, run_job

TINY = {"epochs": 1, "kd_epochs": 1, "finetune_epochs": 1, "pruning_steps": 3, "max_samples": 240}
# A whole job through a server, as small as it gets: DistilBERT at the quick preset's from-scratch sizes. What the
# service tests check is the same for every model, and this is the cheapest whole job (about 19 s against
# ResNet-18's 28 s on one core, most of it measuring and writing outputs).
SERVER_JOB = {
    "model_name": "distilbert",
    "epochs": 1,
    "kd_epochs": 1,
    "finetune_epochs": 1,
    "max_samples": 200,
    "pruning_steps": 1,
    "pretrained": False,
}
# Every report's sections, written out here rather than taken from backend/metrics/report.py.
REPORT_SECTIONS = (
    "student_model_performance",
    "teacher_vs_student_comparison",
    "knowledge_distillation_analysis",
    "pruning_analysis",
    "efficiency_improvements",
    "learning_outcomes",
    "metadata",
)


def tiny_job(tmp: Path, model: str, callbacks=None, job_id: str = "job-test", **options) -> JobResult:
    """A real job, shrunk (few samples, one epoch a phase) so it runs in seconds."""
    config = JobConfig.from_dict({"model_name": model, **TINY, **options})
    return run_job(
        config, callbacks, job_id=job_id, out_dir=tmp / job_id, cache_dir=tmp / "cache", upload_dir=tmp / "uploads"
    )

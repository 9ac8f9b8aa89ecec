"""What a scripted stand-in for the pipeline returns: the files a job leaves, written as backend/outputs.py does."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from backend.metrics.report import report_to_json


@dataclass
class Result:
    """The shape of pipeline.JobResult."""

    report: dict
    out_dir: Path
    artifacts: dict = field(default_factory=dict)


def finished(out_dir: str | Path, report: dict, files: dict[str, tuple[str, bytes]] | None = None) -> Result:
    """Write report.json (always, like the pipeline) and files {artifact name: (relative path, bytes)}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(report_to_json(report), encoding="utf-8")
    artifacts = {"report": "report.json"}
    for name, (rel, data) in (files or {}).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
        artifacts[name] = rel
    return Result(report, out, artifacts)

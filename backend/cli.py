"""One job from the command line: python -m backend.cli --model resnet18 [--dataset digits] [--out DIR].

A study: python -m backend.cli study --model resnet18 --sparsity 0.3,0.5 --structural-ratio 0.25,0.5 (study_cli).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

from backend.config import BACKEND_DIR
from backend.jobconfig import ConfigError, JobConfig, add_cli_arguments, model_help, options_from_args
from backend.kd.callbacks import Callbacks


class ProgressBar(Callbacks):
    """A one-line progress bar per phase on stderr."""

    def __init__(self, stream=sys.stderr, width: int = 30) -> None:
        self.stream, self.width, self._last = stream, width, 0.0

    def on_phase_start(self, phase, info):
        self.stream.write(f"\n[{phase}]")
        self.stream.flush()

    def on_step_end(self, phase, step, total, losses, eta_s):
        now = time.monotonic()
        if step != total and now - self._last < 0.2:
            return
        self._last = now
        filled = int(self.width * step / max(1, total))
        terms = " ".join(f"{k}={v:.3f}" for k, v in losses.items() if v is not None)
        eta = f" eta {eta_s:4.0f}s" if eta_s is not None else ""
        self.stream.write(f"\r[{phase}] [{'#' * filled}{'.' * (self.width - filled)}] {step}/{total} {terms}{eta}  ")
        self.stream.flush()

    def on_metrics(self, phase, metrics):
        if "accuracy" in metrics or "val_accuracy" in metrics:
            acc = metrics.get("accuracy", metrics.get("val_accuracy"))
            extra = f" sparsity {metrics['achieved_sparsity']:.1%}" if "achieved_sparsity" in metrics else ""
            self.stream.write(f"\n  validation accuracy {acc:.2%}{extra}")

    def on_phase_end(self, phase, info):
        self.stream.write(f"\n[{phase}] done in {info['seconds']:.1f}s")
        self.stream.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m backend.cli",
        description="Run one KD + pruning job. Every job option of POST /train is an argument here.",
        epilog=f"models: {model_help()}. A study: python -m backend.cli study --help",
    )
    add_cli_arguments(parser)
    parser.add_argument("--out", default="out", help="directory for the report and the model bundle")
    parser.add_argument("--cache-dir", default=str(BACKEND_DIR / "instance" / "cache"))
    parser.add_argument("--upload-dir", default=str(BACKEND_DIR / "uploads"))
    return parser.parse_args(argv)


def summary_table(report: dict) -> str:
    """A short teacher-vs-student table from the report's comparison section."""
    rows = report.get("teacher_vs_student_comparison", {}).get("table") or []
    lines = [f"{'metric':<34}{'teacher':>14}{'student':>14}"]
    for row in rows:
        t, s = row.get("teacher"), row.get("student")
        fmt = lambda v: "n/a" if v is None else (f"{v:,.4g}" if isinstance(v, (int, float)) else str(v))  # noqa
        lines.append(f"{row.get('metric', '?'):<34}{fmt(t):>14}{fmt(s):>14}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["study"]:
        from backend.study_cli import main as study_main

        return study_main(argv[1:])
    args = parse_args(argv)
    try:
        config = JobConfig.from_dict(options_from_args(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from backend.pipeline import run_job

    job_id = f"cli-{uuid.uuid4().hex[:8]}"
    result = run_job(
        config,
        ProgressBar(),
        job_id=job_id,
        out_dir=Path(args.out),
        cache_dir=Path(args.cache_dir),
        upload_dir=Path(args.upload_dir),
    )
    print(
        f"\n\n{summary_table(result.report)}\n\nreport: {result.out_dir / 'report.json'}\n"
        f"bundle: {result.out_dir / 'bundle.zip'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

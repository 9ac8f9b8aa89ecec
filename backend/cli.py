"""One job from the command line: python -m backend.cli --model resnet18 [--dataset digits] [--out DIR].

A study: python -m backend.cli study --model resnet18 --sparsity 0.3,0.5 --structural-ratio 0.25,0.5 (study_cli).

A job that fails prints one line, `error: <message>`, and exits 1 (a dataset that cannot be had offline, a bad
upload, unreachable pretrained weights, a full disk); `--debug` shows the traceback instead. Invalid options
exit 2, as argparse does.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

from backend.config import BACKEND_DIR
from backend.jobconfig import ConfigError, JobConfig, add_cli_arguments, model_help, options_from_args
from backend.progress import ProgressBar
from backend.study_cli import add_debug_argument, fail
from backend.study_cli import main as study_main


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
    add_debug_argument(parser)
    return parser.parse_args(argv)


def summary_table(report: dict) -> str:
    """A short teacher-vs-student table from the report's comparison section."""
    rows = report.get("teacher_vs_student_comparison", {}).get("table") or []
    by_metric = {row.get("metric"): row for row in rows}
    fmt = lambda v: "n/a" if v is None else (f"{v:,.4g}" if isinstance(v, (int, float)) else str(v))  # noqa: E731

    def cell(row: dict, who: str) -> str:  # a figure, and its 95% interval where the report has one
        low, high = (by_metric.get(f"{row['metric']}_ci_{end}", {}).get(who) for end in ("low", "high"))
        interval = f" [{low:.3g}, {high:.3g}]" if isinstance(low, float) and isinstance(high, float) else ""
        return fmt(row.get(who)) + interval

    lines = [f"{'metric':<46}{'teacher':>24}{'student':>24}"]
    for row in rows:
        if not str(row.get("metric", "")).endswith(("_ci_low", "_ci_high")):
            lines.append(f"{row.get('metric', '?'):<46}{cell(row, 'teacher'):>24}{cell(row, 'student'):>24}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["study"]:
        return study_main(argv[1:])
    args = parse_args(argv)
    try:
        config = JobConfig.from_dict(options_from_args(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from backend.pipeline import run_job

    job_id = f"cli-{uuid.uuid4().hex[:8]}"
    folders = (Path(args.out), Path(args.cache_dir), Path(args.upload_dir))
    try:
        result = run_job(
            config, ProgressBar(), job_id=job_id, out_dir=folders[0], cache_dir=folders[1], upload_dir=folders[2]
        )
    except Exception as exc:
        if args.debug:
            raise
        return fail(exc, folders)
    print(
        f"\n\n{summary_table(result.report)}\n\nreport: {result.out_dir / 'report.json'}\n"
        f"bundle: {result.out_dir / 'bundle.zip'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One job from the command line: python -m backend.cli --model resnet18 [--dataset digits] [--out DIR].

A study: python -m backend.cli study --model resnet18 --sparsity 0.3,0.5 --structural-ratio 0.25,0.5 (study_cli).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

from backend.config import BACKEND_DIR
from backend.jobconfig import ConfigError, JobConfig
from backend.models.registry import model_ids
from backend.progress import ProgressBar
from backend.study_cli import main as study_main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m backend.cli", description="Run one KD + pruning job.")
    parser.add_argument("--model", required=True, help=", ".join(model_ids()) + " (or an alias)")
    parser.add_argument("--dataset", help="digits, cifar10, synthetic_sentiment, or an upload_id")
    parser.add_argument("--preset", default="quick", choices=["quick", "standard"])
    parser.add_argument("--pretrained", default="auto", choices=["auto", "true", "false"])
    for name, kind in (
        ("epochs", int),
        ("kd-epochs", int),
        ("finetune-epochs", int),
        ("temperature", float),
        ("alpha", float),
        ("sparsity", float),
        ("pruning-steps", int),
        ("structural-ratio", float),
        ("seed", int),
        ("batch-size", int),
        ("learning-rate", float),
        ("max-samples", int),
    ):
        parser.add_argument(f"--{name}", type=kind)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N, mps")
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        help="default: bf16 autocast on CUDA where supported, else fp32",
    )
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random resized crop + flip for vision training (default: on at standard, off at quick)",
    )
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
        return study_main(argv[1:])
    args = parse_args(argv)
    options = {
        "model_name": args.model,
        "dataset": args.dataset,
        "preset": args.preset,
        "pretrained": args.pretrained,
        "device": args.device,
        "precision": args.precision,
        "augment": args.augment,
    }
    for key in (
        "epochs",
        "kd_epochs",
        "finetune_epochs",
        "temperature",
        "alpha",
        "sparsity",
        "pruning_steps",
        "structural_ratio",
        "seed",
        "batch_size",
        "learning_rate",
        "max_samples",
    ):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    try:
        config = JobConfig.from_dict({k: v for k, v in options.items() if v is not None})
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

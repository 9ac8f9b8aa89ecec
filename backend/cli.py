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
from backend.jobconfig import ConfigError, JobConfig
from backend.kd.callbacks import Callbacks
from backend.models.registry import model_ids


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
        from backend.study_cli import main as study_main

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

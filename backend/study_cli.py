"""A compression study from the command line, without a server:

python -m backend.cli study --model resnet18 --sparsity 0.3,0.5,0.7 --structural-ratio 0.25,0.5 --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from backend.config import BACKEND_DIR
from backend.jobconfig import ConfigError
from backend.models.registry import model_ids
from backend.progress import ProgressBar

AXES = ("sparsity", "structural-ratio", "temperature", "alpha")
OPTIONS = (
    ("epochs", int),
    ("kd-epochs", int),
    ("finetune-epochs", int),
    ("pruning-steps", int),
    ("seed", int),
    ("batch-size", int),
    ("learning-rate", float),
    ("max-samples", int),
    ("latency-runs", int),
)


def _values(text: str) -> list[float]:
    """'0.3,0.5' -> [0.3, 0.5]."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m backend.cli study",
        description="Sweep a grid of sparsities and structural ratios (and optionally "
        "temperatures / alphas); every point is a full measured job.",
    )
    parser.add_argument("--model", required=True, help=", ".join(model_ids()) + " (or an alias)")
    parser.add_argument("--dataset", help="digits, cifar10, synthetic_sentiment, or an upload_id")
    parser.add_argument("--preset", default="quick", choices=["quick", "standard"])
    parser.add_argument("--pretrained", default="auto", choices=["auto", "true", "false"])
    for name in AXES:
        parser.add_argument(
            f"--{name}",
            type=_values,
            required=name in ("sparsity", "structural-ratio"),
            help="comma-separated values to sweep",
        )
    for name, kind in OPTIONS:
        parser.add_argument(f"--{name}", type=kind)
    parser.add_argument("--out", default="study", help="directory for the table, CSV, MATLAB data, plots, points")
    parser.add_argument("--cache-dir", default=str(BACKEND_DIR / "instance" / "cache"))
    parser.add_argument("--upload-dir", default=str(BACKEND_DIR / "uploads"))
    return parser.parse_args(argv)


def body_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The same body POST /studies takes."""
    body: dict[str, Any] = {"model_name": args.model, "preset": args.preset, "pretrained": args.pretrained, "grid": {}}
    if args.dataset:
        body["dataset"] = args.dataset
    for name in AXES:
        if getattr(args, name.replace("-", "_")) is not None:
            body["grid"][name.replace("-", "_")] = getattr(args, name.replace("-", "_"))
    for name, _ in OPTIONS:
        value = getattr(args, name.replace("-", "_"))
        if value is not None:
            body[name.replace("-", "_")] = value
    return body


def run_study(body: dict[str, Any], out: Path, cache_dir: Path, upload_dir: Path, callbacks=None) -> list[dict]:
    """Run every point in turn (sharing the teacher and student caches) and write the study's files."""
    from backend.jobs.studies import expand_grid
    from backend.metrics.study import GRID_AXES, point_metrics, with_pareto
    from backend.pipeline import run_job

    axes, _, configs = expand_grid(body)
    rows = []
    for i, config in enumerate(configs):
        job_id = f"point-{i:02d}"
        row: dict[str, Any] = {"index": i, "job_id": job_id, **{n: getattr(config, n) for n in GRID_AXES}}
        print(f"\n== point {i + 1}/{len(configs)}: " + ", ".join(f"{n}={row[n]:g}" for n in GRID_AXES), file=sys.stderr)
        try:
            result = run_job(
                config,
                callbacks,
                job_id=job_id,
                out_dir=out / "points" / job_id,
                cache_dir=cache_dir,
                upload_dir=upload_dir,
            )
            row.update(state="succeeded", **point_metrics(result.report))
        except (ValueError, RuntimeError, MemoryError) as exc:  # one bad point must not lose the others
            row.update(state="failed", error=f"{type(exc).__name__}: {exc}")
        rows.append(row)
    rows = with_pareto(rows)
    write_study_files(rows, axes, out, body["model_name"])
    return rows


def write_study_files(rows: list[dict], axes: dict, out: Path, model: str) -> None:
    """study.json, study.csv, matlab_study.json and plots/{pareto,study_sparsity}.png under out."""
    from backend.metrics.study import STUDY_PLOT_KINDS, render_study_plot, study_csv, study_matlab

    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(
        json.dumps({"model_name": model, "grid": axes, "rows": rows}, indent=2, allow_nan=False)
    )
    (out / "study.csv").write_text(study_csv(rows))
    (out / "matlab_study.json").write_text(
        json.dumps({"matlab_data": {"model_name": model, **study_matlab(rows, axes)}})
    )
    (out / "plots").mkdir(exist_ok=True)
    for kind in STUDY_PLOT_KINDS:
        (out / "plots" / f"{kind}.png").write_bytes(render_study_plot(rows, kind, f"{model} study: {kind}"))


def table(rows: list[dict]) -> str:
    """A short text table of the study."""
    cols = (
        ("sparsity", "{:g}"),
        ("structural_ratio", "{:g}"),
        ("accuracy", "{:.2%}"),
        ("latency_batch_1_ms", "{:.3f}"),
        ("model_size_mb", "{:.2f}"),
        ("parameters", "{:,}"),
    )
    lines = ["  ".join(f"{c:>18}" for c, _ in cols) + "  pareto(lat,size)"]
    for r in rows:
        cells = ["n/a" if r.get(c) is None else f.format(r[c]) for c, f in cols]
        flags = f"{'*' if r.get('pareto_latency') else '-'}{'*' if r.get('pareto_size') else '-'}"
        lines.append("  ".join(f"{v:>18}" for v in cells) + f"  {flags}  {r['state']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    body = body_from_args(args)
    try:
        from backend.jobs.studies import expand_grid

        expand_grid(body)  # every point valid before any runs
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    rows = run_study(body, out, Path(args.cache_dir), Path(args.upload_dir), ProgressBar())
    print(
        f"\n\n{table(rows)}\n\nwritten: {out / 'study.csv'}, {out / 'study.json'}, {out / 'matlab_study.json'}, "
        f"{out / 'plots'}"
    )
    return 0 if all(r["state"] == "succeeded" for r in rows) else 1

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
from backend.jobconfig import ConfigError, add_cli_arguments, model_help, options_from_args, study_axes
from backend.jobs.studies import MAX_SEEDS, REQUIRED_AXES, expand_grid, grid_points
from backend.progress import ProgressBar


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    axes = study_axes()
    parser = argparse.ArgumentParser(
        prog="python -m backend.cli study",
        description="Sweep a grid of job options (every point is a full measured job). The swept options take "
        f"comma-separated values ({', '.join(axes)}; {' and '.join(REQUIRED_AXES)} are required); every other "
        "option of POST /studies is an argument too.",
        epilog=f"models: {model_help()}",
    )
    add_cli_arguments(parser, sweep=axes)
    parser.add_argument(
        "--seeds",
        type=lambda text: [int(v) for v in text.split(",") if v.strip()],
        metavar="S1,S2,...",
        help=f"run every grid point once per seed (at most {MAX_SEEDS}); rows report means, standard deviations and "
        "95%% t-intervals, and the frontier is computed on the means",
    )
    parser.add_argument("--out", default="study", help="directory for the table, CSV, MATLAB data, plots, points")
    parser.add_argument("--cache-dir", default=str(BACKEND_DIR / "instance" / "cache"))
    parser.add_argument("--upload-dir", default=str(BACKEND_DIR / "uploads"))
    args = parser.parse_args(argv)
    missing = [n for n in REQUIRED_AXES if getattr(args, n) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join('--' + n.replace('_', '-') for n in missing)}")
    return args


def body_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The same body POST /studies takes: the swept options in grid, the others beside it."""
    given = options_from_args(args)
    axes = study_axes()
    return {
        **{k: v for k, v in given.items() if k not in axes},
        "grid": {k: v for k, v in given.items() if k in axes},
        **({"seeds": args.seeds} if args.seeds else {}),
    }


def run_study(body: dict[str, Any], out: Path, cache_dir: Path, upload_dir: Path, callbacks=None) -> list[dict]:
    """Run every point in turn (sharing the teacher and student caches) and write the study's files."""
    from backend.metrics.study import aggregate_seeds, point_metrics, with_pareto
    from backend.pipeline import run_job

    axes, options, configs = expand_grid(body)
    rows = []
    for i, (point, config) in enumerate(zip(grid_points(options, configs), configs, strict=True)):
        job_id = f"point-{i:02d}"
        row: dict[str, Any] = {"index": i, "job_id": job_id, "point": point, "seed": config.seed,
                               **{n: getattr(config, n) for n in study_axes()}}  # fmt: skip
        print(f"\n== point {i + 1}/{len(configs)}: " + ", ".join(f"{n}={row[n]}" for n in axes), file=sys.stderr)
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
    rows = with_pareto(aggregate_seeds(rows, study_axes()))
    write_study_files(rows, axes, out, body["model_name"])
    return rows


def write_study_files(rows: list[dict], axes: dict, out: Path, model: str) -> None:
    """study.json, study.csv, matlab_study.json and plots/{pareto,study_sparsity}.png under out."""
    from backend.metrics.study import STUDY_PLOT_KINDS, render_study_plot, study_csv, study_matlab

    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(
        json.dumps({"model_name": model, "grid": axes, "rows": rows}, indent=2, allow_nan=False)
    )
    (out / "study.csv").write_text(study_csv(rows, study_axes()))
    (out / "matlab_study.json").write_text(
        json.dumps({"matlab_data": {"model_name": model, **study_matlab(rows, axes, study_axes())}})
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
        ("parameters", "{:,.0f}"),
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

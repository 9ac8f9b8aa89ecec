"""A compression study from the command line, without a server:

python -m backend.cli study --model resnet18 --sparsity 0.3,0.5,0.7 --structural-ratio 0.25,0.5 --out DIR

A point that fails is a failed row and the study goes on; what stops the whole study (a full disk, an error
writing its files) prints `error: <message>` and exits 1, or the traceback with `--debug`.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from backend.config import BACKEND_DIR
from backend.jobconfig import ConfigError, add_cli_arguments, model_help, options_from_args, study_axes
from backend.jobs import disk
from backend.jobs.studies import CHOSEN_BY_TARGET, MAX_SEEDS, REQUIRED_AXES, expand_grid, grid_points, missing_axes
from backend.progress import ProgressBar


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    axes = study_axes()
    parser = argparse.ArgumentParser(
        prog="python -m backend.cli study",
        description="Sweep a grid of job options (every point is a full measured job). The swept options take "
        f"comma-separated values ({', '.join(axes)}; {' and '.join(REQUIRED_AXES)} are required, "
        f"{' and '.join(CHOSEN_BY_TARGET)} not with a latency target); every other option of POST /studies is an "
        "argument too.",
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
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    missing = missing_axes(vars(args))
    if missing:
        parser.error(f"the following arguments are required: {', '.join('--' + n.replace('_', '-') for n in missing)}")
    return args


def add_debug_argument(parser: argparse.ArgumentParser) -> None:
    """--debug: a failing job shows its traceback instead of one error line."""
    parser.add_argument("--debug", action="store_true", help="on failure, show the traceback, not one error line")


def error_message(exc: BaseException, folders: tuple[Path, ...] = ()) -> str:
    """One line for a job that failed: its own message for what the user can fix (bad input, a dataset or
    weights that cannot be had, a full disk), the exception's type beside it otherwise."""
    if disk.is_disk_full(exc, () if isinstance(exc, ValueError) else folders):
        return disk.disk_full_message(min(folders, key=disk.free_bytes)) if folders else str(exc)
    if isinstance(exc, ValueError | OSError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def fail(exc: BaseException, folders: tuple[Path, ...]) -> int:
    """Print `error: <message>` on one line (after the progress bar's line) and return the exit status 1; a full
    disk's half-written files (`*.tmp` under the output folder) are removed first."""
    full = disk.is_disk_full(exc, () if isinstance(exc, ValueError) else folders)
    if full and folders:
        for tmp in Path(folders[0]).rglob("*.tmp"):
            disk.remove(tmp)
    message = " ".join(error_message(exc, folders).split())  # one line, whatever the exception's text holds
    print(f"\nerror: {message}", file=sys.stderr, flush=True)
    return 1


def body_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The same body POST /studies takes: the swept options in grid, the others beside it."""
    given = options_from_args(args)
    axes = study_axes()
    return {
        **{k: v for k, v in given.items() if k not in axes},
        "grid": {k: v for k, v in given.items() if k in axes},
        **({"seeds": args.seeds} if args.seeds else {}),
    }


def run_study(
    body: dict[str, Any], out: Path, cache_dir: Path, upload_dir: Path, callbacks=None, *, debug: bool = False
) -> list[dict]:
    """Run every point in turn (sharing the teacher and student caches) and write the study's files; a point that
    fails is a failed row (its traceback printed with debug)."""
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
            if disk.is_disk_full(exc, (out, cache_dir, upload_dir)):
                raise  # every later point would fail the same way, and the study's files cannot be written
            if debug:
                traceback.print_exc()
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
    folders = (out, Path(args.cache_dir), Path(args.upload_dir))
    try:
        rows = run_study(body, *folders, ProgressBar(), debug=args.debug)
    except Exception as exc:
        if args.debug:
            raise
        return fail(exc, folders)
    print(
        f"\n\n{table(rows)}\n\nwritten: {out / 'study.csv'}, {out / 'study.json'}, {out / 'matlab_study.json'}, "
        f"{out / 'plots'}"
    )
    failed = [r for r in rows if r["state"] != "succeeded"]
    if failed:
        first = " ".join(str(failed[0].get("error")).split())
        print(f"\nerror: {len(failed)} of {len(rows)} runs failed; the first: {first}", file=sys.stderr, flush=True)
    return 1 if failed else 0

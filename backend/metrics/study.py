"""A compression study's results: one row per point read from its report, Pareto flags, MATLAB data, CSV, PNGs."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .stats import t_interval

STUDY_PLOT_KINDS = ("pareto", "study_sparsity")

# metric -> path into a job's report; every figure is read from the point's own measured report
METRIC_PATHS: dict[str, tuple[str, ...]] = {
    "accuracy": ("student_model_performance", "accuracy"),
    "f1_macro": ("student_model_performance", "f1_macro"),
    "teacher_accuracy": ("teacher_vs_student_comparison", "derived", "accuracy_teacher"),
    "accuracy_drop_points": ("teacher_vs_student_comparison", "derived", "accuracy_drop_points"),
    "model_size_mb": ("student_model_performance", "model_size_mb"),
    "compressed_size_mb": ("student_model_performance", "compressed_size_mb"),
    "parameters": ("student_model_performance", "parameters", "total"),
    "nonzero_parameters": ("student_model_performance", "parameters", "nonzero"),
    "flops_per_sample": ("student_model_performance", "flops_per_sample"),
    "latency_batch_1_ms": ("student_model_performance", "latency_ms", "batch_1", "median_ms"),
    "latency_batch_32_ms": ("student_model_performance", "latency_ms", "batch_32", "median_ms"),
    "speedup_batch_1": ("teacher_vs_student_comparison", "derived", "speedup", "batch_1"),
    "speedup_batch_32": ("teacher_vs_student_comparison", "derived", "speedup", "batch_32"),
    "dense_size_ratio": ("teacher_vs_student_comparison", "derived", "dense_size_ratio"),
    "compressed_size_ratio": ("teacher_vs_student_comparison", "derived", "compressed_size_ratio"),
    "achieved_sparsity": ("student_model_performance", "global_sparsity"),
}
METRICS = tuple(METRIC_PATHS)
LINE_COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860")


def _number(value: Any) -> float | None:
    """A finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) if isinstance(value, float) else value


def _dig(node: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def point_metrics(report: dict) -> dict[str, Any]:
    """The study's columns for one succeeded point, read from its report (None where the report lacks one)."""
    row: dict[str, Any] = {name: _number(_dig(report, path)) for name, path in METRIC_PATHS.items()}
    meta = report.get("metadata") or {}
    row["teacher_source"] = (meta.get("teacher_source") or {}).get("kind")
    row["student_source"] = (meta.get("student_source") or {}).get("kind")
    return row


def pareto_flags(points: Sequence[tuple[float | None, float | None]]) -> list[bool]:
    """For (accuracy, cost) pairs: True where no other point has accuracy >= and cost <= with one strictly better.

    A point with an unmeasured value is never on the frontier; equal points are both on it.
    """
    flags = []
    for i, (acc, cost) in enumerate(points):
        if acc is None or cost is None:
            flags.append(False)
            continue
        dominated = any(
            j != i and a is not None and c is not None and a >= acc and c <= cost and (a > acc or c < cost)
            for j, (a, c) in enumerate(points)
        )
        flags.append(not dominated)
    return flags


def with_pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with pareto_latency (accuracy vs batch-1 latency) and pareto_size (accuracy vs dense size) flags,
    computed on the rows' values (the means, for points run with several seeds), and, where the rows carry
    intervals, whether each frontier point is separable from the points it dominates."""
    lat = pareto_flags([(r.get("accuracy"), r.get("latency_batch_1_ms")) for r in rows])
    size = pareto_flags([(r.get("accuracy"), r.get("model_size_mb")) for r in rows])
    out = [{**r, "pareto_latency": a, "pareto_size": b} for r, a, b in zip(rows, lat, size, strict=True)]
    if any("accuracy_ci" in r for r in rows):
        sep_lat = separable_flags(out, "latency_batch_1_ms", "pareto_latency")
        sep_size = separable_flags(out, "model_size_mb", "pareto_size")
        for r, a, b in zip(out, sep_lat, sep_size, strict=True):
            r.update(separable=a, separable_latency=a, separable_size=b)
    return out


def aggregate_seeds(runs: list[dict[str, Any]], axes: Sequence[str]) -> list[dict[str, Any]]:
    """One row per grid point from its runs (one per seed): each metric's mean over the succeeded runs (under the
    metric's own name, so the frontier is computed on means), its standard deviation `<metric>_std` and a 95%
    Student-t interval `<metric>_ci`; `n_seeds`, `seeds`, `job_ids`, and the point's state."""
    points: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        points.setdefault(run.get("point", run["index"]), []).append(run)
    several = any(len(members) > 1 for members in points.values())
    rows = []
    for index, members in sorted(points.items()):
        done = [r for r in members if r.get("state") == "succeeded"]
        states = {r.get("state") for r in members}
        if states == {"succeeded"}:
            state = "succeeded"
        elif states & {"running", "queued"}:
            state = "running" if "running" in states else "queued"
        elif done:
            state = "partial"  # some seeds failed or were cancelled: the figures are over the others
        else:
            state = next(s for s in ("failed", "cancelled", "deleted") if s in states)
        row: dict[str, Any] = {
            "index": index,
            "job_id": members[0]["job_id"],
            "job_ids": [r["job_id"] for r in members],
            "seeds": [r.get("seed") for r in members],
            "n_seeds": len(members),
            "n_succeeded": len(done),
            "state": state,
            **{name: members[0].get(name) for name in axes},
        }
        errors = [r["error"] for r in members if r.get("error")]
        if errors:
            row["error"] = errors[0]
        for name in METRICS:
            values = [r.get(name) for r in done if r.get(name) is not None]
            spread = t_interval(values)
            row[name] = spread["mean"] if values else None
            if several:
                row[f"{name}_std"], row[f"{name}_ci"] = spread["std"], spread["ci"]
        for key in ("teacher_source", "student_source"):
            kinds = sorted({str(r.get(key)) for r in done if r.get(key)})
            row[key] = ",".join(kinds) if kinds else None
        rows.append(row)
    return rows


def _overlap(a: Sequence[float] | None, b: Sequence[float] | None) -> bool | None:
    if not a or not b:
        return None
    return a[0] <= b[1] and b[0] <= a[1]


def separable_flags(rows: list[dict[str, Any]], cost: str, frontier: str) -> list[bool | None]:
    """For each frontier point: False when its intervals overlap, in accuracy and in cost, those of a point it
    dominates (on means), so the seeds cannot tell the two apart; True when every dominated point is apart in
    one of them; None off the frontier or without intervals (one seed)."""
    out: list[bool | None] = []
    for r in rows:
        if not r.get(frontier) or r.get("accuracy") is None or r.get(cost) is None:
            out.append(None)
            continue
        verdict: bool | None = True
        for d in rows:
            if d is r or d.get("accuracy") is None or d.get(cost) is None:
                continue
            if not (r["accuracy"] >= d["accuracy"] and r[cost] <= d[cost]):
                continue  # r does not dominate d
            acc, cst = (
                _overlap(r.get("accuracy_ci"), d.get("accuracy_ci")),
                _overlap(r.get(f"{cost}_ci"), d.get(f"{cost}_ci")),
            )
            if acc is None or cst is None:
                verdict = None
                break
            if acc and cst:
                verdict = False
                break
        out.append(verdict)
    return out


def _axis_columns(rows: list[dict[str, Any]], axes: dict[str, list[Any]], names: Sequence[str]) -> list[str]:
    """The grid columns of the MATLAB matrix: numeric axes as they are; a swept word axis (pruning_method, ...) as
    `<name>_index`, its 1-based position in grid_axes.<name> (MATLAB matrices hold numbers only)."""
    columns = []
    for name in names:
        values = [r.get(name) for r in rows]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            columns.append(name)
        elif name in axes:
            columns.append(f"{name}_index")
    return columns


def study_matlab(rows: list[dict[str, Any]], axes: dict[str, list[Any]], axis_names: Sequence[str]) -> dict[str, Any]:
    """{"grid_axes", "columns", "points" (rows = points), one vector per metric, pareto 0/1 vectors, "missing"}.

    Only succeeded points are rows; a metric not measured for every one of them is left out and named in
    `missing`, so every array decodes to numbers in MATLAB's jsondecode (JSON has no NaN). `axis_names`: the
    options a study may sweep, every point's value of each is a column (swept or not).
    """
    done = [r for r in rows if r.get("state") == "succeeded" or (r.get("state") == "partial" and r.get("n_succeeded"))]
    missing: dict[str, str] = {}
    columns = ["point", *_axis_columns(done, axes, axis_names)]
    seeds = any("accuracy_ci" in r for r in done)
    if seeds:
        columns += ["n_seeds", "n_succeeded"]
    for name in METRICS:
        if done and all(r.get(name) is not None for r in done):
            columns.append(name)
            for extra in ("_std", "_ci_low", "_ci_high") if seeds else ():
                if all(_spread(r, name + extra) is not None for r in done):
                    columns.append(name + extra)
        else:
            missing[name] = "not measured for every succeeded point" if done else "no point has succeeded yet"
    columns += ["pareto_latency", "pareto_size"]
    if seeds:  # 1: separable, 0: within the noise of a point it dominates, -1: off the frontier or unknown
        columns += ["separable_latency", "separable_size"]
    matrix = [[_cell(r, c, axes) for c in columns] for r in done]
    out: dict[str, Any] = {
        "grid_axes": {k: list(v) for k, v in axes.items()},
        "columns": columns,
        "points": matrix,
        "job_ids": [r["job_id"] for r in done],
    }
    for j, name in enumerate(columns):
        out[name] = [row[j] for row in matrix]
    out["missing"] = missing
    return out


def _spread(row: dict[str, Any], column: str) -> float | None:
    """<metric>_std, or one end of <metric>_ci (<metric>_ci_low / _ci_high), of a row over seeds."""
    for end, i in (("_ci_low", 0), ("_ci_high", 1)):
        if column.endswith(end):
            ci = row.get(column.removesuffix(end) + "_ci")
            return ci[i] if ci else None
    return row.get(column)


def _cell(row: dict[str, Any], column: str, axes: dict[str, list[Any]]) -> float:
    if column == "point":
        return row["index"]
    if column.endswith("_index") and column[: -len("_index")] in axes:
        name = column[: -len("_index")]
        return axes[name].index(row[name]) + 1
    if column in ("pareto_latency", "pareto_size"):
        return 1 if row.get(column) else 0
    if column.startswith("separable_"):
        return {True: 1, False: 0}.get(row.get(column), -1)
    if column.endswith(("_ci_low", "_ci_high", "_std")):
        value = _spread(row, column)
        return value if value is not None else 0
    value = row.get(column)
    return value if value is not None else 0  # only reached for grid axes, which every point has


def study_csv(rows: list[dict[str, Any]], axis_names: Sequence[str]) -> str:
    """One line per point: index, job, state, grid values, metrics, sources, Pareto flags (empty = unmeasured).

    With several seeds a metric is the mean over the point's succeeded seeds, followed by its standard deviation
    and the ends of its 95% t-interval; n_seeds, n_succeeded and the separable flags are columns too."""
    seeds = any("accuracy_ci" in r for r in rows)
    metrics = [c for m in METRICS for c in ((m, f"{m}_std", f"{m}_ci_low", f"{m}_ci_high") if seeds else (m,))]
    header = [
        "point",
        "job_id",
        "state",
        *axis_names,
        *(("n_seeds", "n_succeeded") if seeds else ()),
        *metrics,
        "teacher_source",
        "student_source",
        "pareto_latency",
        "pareto_size",
        *(("separable_latency", "separable_size") if seeds else ()),
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        values = [
            r.get("index"),
            *(_spread(r, k) if k.endswith(("_ci_low", "_ci_high")) else r.get(k) for k in header[1:]),
        ]
        writer.writerow(["" if v is None else int(v) if isinstance(v, bool) else v for v in values])
    return buffer.getvalue()


def _figure(width: float, height: float) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _has_ci(rows: list[dict[str, Any]]) -> bool:
    return any(r.get("accuracy_ci") for r in rows)


def _err(rows: list[dict[str, Any]], metric: str, scale: float) -> list[list[float]]:
    """Asymmetric error bars [below, above] from each row's <metric>_ci (0 where a row has none)."""
    below, above = [], []
    for r in rows:
        ci, mean = r.get(f"{metric}_ci"), r.get(metric)
        below.append((mean - ci[0]) * scale if ci and mean is not None else 0.0)
        above.append((ci[1] - mean) * scale if ci and mean is not None else 0.0)
    return [below, above]


def _accuracy_axis(ax: Any, values: list[float]) -> None:
    """Percent axis fitted to the measured range (not from 0), so 95-99% differences show."""
    low, high = min(values), max(values)
    pad = max((high - low) * 0.15, 0.5)
    ax.set_ylim(max(0.0, low - pad), min(100.0, high + pad))
    ax.set_ylabel("student test accuracy (%)")


def _point_label(r: dict[str, Any]) -> str:
    return (
        f"s={r['sparsity']:g}, r={r['structural_ratio']:g}"
        if r.get("structural_ratio") is not None
        else f"s={r['sparsity']:g}"
    )


def render_pareto(rows: list[dict[str, Any]], title: str = "") -> bytes:
    """Accuracy vs batch-1 latency of every measured point, the Pareto frontier drawn and labelled."""
    fig, ax = _figure(8, 5)
    pts = [r for r in rows if r.get("accuracy") is not None and r.get("latency_batch_1_ms") is not None]
    if not pts:
        ax.text(0.5, 0.5, "no point measured yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _png(fig)
    xs, ys = [r["latency_batch_1_ms"] for r in pts], [r["accuracy"] * 100 for r in pts]
    ax.scatter(xs, ys, color="#8c8c8c", label="point (mean over seeds)" if _has_ci(pts) else "point", zorder=2)
    if _has_ci(pts):  # 95% t-intervals across seeds, both ways
        ax.errorbar(xs, ys, xerr=_err(pts, "latency_batch_1_ms", 1.0), yerr=_err(pts, "accuracy", 100.0), fmt="none",
                    ecolor="#8c8c8c", elinewidth=1, capsize=2, zorder=1, label="95% interval across seeds")  # fmt: skip
        loose = [r for r in pts if r.get("separable_latency") is False]
        if loose:
            ax.scatter([r["latency_batch_1_ms"] for r in loose], [r["accuracy"] * 100 for r in loose], s=160,
                       facecolors="none", edgecolors="#C44E52", zorder=4, label="frontier point within noise")  # fmt: skip
    front = sorted((r for r in pts if r.get("pareto_latency")), key=lambda r: r["latency_batch_1_ms"])
    ax.plot(
        [r["latency_batch_1_ms"] for r in front],
        [r["accuracy"] * 100 for r in front],
        "-o",
        color="#DD8452",
        label="Pareto frontier",
        zorder=3,
    )
    for r in front:
        ax.annotate(
            _point_label(r),
            (r["latency_batch_1_ms"], r["accuracy"] * 100),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    teacher = [r["teacher_accuracy"] * 100 for r in pts if r.get("teacher_accuracy") is not None]
    if teacher:
        ax.axhline(teacher[0], color="#4C72B0", linestyle="--", linewidth=1, label="teacher accuracy")
    _accuracy_axis(ax, ys + teacher[:1])
    ax.set_xlabel("student median latency, batch 1 (ms)")
    ax.set_title(title or "Accuracy vs latency: Pareto frontier", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def render_study_sparsity(rows: list[dict[str, Any]], title: str = "") -> bytes:
    """Accuracy vs target sparsity, one line per structural ratio (and KD setting)."""
    fig, ax = _figure(8, 5)
    pts = [r for r in rows if r.get("accuracy") is not None]
    if not pts:
        ax.text(0.5, 0.5, "no point measured yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _png(fig)
    groups: dict[tuple, list[dict]] = {}
    for r in pts:
        groups.setdefault((r.get("structural_ratio"), r.get("temperature"), r.get("alpha")), []).append(r)
    several_kd = len({k[1:] for k in groups}) > 1
    for i, (key, members) in enumerate(sorted(groups.items(), key=lambda kv: tuple(x or 0 for x in kv[0]))):
        members.sort(key=lambda r: r["sparsity"])
        label = f"structural ratio {key[0]:g}" if key[0] is not None else "default structural ratio"
        if several_kd:
            label += f", T={key[1]:g}, alpha={key[2]:g}"
        ax.errorbar(
            [r["sparsity"] * 100 for r in members],
            [r["accuracy"] * 100 for r in members],
            yerr=_err(members, "accuracy", 100.0) if _has_ci(members) else None,
            fmt="-o",
            capsize=3,
            color=LINE_COLORS[i % len(LINE_COLORS)],
            label=label,
        )
    _accuracy_axis(ax, [r["accuracy"] * 100 for r in pts])
    ax.set_xlabel("target unstructured sparsity (%)")
    ax.set_title(title or "Accuracy vs sparsity per structural ratio", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def render_study_plot(rows: list[dict[str, Any]], kind: str, title: str = "") -> bytes:
    """PNG of a study: kind 'pareto' or 'study_sparsity'."""
    if kind == "pareto":
        return render_pareto(rows, title)
    if kind == "study_sparsity":
        return render_study_sparsity(rows, title)
    raise ValueError(f"kind must be one of {list(STUDY_PLOT_KINDS)}")

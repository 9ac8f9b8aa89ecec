"""A compression study's results: one row per point read from its report, Pareto flags, MATLAB data, CSV, PNGs."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

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
    """Rows with pareto_latency (accuracy vs batch-1 latency) and pareto_size (accuracy vs dense size) flags."""
    lat = pareto_flags([(r.get("accuracy"), r.get("latency_batch_1_ms")) for r in rows])
    size = pareto_flags([(r.get("accuracy"), r.get("model_size_mb")) for r in rows])
    return [{**r, "pareto_latency": a, "pareto_size": b} for r, a, b in zip(rows, lat, size, strict=True)]


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
    done = [r for r in rows if r.get("state") == "succeeded"]
    missing: dict[str, str] = {}
    columns = ["point", *_axis_columns(done, axes, axis_names)]
    for name in METRICS:
        if done and all(r.get(name) is not None for r in done):
            columns.append(name)
        else:
            missing[name] = "not measured for every succeeded point" if done else "no point has succeeded yet"
    columns += ["pareto_latency", "pareto_size"]
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


def _cell(row: dict[str, Any], column: str, axes: dict[str, list[Any]]) -> float:
    if column == "point":
        return row["index"]
    if column.endswith("_index") and column[: -len("_index")] in axes:
        name = column[: -len("_index")]
        return axes[name].index(row[name]) + 1
    if column in ("pareto_latency", "pareto_size"):
        return 1 if row.get(column) else 0
    value = row.get(column)
    return value if value is not None else 0  # only reached for grid axes, which every point has


def study_csv(rows: list[dict[str, Any]], axis_names: Sequence[str]) -> str:
    """One line per point: index, job, state, grid values, metrics, sources, Pareto flags (empty = unmeasured)."""
    header = [
        "point",
        "job_id",
        "state",
        *axis_names,
        *METRICS,
        "teacher_source",
        "student_source",
        "pareto_latency",
        "pareto_size",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        values = [r.get("index"), *(r.get(k) for k in header[1:])]
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
    ax.scatter(xs, ys, color="#8c8c8c", label="point", zorder=2)
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
        ax.plot(
            [r["sparsity"] * 100 for r in members],
            [r["accuracy"] * 100 for r in members],
            "-o",
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

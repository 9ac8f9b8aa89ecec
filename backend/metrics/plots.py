"""PNG plots of a report with matplotlib's object API (Agg, no pyplot state, so safe from worker threads)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .keys import LOSS_VALUES
from .matlab import pair_rows

PLOT_KINDS = (
    "overview",
    "effectiveness",
    "efficiency",
    "compression",
    "complexity",
    "loss_curves",
    "accuracy_vs_sparsity",
    "layer_sparsity",
    "confusion_matrix",
    "runtimes",
    "controls",
)
COLORS = {"teacher": "#4C72B0", "student": "#DD8452", "student_int8": "#55A868", "ce_only": "#8172B3",
          "scratch": "#937860"}  # fmt: skip
BETTER, WORSE, UNKNOWN = "#2E8B57", "#C0392B", "#AAAAAA"
# Figures where more is better; for every other overview figure (time, size, memory, counts) less is better.
HIGHER_IS_BETTER = {"accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted", "full_pass_samples_per_s"}


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _message(fig: Figure, ax: Any, text: str) -> None:
    """An empty axis that says why there is nothing to draw."""
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_axis_off()


def _label(value: float) -> str:
    """A bar label: 19,500 / 0.41 / 0.00423."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _bars(
    ax: Any, rows: list[tuple], ylabel: str, title: str, scale: float = 1.0, intervals: dict | None = None
) -> None:
    """Grouped teacher/student bars for (label, teacher, student) rows; unknown values are marked n/a.

    `intervals`: {label: ((teacher_low, teacher_high), (student_low, student_high))} draws 95% error bars."""
    if not rows:
        return _message(ax.figure, ax, f"{title}: nothing measured")
    width = 0.38
    for offset, who, col in ((-width / 2, "teacher", 1), (width / 2, "student", 2)):
        values = [r[col] * scale if isinstance(r[col], (int, float)) else 0.0 for r in rows]
        errors = None
        if intervals:
            spans = [intervals.get(r[0], ((None, None), (None, None)))[col - 1] for r in rows]
            errors = [
                [
                    max(0.0, v - lo * scale) if lo is not None else 0.0
                    for v, (lo, _hi) in zip(values, spans, strict=True)
                ],
                [
                    max(0.0, hi * scale - v) if hi is not None else 0.0
                    for v, (_lo, hi) in zip(values, spans, strict=True)
                ],
            ]
        bars = ax.bar(
            [i + offset for i in range(len(rows))],
            values,
            width,
            label=who,
            color=COLORS[who],
            yerr=errors,
            capsize=3 if errors else 0,
            error_kw={"elinewidth": 1, "ecolor": "#333333"},
        )
        ax.bar_label(
            bars,
            labels=[
                _label(v) if isinstance(r[col], (int, float)) else "n/a" for v, r in zip(values, rows, strict=True)
            ],
            fontsize=7,
        )
    ax.set_xticks(range(len(rows)), [r[0] for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def _select(report: dict, group: str, fields: list[str]) -> list[tuple]:
    """(field, teacher, student) rows of one metric group, in the order of `fields`."""
    found = {f: (f, t, s) for g, f, _u, t, s in pair_rows(report) if g == group}
    return [found[f] for f in fields if f in found]


def _latency_fields(report: dict, prefix: str) -> list[str]:
    return [f"{prefix}_{key}" for key in report["efficiency_improvements"]["latency"]]


def _intervals(report: dict, fields: list[str]) -> dict:
    """{field: ((teacher_low, teacher_high), (student_low, student_high))} from the *_ci_low/_ci_high pairs."""
    found = {f: (t, s) for g, f, _u, t, s in pair_rows(report) if g == "effectiveness"}
    out = {}
    for f in fields:
        low, high = found.get(f"{f}_ci_low"), found.get(f"{f}_ci_high")
        if low and high:
            out[f] = ((low[0], high[0]), (low[1], high[1]))
    return out


def _memory_fields(report: dict) -> list[str]:
    """The inference-memory increases measured (PyTorch, then ONNX Runtime; batch 1, then 32)."""
    return [f for g, f, _u, _t, _s in pair_rows(report) if g == "efficiency" and "_increase_mb_" in f]


def _plot_effectiveness(report: dict) -> bytes:
    fig = _figure(8, 4.5)
    ax = fig.add_subplot()
    fields = ["accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted"]
    rows, spans = _select(report, "effectiveness", fields), _intervals(report, fields)
    _bars(ax, rows, "score (%)", "Effectiveness on the test split, with 95% intervals", 100.0, spans)
    lows = [lo for pair in spans.values() for lo, _hi in pair if isinstance(lo, (int, float))]
    if lows:  # the axis starts near the lowest interval, so differences of a few points are visible
        ax.set_ylim(max(0.0, (min(lows) * 100.0) - 5.0) // 5 * 5, 100.0 + 2.0)
    fig.tight_layout()
    return _png(fig)


def _plot_efficiency(report: dict) -> bytes:
    fig = _figure(11, 7)
    axes = fig.subplots(2, 2)
    _bars(
        axes[0, 0],
        _select(report, "efficiency", _latency_fields(report, "latency_median_ms")),
        "median latency (ms)",
        "Latency per batch size",
    )
    _bars(
        axes[0, 1],
        _select(report, "efficiency", _latency_fields(report, "throughput_samples_per_s")),
        "throughput (samples/s)",
        "Throughput per batch size",
    )
    _bars(
        axes[1, 0],
        _select(report, "efficiency", ["model_size_mb", "compressed_size_mb"]),
        "size (MB, 1 MB = 10^6 bytes)",
        "Model size: dense and deflated",
    )
    _bars(
        axes[1, 1],
        _select(report, "efficiency", ["param_buffer_mb", *_memory_fields(report)]),
        "memory (MB)",
        "Memory: weights, and a fresh process's RSS increase to run a batch",
    )
    fig.tight_layout()
    return _png(fig)


def _plot_compression(report: dict) -> bytes:
    fig = _figure(12, 4.5)
    axes = fig.subplots(1, 3)
    _bars(
        axes[0],
        _select(report, "compression", ["parameters_total", "parameters_nonzero"]),
        "parameters (millions)",
        "Parameters",
        1e-6,
    )
    _bars(
        axes[1],
        _select(report, "compression", ["layers_conv", "layers_linear", "layers_embedding", "transformer_blocks"]),
        "layers (count)",
        "Layers",
    )
    _bars(
        axes[2],
        _select(report, "compression", ["global_sparsity"]),
        "zero weights (%)",
        "Conv/Linear weight sparsity",
        100.0,
    )
    fig.tight_layout()
    return _png(fig)


def _plot_complexity(report: dict) -> bytes:
    fig = _figure(10, 4.5)
    axes = fig.subplots(1, 2)
    rows = _select(report, "complexity", ["flops_per_sample", "sparse_flops_per_sample"])
    _bars(axes[0], rows, "GFLOPs per sample", "Dense FLOPs, and FLOPs skipping zeros would save", 1e-9)
    _bars(
        axes[1],
        _select(report, "complexity", ["param_memory_mb", "peak_activation_mb"]),
        "memory (MB)",
        "Space: parameters and peak activations",
    )
    fig.tight_layout()
    return _png(fig)


def _numeric(values: list | None) -> bool:
    return bool(values) and all(isinstance(v, (int, float)) for v in values)


def _plot_loss_curves(report: dict) -> bytes:
    history = report["knowledge_distillation_analysis"]["loss_history"]
    phases = [p for p, s in history.items() if s.get("rows")]
    fig = _figure(5 * max(len(phases), 1), 4)
    if not phases:
        _message(fig, fig.add_subplot(), "No training steps were recorded in this run")
        return _png(fig)
    for i, phase in enumerate(phases, start=1):
        ax, series = fig.add_subplot(1, len(phases), i), history[phase]
        x = series["step"] if _numeric(series.get("step")) else list(range(1, series["rows"] + 1))
        for term in LOSS_VALUES:  # the total and every term the job's loss logged
            if _numeric(series.get(term)):
                ax.plot(x, series[term], label=term, linewidth=1.2)
        ax.set_xlabel("training step")
        ax.set_ylabel("loss (nats)")
        ax.set_title(f"{phase} phase", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _before_pruning(report: dict) -> float | None:
    for row in report["learning_outcomes"]["accuracy_by_stage"]:
        if row.get("stage") == "student_kd":
            return row.get("val_accuracy")
    return None


def _plot_accuracy_vs_sparsity(report: dict) -> bytes:
    steps = report["pruning_analysis"].get("steps") or []
    fig = _figure(10, 4.5)
    if not steps:
        _message(fig, fig.add_subplot(), "No pruning steps were run")
        return _png(fig)
    ax1, ax2 = fig.subplots(1, 2)
    x = [100.0 * s["achieved_sparsity"] for s in steps]
    y = [100.0 * s["val_accuracy"] for s in steps]
    start = _before_pruning(report)
    if start is not None:  # the KD student before any pruning: sparsity 0
        x, y = [0.0, *x], [100.0 * start, *y]
    ax1.plot(x, y, marker="o")
    ax1.set_xlabel("achieved sparsity (%)")
    ax1.set_ylabel("validation accuracy (%)")
    ax1.set_title("Accuracy vs sparsity over the pruning steps", fontsize=10)
    xs = [100.0 * s["achieved_sparsity"] for s in steps]
    for key, marker, label in (
        ("model_size_mb", "o", "dense (safetensors)"),
        ("compressed_size_mb", "s", "deflated (zlib)"),
    ):
        values = [s.get(key) for s in steps]
        if _numeric(values):  # a size not measured at some step is left off rather than drawn as a gap
            ax2.plot(xs, values, marker=marker, label=label)
    ax2.set_xlabel("achieved sparsity (%)")
    ax2.set_ylabel("model size (MB)")
    ax2.set_ylim(bottom=0)  # from zero, so the dense line does not look like it moves
    ax2.set_title("Size on disk vs sparsity", fontsize=10)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _plot_layer_sparsity(report: dict) -> bytes:
    pruning = report["pruning_analysis"]
    layers = pruning.get("per_layer_sparsity") or {}
    fig = _figure(9, min(2 + 0.22 * len(layers), 30))
    ax = fig.add_subplot()
    if not layers:
        _message(fig, ax, "No Conv/Linear layers to report")
        return _png(fig)
    names = list(layers)
    ax.barh(range(len(names)), [100.0 * layers[n] for n in names], color=COLORS["student"])
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    target = pruning.get("target_sparsity")
    if isinstance(target, (int, float)):
        ax.axvline(100.0 * target, color="k", linestyle="--", linewidth=1, label=f"target {100 * target:.0f}%")
        ax.legend(fontsize=8)
    ax.set_xlabel("zero weights (%)")
    ax.set_title("Per-layer sparsity of the final student", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _plot_confusion(report: dict) -> bytes:
    cmp = report["teacher_vs_student_comparison"]
    fig = _figure(11, 5)
    for i, who in enumerate(("teacher", "student"), start=1):
        ax, eff = fig.add_subplot(1, 2, i), cmp[who]["effectiveness"]
        image = ax.imshow(eff["confusion_matrix"], cmap="Blues")
        ticks = range(len(eff["class_names"]))
        ax.set_xticks(ticks, eff["class_names"], rotation=45, ha="right", fontsize=7)
        ax.set_yticks(ticks, eff["class_names"], fontsize=7)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"{who}: confusion matrix (test samples)", fontsize=10)
        fig.colorbar(image, ax=ax, label="samples (count)")
    fig.tight_layout()
    return _png(fig)


def _overview_groups(report: dict) -> list[tuple[str, str, list[str]]]:
    """(group, x-axis label, fields) of the overview's four panels."""
    change = "student vs teacher (% change)"
    return [
        (
            "effectiveness",
            "student - teacher (percentage points)",
            ["accuracy", "precision_macro", "recall_macro", "f1_macro"],
        ),
        (
            "efficiency",
            change,
            [
                *_latency_fields(report, "latency_median_ms"),
                "model_size_mb",
                "compressed_size_mb",
                *_memory_fields(report)[-1:],
            ],
        ),
        ("compression", change, ["parameters_total", "parameters_nonzero", "weight_layers", "transformer_blocks"]),
        (
            "complexity",
            change,
            ["flops_per_sample", "sparse_flops_per_sample", "param_memory_mb", "peak_activation_mb"],
        ),
    ]


def _difference(group: str, teacher: Any, student: Any) -> float | None:
    """Points of difference for scores, percent change for everything else; None when unknown."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (teacher, student)):
        return None
    if group == "effectiveness":
        return 100.0 * (student - teacher)
    return 100.0 * (student / teacher - 1.0) if teacher else None


def _pair_label(group: str, teacher: Any, student: Any) -> str:
    fmt = (lambda v: f"{100 * v:.1f}%") if group == "effectiveness" else _label  # noqa: E731
    known = [isinstance(v, (int, float)) for v in (teacher, student)]
    return f"{fmt(teacher) if known[0] else 'n/a'} -> {fmt(student) if known[1] else 'n/a'}"


def _diverging(ax: Any, report: dict, group: str, xlabel: str, fields: list[str]) -> None:
    """Horizontal bars of the student's difference from the teacher (0 = same), green where it is better."""
    rows = [r for r in _select(report, group, fields) if not (r[1] == 0 and r[2] == 0)]  # e.g. no blocks in a CNN
    if not rows:
        return _message(ax.figure, ax, f"{group}: nothing measured")
    diffs = [_difference(group, t, s) for _f, t, s in rows]
    colors = [
        UNKNOWN if d is None else BETTER if (d > 0) == (f in HIGHER_IS_BETTER) or d == 0 else WORSE
        for (f, _t, _s), d in zip(rows, diffs, strict=True)
    ]
    ax.barh(range(len(rows)), [d or 0.0 for d in diffs], color=colors)
    ax.axvline(0, color="k", linewidth=0.8)
    span = max([abs(d) for d in diffs if d is not None] + [1.0])
    ax.set_xlim(-1.3 * span, 1.3 * span)  # symmetric: the labels sit on the side without a bar
    for i, ((_f, t, s), d) in enumerate(zip(rows, diffs, strict=True)):
        if d is None:
            delta = "no % change (teacher is 0)" if t == 0 else "not measured"
        else:
            delta = f"{d:+.1f}{' pts' if group == 'effectiveness' else '%'}"
        # On the empty side of the zero line, so that the text never covers a bar or the tick labels.
        left = d is not None and d > 0
        ax.text(
            -0.03 * span if left else 0.03 * span,
            i,
            f"{delta}  ({_pair_label(group, t, s)})",
            va="center",
            ha="right" if left else "left",
            fontsize=7,
        )
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_title(group.capitalize(), fontsize=10)


def _plot_overview(report: dict) -> bytes:
    """Teacher vs student on the four metric groups: how far the student is from the teacher, and which way."""
    fig = _figure(13, 8)
    for ax, (group, xlabel, fields) in zip(fig.subplots(2, 2).flat, _overview_groups(report), strict=True):
        _diverging(ax, report, group, xlabel, fields)
    fig.suptitle("Student vs teacher (green: better, red: worse; labels: teacher -> student)", fontsize=11)
    fig.tight_layout()
    return _png(fig)


_RENDERERS: dict[str, Callable[[dict], bytes]] = {
    "overview": _plot_overview,
    "effectiveness": _plot_effectiveness,
    "efficiency": _plot_efficiency,
    "compression": _plot_compression,
    "complexity": _plot_complexity,
    "loss_curves": _plot_loss_curves,
    "accuracy_vs_sparsity": _plot_accuracy_vs_sparsity,
    "layer_sparsity": _plot_layer_sparsity,
    "confusion_matrix": _plot_confusion,
    "runtimes": lambda report: _plot_runtimes(report),
    "controls": lambda report: _plot_controls(report),
}


def _plot_controls(report: dict) -> bytes:
    """Teacher, distilled student and the control arms: accuracy and macro F1 with 95% intervals, and the gains."""
    fig = _figure(10, 4.8)
    ax = fig.add_subplot()
    controls = report["knowledge_distillation_analysis"].get("controls")
    if not controls:
        _message(fig, ax, 'No control arms in this job: run it with controls: ["ce_only", "scratch"]')
        return _png(fig)
    cmp = report["teacher_vs_student_comparison"]["effectiveness"]
    rows = {
        "teacher": {m: (cmp[m]["teacher"], cmp[m]["ci"]["teacher"]) for m in ("accuracy", "f1_macro")},
        "student": {m: (cmp[m]["student"], cmp[m]["ci"]["student"]) for m in ("accuracy", "f1_macro")},
        **{arm: {m: (a[m], a[f"{m}_ci"]) for m in ("accuracy", "f1_macro")} for arm, a in controls["arms"].items()},
    }
    width = 0.8 / len(rows)
    lows = []
    for i, (who, metrics) in enumerate(rows.items()):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(2)]
        values = [metrics[m][0] * 100 for m in ("accuracy", "f1_macro")]
        spans = [metrics[m][1] for m in ("accuracy", "f1_macro")]
        lows += [lo * 100 for lo, _hi in spans]
        errors = [[v - lo * 100 for v, (lo, _hi) in zip(values, spans, strict=True)],
                  [hi * 100 - v for v, (_lo, hi) in zip(values, spans, strict=True)]]  # fmt: skip
        bars = ax.bar(xs, values, width, label=who, color=COLORS.get(who, UNKNOWN), yerr=errors, capsize=3,
                      error_kw={"elinewidth": 1, "ecolor": "#333333"})  # fmt: skip
        ax.bar_label(bars, labels=[f"{v:.1f}" for v in values], fontsize=7, padding=8)
    ax.set_xticks(range(2), ["accuracy", "macro F1"])
    ax.set_ylim(max(0.0, min(lows) - 5.0) // 5 * 5, 102.0)
    ax.set_ylabel("score on the test split (%)")
    gains = []
    for key, what in (("kd_gain_points", "KD gain (student - ce_only)"), ("init_gain_points", "init gain (ce_only - "
                      "scratch)")):  # fmt: skip
        g = controls.get(key)
        if g:
            verdict = "within noise" if g["within_noise"] else f"p = {g['p_value']:.2g}"
            gains.append(
                f"{what}: {g['points']:+.1f} pts [{g['ci_points'][0]:+.1f}, {g['ci_points'][1]:+.1f}], {verdict}"
            )
    ax.set_title("Distillation against its controls, 95% intervals\n" + "; ".join(gains), fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _png(fig)


def _plot_runtimes(report: dict) -> bytes:
    """Median latency by runtime (eager PyTorch, ONNX Runtime) for teacher, student and int8 student."""
    runtimes = report["efficiency_improvements"].get("runtimes") or {}
    ort = runtimes.get("onnxruntime")
    pytorch = report["efficiency_improvements"]["latency"]
    keys = list(pytorch)
    fig = _figure(11, 4.5)
    axes = fig.subplots(1, max(1, len(keys)), squeeze=False)[0]
    for ax, key in zip(axes, keys, strict=False):  # no keys: one empty panel says why
        if not ort:
            _message(fig, ax, f"ONNX Runtime not measured: {runtimes.get('onnxruntime_reason', 'no figures')}")
            continue
        groups = [
            ("PyTorch (eager)", {n: pytorch[key].get(f"{n}_median_ms") for n in ("teacher", "student")}),
            ("ONNX Runtime", {n: ort["latency"][key].get(f"{n}_median_ms") for n in ort["labels"]}),
        ]
        width = 0.27
        for i, who in enumerate(("teacher", "student", "student_int8")):
            values = [g[1].get(who) for g in groups]
            xs = [j + (i - 1) * width for j in range(len(groups))]
            bars = ax.bar(
                xs, [v if isinstance(v, (int, float)) else 0.0 for v in values], width, label=who, color=COLORS[who]
            )
            ax.bar_label(bars, labels=[_label(v) if isinstance(v, (int, float)) else "n/a" for v in values], fontsize=7)
        ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
        ax.set_ylabel("median latency (ms)")
        ax.set_title(f"Latency by runtime, {key.replace('_', ' ')}", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def render_plot(report: dict, kind: str) -> bytes:
    """A PNG of one plot kind; ValueError naming the valid kinds for any other."""
    if kind not in _RENDERERS:
        raise ValueError(f"Unknown plot kind {kind!r}; valid: {', '.join(PLOT_KINDS)}")
    return _RENDERERS[kind](report)

"""MATLAB-friendly data: valid identifiers, numeric [teacher, student] pairs, equal-length numeric series, CSV."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from typing import Any

from .keys import EFFECTIVENESS_KEYS, LOSS_TERMS

LABELS = ["teacher", "student"]
RUNTIME_LABELS = ("teacher", "student", "student_int8")
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_STEP_COLUMNS = (
    "step",
    "target_sparsity",
    "achieved_sparsity",
    "val_accuracy",
    "nonzero_parameters",
    "model_size_mb",
    "compressed_size_mb",
)
_COMPARISON_SCALARS = (
    "compression_ratio",
    "parameter_ratio",
    "parameter_reduction_pct",
    "dense_size_ratio",
    "compressed_size_ratio",
    "size_reduction_dense_pct",
    "size_reduction_compressed_pct",
    "accuracy_drop_points",
    "accuracy_drop_relative_pct",
    "f1_macro_drop_points",
    "flops_ratio",
    "flops_ratio_if_zeros_skipped",
    "full_pass_speedup",
)

# (group, field, unit, path into one model's measurement block in teacher_vs_student_comparison)
PAIR_SPECS: tuple[tuple[str, str, str, tuple[Any, ...]], ...] = (
    *(("effectiveness", k, "fraction", ("effectiveness", k)) for k in EFFECTIVENESS_KEYS),
    # each metric's 95% interval beside its pair: Wilson for accuracy, bootstrap for the others
    *(
        ("effectiveness", f"{k}_ci_{end}", "fraction", ("effectiveness", f"{k}_ci", i))
        for k in EFFECTIVENESS_KEYS
        for i, end in enumerate(("low", "high"))
    ),
    ("effectiveness", "invalid_predictions", "count", ("effectiveness", "invalid_predictions")),
    ("efficiency", "model_size_mb", "MB", ("efficiency", "size", "model_size_mb")),
    ("efficiency", "compressed_size_mb", "MB", ("efficiency", "size", "compressed_size_mb")),
    ("efficiency", "param_buffer_mb", "MB", ("efficiency", "memory", "param_buffer_mb")),
    ("efficiency", "full_pass_s", "s", ("efficiency", "full_pass_s")),
    ("efficiency", "full_pass_samples_per_s", "samples/s", ("efficiency", "full_pass_samples_per_s")),
    ("compression", "parameters_total", "count", ("compression", "parameters", "total")),
    ("compression", "parameters_nonzero", "count", ("compression", "parameters", "nonzero")),
    ("compression", "layers_conv", "count", ("compression", "layers", "conv")),
    ("compression", "layers_linear", "count", ("compression", "layers", "linear")),
    ("compression", "layers_embedding", "count", ("compression", "layers", "embedding")),
    ("compression", "weight_layers", "count", ("compression", "layers", "weight_layers")),
    ("compression", "transformer_blocks", "count", ("compression", "layers", "transformer_blocks")),
    ("compression", "global_sparsity", "fraction", ("compression", "sparsity", "global_sparsity")),
    ("complexity", "flops_per_sample", "FLOPs", ("complexity", "flops", "flops_per_sample")),
    ("complexity", "macs_per_sample", "MACs", ("complexity", "flops", "macs_per_sample")),
    ("complexity", "gflops_per_sample", "GFLOPs", ("complexity", "flops", "gflops_per_sample")),
    ("complexity", "sparse_flops_per_sample", "FLOPs", ("complexity", "flops", "sparse_flops_per_sample")),
    ("complexity", "param_memory_mb", "MB", ("complexity", "space", "param_memory_mb")),
    ("complexity", "peak_activation_mb", "MB", ("complexity", "space", "peak_activation_mb")),
)
GROUPS = ("effectiveness", "efficiency", "compression", "complexity")


def matlab_identifier(name: str) -> str:
    """A valid MATLAB field name for any string: other characters become '_', a leading non-letter gets 'x'."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", str(name)) or "x"
    if not ident[0].isalpha():
        ident = f"x{ident}"
    return ident[:63]


def _number(value: Any) -> float | int | None:
    """A finite int/float, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def _dig(node: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        if isinstance(key, int):
            node = node[key] if isinstance(node, list) and len(node) > key else None
        else:
            node = node.get(key) if isinstance(node, dict) else None
    return node


def _latency_specs(report: dict) -> Iterator[tuple[str, str, str, dict]]:
    """(group, field, unit, {who: value}) for every latency figure, per batch size."""
    eff = report["efficiency_improvements"]
    # 'latency' is on the job's device; 'latency_cpu' (suffix _cpu) only when that device was not the CPU
    for section, suffix in (("latency", ""), ("latency_cpu", "_cpu")):
        for key, row in (eff.get(section) or {}).items():
            for field, unit, src in (
                ("latency_median_ms", "ms", "median_ms"),
                ("latency_p95_ms", "ms", "p95_ms"),
                ("throughput_samples_per_s", "samples/s", "throughput_samples_per_s"),
            ):
                yield "efficiency", f"{field}_{key}{suffix}", unit, {who: row.get(f"{who}_{src}") for who in LABELS}


def _memory_specs(report: dict) -> Iterator[tuple[str, str, str, dict]]:
    """(group, field, unit, {who: value}) for every inference-memory figure: per runtime, measure and batch size."""
    memory = report["efficiency_improvements"].get("inference_memory") or {}
    for runtime in ("pytorch", "onnxruntime"):
        per_model = memory.get(runtime) or {}
        keys = sorted({k for row in per_model.values() for k in row}, key=lambda k: int(k.split("_")[-1]))
        for key in keys:
            for measure in ("peak_rss_mb", "increase_mb"):
                values = {who: (per_model.get(who, {}).get(key) or {}).get(measure) for who in LABELS}
                yield "efficiency", f"inference_{runtime}_{measure}_{key}", "MB", values


def pair_rows(report: dict) -> list[tuple[str, str, str, Any, Any]]:
    """(group, field, unit, teacher, student) for every before/after figure of the report."""
    cmp = report["teacher_vs_student_comparison"]
    rows = [(g, f, u, _dig(cmp["teacher"], p), _dig(cmp["student"], p)) for g, f, u, p in PAIR_SPECS]
    rows += [(g, f, u, v["teacher"], v["student"]) for g, f, u, v in _latency_specs(report)]
    rows += [(g, f, u, v["teacher"], v["student"]) for g, f, u, v in _memory_specs(report)]
    return rows


def ort_rows(report: dict) -> list[tuple[str, str, str, Any, Any, Any]]:
    """(group, field, unit, teacher, student, student_int8) for every ONNX Runtime figure; [] when not measured."""
    ort = (report["efficiency_improvements"].get("runtimes") or {}).get("onnxruntime")
    if not ort:
        return []
    rows = [
        ("onnxruntime", "accuracy", "fraction", *(ort["accuracy"].get(n) for n in RUNTIME_LABELS)),
        ("onnxruntime", "model_size_mb", "MB", *(ort["size_mb"].get(n) for n in RUNTIME_LABELS)),
    ]
    for key, row in ort["latency"].items():
        for field, unit, src in (
            ("latency_median_ms", "ms", "median_ms"),
            ("latency_p95_ms", "ms", "p95_ms"),
            ("throughput_samples_per_s", "samples/s", "throughput_samples_per_s"),
        ):
            rows.append(("onnxruntime", f"{field}_{key}", unit, *(row.get(f"{n}_{src}") for n in RUNTIME_LABELS)))
    return rows


def _controls(report: dict) -> dict | None:
    """The control arms beside the student: parallel arrays over `labels` (student first), and the gains."""
    controls = report["knowledge_distillation_analysis"].get("controls")
    if not controls:
        return None
    student = report["student_model_performance"]
    rows = {"student": student, **controls["arms"]}
    out: dict[str, Any] = {"labels": list(rows)}
    for key in EFFECTIVENESS_KEYS:
        out[key] = [float(r[key]) for r in rows.values()]
        out[f"{key}_ci_low"] = [float(r[f"{key}_ci"][0]) for r in rows.values()]
        out[f"{key}_ci_high"] = [float(r[f"{key}_ci"][1]) for r in rows.values()]
    out["arm_wall_time_s"] = [float(a["wall_time_s"]) for a in controls["arms"].values()]
    out["arm_labels"] = list(controls["arms"])
    for gain in ("kd_gain_points", "init_gain_points"):
        value = controls.get(gain)
        if value:
            stem = gain.removesuffix("_points")
            out[gain] = float(value["points"])
            out[f"{stem}_ci_low_points"], out[f"{stem}_ci_high_points"] = (float(v) for v in value["ci_points"])
            out[f"{stem}_p_value"] = float(value["p_value"])
    return out


def _runtimes(report: dict, missing: dict) -> dict:
    """Latency by runtime: pytorch [teacher, student] and onnxruntime [teacher, student(, student_int8)]."""
    pytorch = {
        matlab_identifier(f): [_number(v["teacher"]), _number(v["student"])] for g, f, u, v in _latency_specs(report)
    }
    out: dict[str, Any] = {"pytorch": {k: v for k, v in pytorch.items() if None not in v}}
    rows = ort_rows(report)
    if not rows:
        missing["runtimes_onnxruntime"] = (report["efficiency_improvements"].get("runtimes") or {}).get(
            "onnxruntime_reason"
        ) or "not measured in this run"
        return out
    has_int8 = all(_number(r[5]) is not None for r in rows)
    labels = list(RUNTIME_LABELS if has_int8 else LABELS)
    if not has_int8:
        missing["runtimes_onnxruntime_student_int8"] = "quantize was 'none': no int8 student was made"
    ort: dict[str, Any] = {"labels": labels}
    for _group, field, _unit, *values in rows:
        numbers = [_number(v) for v in values[: len(labels)]]
        if None in numbers:
            missing[matlab_identifier(f"runtimes_onnxruntime_{field}")] = "not measured for every model"
        else:
            ort[matlab_identifier(field)] = numbers
    extra = report["efficiency_improvements"]["runtimes"]["onnxruntime"]
    for key in ("student_accuracy_difference_points", "accuracy_drop_int8_points"):
        if _number(extra.get(key)) is not None:
            ort[key] = extra[key]
    out["onnxruntime"] = ort
    return out


_CANDIDATE_COLUMNS = (
    "amount",
    "flops_per_sample",
    "parameters",
    "latency_ms",
    "latency_p95_ms",
    "teacher_latency_ms",
    "speedup",
    "measure_s",
)


def _ends(values: Any, stem: str) -> dict:
    """{stem_low: a, stem_high: b} from an interval [a, b]; {} when there is none."""
    if not isinstance(values, list) or len(values) != 2 or any(_number(v) is None for v in values):
        return {}
    return {f"{stem}_low": values[0], f"{stem}_high": values[1]}


def _latency_target(report: dict, missing: dict) -> dict | None:
    """The latency target: what was asked, the candidates as parallel arrays, the chosen amount, what the trained
    student achieved and whether it met the target (1/0); None (listed in `missing`) when none was asked."""
    section = report.get("latency_target") or {}
    if not section.get("asked"):
        missing["latency_target"] = section.get("asked_reason") or "no latency target in this report"
        return None
    asked = section["asked"]
    rows = section["candidates"]
    candidates = _series_struct(
        {c: [row.get(c) for row in rows] for c in _CANDIDATE_COLUMNS}, "latency_target_candidates", missing
    )
    candidates["meets_target"] = [int(bool(row["meets_target"])) for row in rows]
    for key, stem in (("latency_ms_ci", "latency_ms_ci"), ("speedup_ci", "speedup_ci")):
        pairs = [_ends(row.get(key), stem) for row in rows]
        if all(pairs):
            candidates[f"{stem}_low"] = [p[f"{stem}_low"] for p in pairs]
            candidates[f"{stem}_high"] = [p[f"{stem}_high"] for p in pairs]
    out: dict[str, Any] = {
        "runtime": asked["runtime"],
        "batch_size": asked["batch_size"],
        "amount_name": section["amount"],
        **{k: asked[k] for k in ("target_latency_ms", "target_speedup") if _number(asked.get(k)) is not None},
        "candidates": candidates,
        "chosen": section["chosen"],
    }
    achieved = section.get("achieved")
    if achieved:
        for key in ("latency_ms", "teacher_latency_ms", "speedup"):
            if _number(achieved.get(key)) is not None:
                out[f"achieved_{key}"] = achieved[key]
        out.update(_ends(achieved.get("latency_ms_ci"), "achieved_latency_ms_ci"))
        out.update(_ends(achieved.get("speedup_ci"), "achieved_speedup_ci"))
    else:
        missing["latency_target_achieved"] = section.get("achieved_reason") or "not measured"
    if isinstance(section.get("met"), bool):
        out["met"] = int(section["met"])
    return out


def _pairs(report: dict, missing: dict) -> dict[str, dict]:
    """Each group's numeric [teacher, student] pairs; unknown ones recorded in `missing`."""
    groups: dict[str, dict] = {g: {} for g in GROUPS}
    for group, field, _unit, t, s in pair_rows(report):
        t, s = _number(t), _number(s)
        if t is None or s is None:
            missing[matlab_identifier(f"{group}_{field}")] = "teacher or student value was not measured in this run"
        else:
            groups[group][matlab_identifier(field)] = [t, s]
    return groups


def _comparison(report: dict, missing: dict) -> dict:
    """Scalar teacher/student ratios and differences."""
    derived = report["teacher_vs_student_comparison"]["derived"]
    kd = report["knowledge_distillation_analysis"]
    values = {k: derived.get(k) for k in _COMPARISON_SCALARS}
    values.update({f"speedup_{k}": v for k, v in (derived.get("speedup") or {}).items()})
    drop_ci = derived.get("accuracy_drop_ci_points") or [None, None]
    values["accuracy_drop_ci_low_points"], values["accuracy_drop_ci_high_points"] = drop_ci
    values["accuracy_drop_p_value"] = derived.get("accuracy_drop_p_value")
    values["accuracy_drop_within_noise"] = (
        None if derived.get("accuracy_drop_within_noise") is None else int(derived["accuracy_drop_within_noise"])
    )
    values["teacher_student_agreement_pct"] = kd.get("teacher_student_agreement_pct")
    values["mean_kl"] = kd.get("mean_kl")
    out = {}
    for key, value in values.items():
        if _number(value) is None:
            missing[matlab_identifier(f"comparison_{key}")] = (
                kd.get("mean_kl_reason") if key == "mean_kl" else None
            ) or "not measured in this run"
        else:
            out[matlab_identifier(key)] = value
    return out


def _series_struct(columns: dict[str, list], prefix: str, missing: dict) -> dict:
    """Equal-length numeric arrays; a column holding a non-number is dropped and listed in `missing`."""
    out = {}
    for name, values in columns.items():
        if values is None:
            continue
        numbers = [_number(v) for v in values]
        if any(n is None for n in numbers):
            missing[matlab_identifier(f"{prefix}_{name}")] = "some values were not recorded, so the series is left out"
        else:
            out[matlab_identifier(name)] = numbers
    return out


def _copy_numbers(src: dict, keys: tuple[str, ...], prefix: str, default_reason: str, out: dict, missing: dict) -> None:
    """Numeric scalars from `src` into `out`; the others into `missing` with their reason."""
    for key in keys:
        if _number(src.get(key)) is None:
            missing[f"{prefix}_{key}"] = src.get(f"{key}_reason") or default_reason
        else:
            out[key] = src[key]


def _training(report: dict, missing: dict) -> dict:
    """KD settings, loss series per phase, validation series per phase, accuracy per stage."""
    kd = report["knowledge_distillation_analysis"]
    outcomes = report["learning_outcomes"]
    out: dict[str, Any] = {}
    _copy_numbers(kd, ("temperature", "alpha"), "training", "not in the job config", out, missing)
    cost = kd.get("extra_cost") or {}  # the job's loss against logits alone, seconds per step and per epoch
    for key in ("ratio", "logits_only_s_per_step", "full_loss_s_per_step", "extra_s_per_epoch_estimate"):
        if _number(cost.get(key)) is None:
            missing[f"training_kd_extra_cost_{key}"] = kd.get("extra_cost_reason") or "not measured"
        else:
            out[f"kd_extra_cost_{key}"] = cost[key]
    for phase, series in kd["loss_history"].items():
        for term in LOSS_TERMS:
            if term in series and series[term] is None:
                missing[matlab_identifier(f"training_{phase}_{term}")] = series.get(f"{term}_reason", "not recorded")
        out[matlab_identifier(phase)] = _series_struct(
            {t: series.get(t) for t in LOSS_TERMS if t in series}, f"training_{phase}", missing
        )
    validation = outcomes.get("validation_history", [])
    for phase in ("teacher", "distill", "prune"):
        rows = [r for r in validation if r.get("phase") == phase]
        columns = {k: [r.get(k) for r in rows] for k in ("epoch", "accuracy", "loss")}
        if phase == "prune":
            columns["pruning_step"] = [r.get("pruning_step") for r in rows]
        out[f"validation_{phase}"] = _series_struct(columns, f"training_validation_{phase}", missing)
    for split in ("val", "test"):
        rows = [r for r in outcomes["accuracy_by_stage"] if _number(r.get(f"{split}_accuracy")) is not None]
        out[f"stages_{split}"] = {
            "stage": [r["stage"] for r in rows],
            "accuracy": [r[f"{split}_accuracy"] for r in rows],
        }
    return out


def _pruning(report: dict, missing: dict) -> dict:
    """Target and achieved sparsity, the per-step series, and per-layer sparsity as parallel arrays."""
    pruning = report["pruning_analysis"]
    out: dict[str, Any] = {}
    _copy_numbers(
        pruning, ("target_sparsity", "achieved_sparsity"), "pruning", "not measured in this run", out, missing
    )
    steps = pruning.get("steps") or []
    out["steps"] = _series_struct({c: [row.get(c) for row in steps] for c in _STEP_COLUMNS}, "pruning_steps", missing)
    layers = pruning.get("per_layer_sparsity") or {}
    out["layers"] = {"name": list(layers), "sparsity": [float(v) for v in layers.values()]}
    return out


def _per_class(report: dict) -> dict:
    """Per-class precision/recall/F1 for both models, parallel to the class names; confusion matrices."""
    cmp = report["teacher_vs_student_comparison"]
    out: dict[str, Any] = {"class_names": list(cmp["student"]["effectiveness"]["class_names"])}
    for who in LABELS:
        rows = cmp[who]["effectiveness"]["per_class"]
        for metric in ("precision", "recall", "f1"):
            out[f"{who}_{metric}"] = [row[metric] for row in rows]
        out[f"{who}_confusion"] = cmp[who]["effectiveness"]["confusion_matrix"]
    out["support"] = [row["support"] for row in cmp["student"]["effectiveness"]["per_class"]]
    return out


def matlab_data(report: dict) -> dict:
    """The report's figures in MATLAB-friendly form (wrap as {"matlab_data": ...})."""
    missing: dict[str, str] = {}
    model = report["metadata"]["model"]
    data = {
        "model_name": model.get("id") or "",
        "display_name": model.get("display_name") or "",
        "labels": list(LABELS),
        **_pairs(report, missing),
        "comparison": _comparison(report, missing),
        "training": _training(report, missing),
        "pruning": _pruning(report, missing),
        "per_class": _per_class(report),
        "runtimes": _runtimes(report, missing),
    }
    controls = _controls(report)
    if controls is None:
        missing["controls"] = report["knowledge_distillation_analysis"].get("controls_reason", "no control arms")
    else:
        data["controls"] = controls
    latency_target = _latency_target(report, missing)
    if latency_target is not None:
        data["latency_target"] = latency_target
    data["missing"] = missing
    data["notes"] = {
        "pairs": "effectiveness, efficiency, compression and complexity fields are [teacher, student]",
        "units": "units are in field names (_ms, _mb, _s); accuracy and sparsity are fractions in [0, 1]",
        "missing": "fields that could not be measured are left out and listed in missing with the reason",
        "latency_device": "efficiency latency fields were measured on "
        + str(report["efficiency_improvements"].get("latency_conditions", {}).get("device", "cpu"))
        + "; fields ending _cpu on the CPU at fp32",
        "runtimes": "latency by runtime: runtimes.pytorch fields are [teacher, student]; runtimes.onnxruntime "
        "fields follow runtimes.onnxruntime.labels ([teacher, student] or [teacher, student, "
        "student_int8] when quantize is dynamic_int8)",
        "latency_target": "latency_target.candidates fields are parallel arrays, one entry per candidate in the "
        "order measured; met and meets_target are 1 (true) or 0 (false)",
    }
    return data


def _model_matrix(datas: dict[str, dict], missing: dict) -> dict:
    """For each pair field known for every model: an N x 2 matrix (rows: models, columns: teacher, student)."""
    out: dict[str, list] = {}
    firsts = [(g, f) for g in GROUPS for f in next(iter(datas.values()))[g]] if datas else []
    for group, field in firsts:
        rows = [d[group].get(field) for d in datas.values()]
        if all(r is not None for r in rows):
            out[field] = rows
        else:
            missing[matlab_identifier(f"models_{field}")] = "not measured for every model"
    return out


def _model_scalars(datas: dict[str, dict]) -> dict:
    """For each comparison scalar known for every model: one number per model."""
    if not datas:
        return {}
    keys = set.intersection(*(set(d["comparison"]) for d in datas.values()))
    first = next(iter(datas.values()))["comparison"]
    return {k: [d["comparison"][k] for d in datas.values()] for k in first if k in keys}


def matlab_all_models(reports: dict[str, dict]) -> dict:
    """Every model's data, as a struct per model id plus aligned arrays across models for comparison plots."""
    datas = {matlab_identifier(model_id): matlab_data(report) for model_id, report in reports.items()}
    missing: dict[str, str] = {}
    return {
        "labels": list(LABELS),
        "model_ids": list(reports),
        "model_fields": list(datas),
        "models": datas,
        "pairs": _model_matrix(datas, missing),
        "comparison": _model_scalars(datas),
        "missing": missing,
        "notes": {
            "pairs": "each pairs field is an N x 2 matrix: one row per model (model_fields order), "
            "columns teacher, student",
            "comparison": "each comparison field has one number per model, in model_fields order",
        },
    }


def metrics_csv(report: dict) -> str:
    """A flat CSV `metric,unit,teacher,student,student_int8[,<control arm>...]` (PyTorch rows, then onnxruntime.*
    rows, then controls.* rows; empty cell: not measured - student_int8 exists only in ONNX Runtime, with
    quantize=dynamic_int8; a column per control arm only when the job ran control arms, filled on the
    effectiveness rows; controls.kd_gain_* / init_gain_* rows hold the paired gain in the student column)."""
    controls = report["knowledge_distillation_analysis"].get("controls") or {}
    arms = list(controls.get("arms") or {})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["metric", "unit", "teacher", "student", "student_int8", *arms])
    cell = lambda v: "" if _number(v) is None else v  # noqa: E731
    pad = [""] * len(arms)
    for group, field, unit, t, s in pair_rows(report):
        values = pad
        if group == "effectiveness" and arms:
            values = [cell(_arm_value(controls["arms"][arm], field)) for arm in arms]
        writer.writerow([f"{group}.{field}", unit, cell(t), cell(s), "", *values])
    for group, field, unit, t, s, i in ort_rows(report):
        writer.writerow([f"{group}.{field}", unit, cell(t), cell(s), cell(i), *pad])
    for gain in ("kd_gain", "init_gain"):
        value = controls.get(f"{gain}_points")
        if value:
            low, high = value["ci_points"]
            for field, unit, v in (
                ("points", "points", value["points"]),
                ("ci_low_points", "points", low),
                ("ci_high_points", "points", high),
                ("p_value", "probability", value["p_value"]),
            ):
                writer.writerow([f"controls.{gain}_{field}", unit, "", cell(v), "", *pad])
    return buffer.getvalue()


def _arm_value(arm: dict, field: str) -> Any:
    """An effectiveness field of a control arm: a metric, or one end of its interval (<metric>_ci_low/high)."""
    for end, index in (("_ci_low", 0), ("_ci_high", 1)):
        if field.endswith(end):
            interval = arm.get(field.removesuffix(end) + "_ci")
            return interval[index] if interval else None
    return arm.get(field)


def matlab_problems(data: Any, path: str = "matlab_data") -> list[str]:
    """Field names in `data` that are not valid MATLAB identifiers, and nulls or non-finite numbers anywhere."""
    problems: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if not _IDENT.match(str(key)):
                problems.append(f"{path}: invalid field name {key!r}")
            problems += matlab_problems(value, f"{path}.{key}")
    elif isinstance(data, list):
        for i, value in enumerate(data):
            problems += matlab_problems(value, f"{path}[{i}]")
    elif data is None or (isinstance(data, float) and not math.isfinite(data)):
        problems.append(f"{path}: null or non-finite value")
    return problems

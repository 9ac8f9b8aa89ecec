"""The six-section report, written from the pipeline's context and the measurements of measure_pair."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from .common import MB_NOTE, finite, ratio
from .complexity import DENSE_FLOPS_NOTE
from .jsonsafe import REASON_SUFFIX, ensure_reasons, sanitize_json, to_strict_json
from .keys import EFFECTIVENESS_KEYS, LOSS_SPECIFIC_TERMS, LOSS_TERMS, SECTIONS
from .matlab import pair_rows
from .realised import flops_against_speed, speed_blocks
from .stats import METHODS
from .summary import summary_sentences

REPORT_VERSION = 1
CONVENTIONS = {
    "fractions": "accuracy, precision, recall, f1 and sparsity are fractions in [0, 1]; a *_pct twin is percent",
    "percent": "*_pct keys are percent (0-100); *_points keys are percentage points",
    "ratios": "ratios are teacher / student: above 1 means the student is smaller or faster",
    "nulls": "a value that could not be measured is null, with a sibling <key>_reason saying why",
    "megabytes": MB_NOTE,
    "seconds": "*_s keys are seconds; *_ms keys are milliseconds",
}
STAGE_LABELS = {
    "teacher": "teacher",
    "student_structural": "student after structural compression",
    "student_kd": "student after knowledge distillation",
    "student_pruned": "student after pruning",
    "final": "final student",
}


def _set(out: dict, key: str, value: Any, reason: str) -> None:
    """out[key] = value, plus out[key_reason] = reason when the value is unknown."""
    out[key] = value
    if value is None:
        out[f"{key}{REASON_SUFFIX}"] = reason


def _set_fraction(out: dict, key: str, value: Any, reason: str) -> None:
    """out[key] as a fraction and out[key_pct] as percent, both with the reason when unknown."""
    value = finite(value)
    _set(out, key, value, reason)
    _set(out, f"{key}_pct", _pct(value), reason)


def _with_reasons(row: dict, reason: str) -> dict:
    """A copy of a table row with a *_reason beside each null that has none."""
    out = dict(row)
    for key, value in row.items():
        if value is None and not row.get(f"{key}{REASON_SUFFIX}"):
            out[f"{key}{REASON_SUFFIX}"] = reason
    return out


def _pct(fraction: Any) -> float | None:
    """A fraction as percent; None stays None."""
    value = finite(fraction)
    return None if value is None else value * 100.0


def _pair(measure: dict, path: tuple[str, ...]) -> dict:
    """{"teacher": x, "student": y} for one path into each model's measurement block."""
    out = {}
    for name in ("teacher", "student"):
        node: Any = measure.get(name, {})
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        out[name] = node
    return out


# ---- student_model_performance ---------------------------------------------------------------------------


def _student_performance(ctx: dict) -> dict:
    """The final student's measured figures on the test split."""
    m = ctx["measurements"]
    s, latency = m["student"], m["latency"]["per_model"]["student"]
    eff = s["effectiveness"]
    return {
        "model": ctx["display_name"],
        "model_id": ctx["model_name"],
        "test_samples": eff["num_samples"],
        **{key: eff[key] for key in EFFECTIVENESS_KEYS},
        **{f"{key}_ci": eff.get(f"{key}_ci") for key in EFFECTIVENESS_KEYS},
        "intervals_note": eff.get("intervals_note"),
        "accuracy_pct": _pct(eff["accuracy"]),
        "invalid_predictions": eff["invalid_predictions"],
        "per_class": eff["per_class"],
        "confusion_matrix": eff["confusion_matrix"],
        "class_names": eff["class_names"],
        "parameters": s["compression"]["parameters"],
        "layers": s["compression"]["layers"],
        "global_sparsity": s["compression"]["sparsity"]["global_sparsity"],
        "model_size_mb": s["efficiency"]["size"]["model_size_mb"],
        "compressed_size_mb": s["efficiency"]["size"]["compressed_size_mb"],
        "latency_ms": {key: {"median_ms": v["median_ms"], "p95_ms": v["p95_ms"]} for key, v in latency.items()},
        "throughput_samples_per_s": {key: v["throughput_samples_per_s"] for key, v in latency.items()},
        "flops_per_sample": s["complexity"]["flops"]["flops_per_sample"],
        "macs_per_sample": s["complexity"]["flops"]["macs_per_sample"],
        "memory": s["efficiency"]["memory"],
        "full_pass_s": s["efficiency"]["full_pass_s"],
        "onnxruntime": _ort_student(m.get("deployment")),
        "unit_note": MB_NOTE,
    }


def _ort_student(dep: dict | None) -> dict:
    """The exported student's test accuracy in ONNX Runtime beside PyTorch's, and the int8 student's."""
    out: dict[str, Any] = {}
    ok = bool(dep) and "error" not in dep
    reason = f"the ONNX export or ONNX Runtime failed: {dep['error']}" if dep and not ok else "not measured"
    _set(out, "accuracy", dep["accuracy"]["student"] if ok else None, reason)
    _set(out, "accuracy_pytorch", dep["pytorch_accuracy"]["student"] if ok else None, reason)
    _set(out, "accuracy_difference_points", dep["student_accuracy_difference_points"] if ok else None, reason)
    _set(
        out,
        "accuracy_int8",
        dep["accuracy"]["student_int8"] if ok else None,
        (dep.get("quantization_reason") if ok else None) or reason,
    )
    out["note"] = "accuracy fractions on the test split; difference = ONNX Runtime minus PyTorch, in points"
    return out


# ---- teacher_vs_student_comparison -----------------------------------------------------------------------


def _effectiveness_pairs(m: dict) -> dict:
    """Teacher and student per metric, each with its interval, and the paired difference (student - teacher)."""
    out = {}
    differences = m.get("differences") or {}
    for key in EFFECTIVENESS_KEYS:
        pair = _pair(m, ("effectiveness", key))
        pair["student_minus_teacher_points"] = (pair["student"] - pair["teacher"]) * 100.0
        pair["ci"] = _pair(m, ("effectiveness", f"{key}_ci"))
        _set(pair, "difference", differences.get(key), "no paired predictions to compare")
        out[key] = pair
    out["intervals_note"] = m["student"]["effectiveness"].get("intervals_note")
    out["difference_note"] = (
        "difference: student minus teacher in points, paired on the same test examples; " + METHODS["difference"]
    )
    return out


def _comparison(ctx: dict) -> dict:
    """Side by side: effectiveness, compression, complexity; the derived ratios; both full measurement blocks."""
    m = ctx["measurements"]
    return {
        "effectiveness": _effectiveness_pairs(m),
        "compression": {
            "parameters_total": _pair(m, ("compression", "parameters", "total")),
            "parameters_nonzero": _pair(m, ("compression", "parameters", "nonzero")),
            "weight_layers": _pair(m, ("compression", "layers", "weight_layers")),
            "transformer_blocks": _pair(m, ("compression", "layers", "transformer_blocks")),
            "global_sparsity": _pair(m, ("compression", "sparsity", "global_sparsity")),
            "layers_counted": m["teacher"]["compression"]["layers"]["counted"],
        },
        "complexity": {
            "flops_per_sample": _pair(m, ("complexity", "flops", "flops_per_sample")),
            "macs_per_sample": _pair(m, ("complexity", "flops", "macs_per_sample")),
            "sparse_flops_per_sample": _pair(m, ("complexity", "flops", "sparse_flops_per_sample")),
            "param_memory_mb": _pair(m, ("complexity", "space", "param_memory_mb")),
            "peak_activation_mb": _pair(m, ("complexity", "space", "peak_activation_mb")),
            "note": DENSE_FLOPS_NOTE,
        },
        "derived": m["comparison"],
        "flops_vs_speed": flops_against_speed(
            m["comparison"]["flops_ratio"], m["comparison"]["flops_ratio_if_zeros_skipped"], speed_blocks(m)
        ),
        "teacher": m["teacher"],
        "student": m["student"],
        "conditions": m.get("conditions", {}),
    }


# ---- knowledge_distillation_analysis ---------------------------------------------------------------------


def _series(rows: list[dict], phase: str) -> dict:
    """Loss history rows as parallel lists per term; a term that is never given is null with a reason."""
    out: dict[str, Any] = {"rows": len(rows)}
    for term in LOSS_TERMS:
        if not any(term in row for row in rows) and term in ("pruning_step", *LOSS_SPECIFIC_TERMS):
            continue
        values = [finite(row.get(term)) for row in rows]
        if rows and all(v is None for v in values):
            reason = (
                "the teacher is trained with cross-entropy only"
                if phase == "teacher" and term == "kd_loss"
                else f"no {term} was recorded in the {phase} phase"
            )
            _set(out, term, None, reason)
        else:
            out[term] = values
            if any(v is None for v in values):
                out[f"{term}{REASON_SUFFIX}"] = f"{term} was not recorded (or not finite) for some {phase} steps"
    return out


def _agreement(pred: dict) -> dict:
    """How often teacher and student give the same prediction, and how their hits overlap, on the test split."""
    t, s, y = pred.get("teacher", []), pred.get("student", []), pred.get("labels", [])
    n = min(len(t), len(s), len(y))
    same = sum(t[i] == s[i] for i in range(n))
    both = sum(t[i] == y[i] and s[i] == y[i] for i in range(n))
    t_only = sum(t[i] == y[i] and s[i] != y[i] for i in range(n))
    s_only = sum(s[i] == y[i] and t[i] != y[i] for i in range(n))
    out = {
        "samples": n,
        "same_prediction": same,
        "both_correct": both,
        "teacher_only_correct": t_only,
        "student_only_correct": s_only,
        "both_wrong": n - both - t_only - s_only,
    }
    _set(out, "agreement_pct", ratio(same * 100.0, n), "no test predictions to compare")
    return out


def _stage_value(ctx: dict, stage: str, key: str) -> float | None:
    for row in ctx.get("stages", []):
        if row.get("stage") == stage:
            return finite(row.get(key))
    return None


def _kd_analysis(ctx: dict) -> dict:
    """T, alpha, loss terms over time, agreement with the teacher, mean KL, and what KD did to accuracy."""
    config, history = ctx.get("config", {}), ctx.get("history", {})
    agreement = _agreement(ctx["measurements"]["predictions"])
    out: dict[str, Any] = {}
    _set(out, "temperature", finite(config.get("temperature")), "temperature is not in the job config")
    _set(out, "alpha", finite(config.get("alpha")), "alpha is not in the job config")
    loss = ctx.get("kd_loss") or {}
    _set(out, "loss", loss.get("name"), "the distillation loss is not named in this run's context")
    _set(out, "loss_formula", loss.get("formula"), "the distillation loss is not named in this run's context")
    _set(out, "loss_weights", loss.get("weights"), "the distillation loss is not named in this run's context")
    if loss.get("losses"):  # a combination: each loss it sums
        out["losses"] = loss["losses"]
    _set(
        out,
        "alignment",
        loss.get("alignment"),
        "the loss reads only the logits: no layer mapping and no projections",
    )
    if loss.get("alignment"):
        out["alignment_note"] = (
            "layer_mapping: the teacher block each student block was initialised from (the structural recipe's); "
            "projections: learnt beside the student in each training run (distillation, and each pruning step's "
            f"fine-tuning), {loss.get('projection_parameters', 0):,} parameters, dropped after training: the "
            "exported student (bundle, ONNX, model.pt2) has none of them"
        )
    cost = loss.get("extra_cost") or {}
    _set(
        out,
        "extra_cost",
        cost if cost.get("measured") else None,
        cost.get("reason") or "the extra training cost was not measured in this run",
    )
    if cost.get("measured") and (ctx.get("student_source") or {}).get("kind") == "cache":
        out["extra_cost_note"] = "measured by the job that distilled the cached student (same options and seed)"
    out["loss_history"] = {
        phase: _series(history.get(phase, []), phase) for phase in ("teacher", "distill", "finetune")
    }
    out["validation"] = _validation_rows([r for r in ctx.get("validation", []) if r.get("phase") == "distill"])
    if ctx.get("teacher_logits"):  # cached once (exact) or computed every step (augmented inputs), and why
        out["teacher_logits"] = ctx["teacher_logits"]
    _set(out, "teacher_student_agreement_pct", agreement.get("agreement_pct"), "no test predictions to compare")
    out["agreement"] = agreement
    kl = ctx.get("kd_agreement") or {}
    _set(out, "mean_kl", finite(kl.get("mean_kl")), kl.get("mean_kl_reason") or "mean KL was not measured")
    out["mean_kl_note"] = (
        kl.get("mean_kl_note") or "mean KL(teacher || student) of the output distributions on the test split"
    )
    before = _stage_value(ctx, "student_structural", "val_accuracy")
    after = _stage_value(ctx, "student_kd", "val_accuracy")
    _set(out, "val_accuracy_before_kd", before, "the student was not validated right after structural compression")
    _set(out, "val_accuracy_after_kd", after, "the student was not validated right after distillation")
    gain = None if before is None or after is None else (after - before) * 100.0
    _set(out, "kd_gain_points", gain, "needs validation accuracy before and after distillation")
    out["kd_gain_points_note"] = (
        "validation accuracy after distillation minus right after structural compression: distillation mixed "
        "with plain extra training; controls.kd_gain_points (student minus the ce_only arm, on the test split) "
        "isolates what the teacher bought"
    )
    _set(out, "controls", _controls(ctx), "no control arms were asked for (option controls: ['ce_only', 'scratch'])")
    return out


def _controls(ctx: dict) -> dict | None:
    """Each control arm's test metrics with intervals, and the paired gains: kd_gain_points = student - ce_only,
    init_gain_points = ce_only - scratch (points, 95% interval, exact McNemar p-value)."""
    measured = ctx["measurements"].get("controls")
    if not measured:
        return None
    arms = {}
    for arm, record in measured["arms"].items():
        eff = record["effectiveness"]
        arms[arm] = {
            "description": record["description"],
            "kd_loss": record["kd_loss"],
            "test_samples": eff["num_samples"],
            **{key: eff[key] for key in EFFECTIVENESS_KEYS},
            **{f"{key}_ci": eff[f"{key}_ci"] for key in EFFECTIVENESS_KEYS},
            "val_accuracy_after_training": finite(record["val_accuracy_after_training"]),
            "global_sparsity": record["global_sparsity"],
            "pruning_steps": [
                _with_reasons(row, "not measured at this pruning step") for row in record["pruning_steps"]
            ],
            "loss_history": {
                "train": _series(record["history"], "controls"),
                "finetune": _series(record["finetune_history"], "controls"),
            },
            "wall_time_s": record["wall_time_s"],
            "student_minus_arm": record["student_minus_arm"],
        }
    out: dict[str, Any] = {"arms": arms}
    _set(out, "kd_gain_points", measured.get("kd_gain"), "needs the ce_only arm")
    _set(out, "init_gain_points", measured.get("init_gain"), "needs both the ce_only and the scratch arms")
    timings = ctx.get("timings_s") or {}
    out["student_training_s"] = {k: timings.get(k) for k in ("distill", "prune")}
    out["note"] = (
        "arms are measured on the same test split as the student; kd_gain_points = student minus ce_only, "
        "init_gain_points = ce_only minus scratch, in accuracy points, paired on the same examples; "
        + METHODS["difference"]
    )
    return out


# ---- pruning_analysis ------------------------------------------------------------------------------------


def _structural(ctx: dict) -> dict:
    out = dict(ctx.get("structural") or {})
    before, after = out.get("teacher_parameters"), out.get("student_parameters")
    r = ratio(after, before)
    _set(out, "parameter_reduction_pct", None if r is None else (1 - r) * 100.0, "parameter counts not given")
    return out


def _pruning_analysis(ctx: dict) -> dict:
    """What structural compression removed; target vs measured sparsity; per layer; the per-step table."""
    pruning, s = ctx.get("pruning") or {}, ctx["measurements"]["student"]
    steps = pruning.get("steps", [])
    measured = s["compression"]["sparsity"]
    out: dict[str, Any] = {
        "structural": _structural(ctx),
        "method": pruning.get("method"),
        "method_description": pruning.get("description"),
        "scope": pruning.get("scope"),
        "criterion": pruning.get("criterion"),
    }
    _set_fraction(out, "target_sparsity", pruning.get("target_sparsity"), "no pruning target in this run")
    out["achieved_sparsity"] = measured["global_sparsity"]
    out["achieved_sparsity_pct"] = measured["global_sparsity"] * 100.0
    out["achieved_sparsity_source"] = f"measured on the final student: {measured['scope']}"
    last = finite(steps[-1].get("achieved_sparsity")) if steps else None
    _set(out, "last_step_sparsity", last, "no pruning steps were run")
    out["per_layer_sparsity"] = measured["per_layer"]
    out["per_layer_sparsity_source"] = "measured on the final student"
    out["steps"] = [_with_reasons(row, "not measured at this pruning step") for row in steps]
    out["steps_note"] = "one row per pruning step: sparsity fractions, validation accuracy fraction, sizes in MB"
    out["nonzero_parameters"] = s["compression"]["parameters"]["nonzero"]
    out["sparse_flops_per_sample"] = s["complexity"]["flops"]["sparse_flops_per_sample"]
    out["dense_flops_per_sample"] = s["complexity"]["flops"]["flops_per_sample"]
    out["dense_flops_note"] = DENSE_FLOPS_NOTE
    out["model_size_mb"] = s["efficiency"]["size"]["model_size_mb"]
    out["compressed_size_mb"] = s["efficiency"]["size"]["compressed_size_mb"]
    listed = ("method", "description", "scope", "criterion", "target_sparsity", "steps", "masks_removed")
    out["method_details"] = {k: v for k, v in pruning.items() if k not in listed}
    out.update(_pruning_effect(ctx["measurements"].get("pruning_effect")))
    _set(
        out,
        "semi_structured_kernel",
        ctx["measurements"].get("semi_structured"),
        "not measured in this run",
    )
    return out


def _pruning_effect(effect: dict | None) -> dict:
    """The pruning method alone: the student before it against after it (FLOPs, weights, PyTorch latency)."""
    if not effect or "error" in effect:
        return {"pruning_effect": None, "pruning_effect_reason": (effect or {}).get("error", "not measured")}
    runtimes = {
        "pytorch": effect["latency"],
        "onnxruntime": "not measured: only the pruned student is exported to ONNX (see teacher_vs_student_"
        "comparison.flops_vs_speed for ONNX Runtime)",
    }
    return {
        "pruning_effect": {
            **{k: effect[k] for k in effect if k != "latency"},
            "latency_ms": {
                name: {key: row["median_ms"] for key, row in rows.items()}
                for name, rows in effect["latency"]["per_model"].items()
            },
            "latency_conditions": {k: effect["latency"].get(k) for k in ("batch_sizes", "runs", "torch_threads")},
            "flops_vs_speed": flops_against_speed(
                effect["flops_ratio"], effect["flops_ratio_if_zeros_skipped"], runtimes
            ),
        }
    }


# ---- efficiency_improvements -----------------------------------------------------------------------------


def _latency_rows(latency: dict) -> dict:
    out = {}
    speedups = latency.get("speedup") or {}
    for key in latency["per_model"]["teacher"]:
        t, s = latency["per_model"]["teacher"][key], latency["per_model"]["student"][key]
        row = {
            "teacher_median_ms": t["median_ms"],
            "student_median_ms": s["median_ms"],
            "teacher_p95_ms": t["p95_ms"],
            "student_p95_ms": s["p95_ms"],
            "teacher_throughput_samples_per_s": t["throughput_samples_per_s"],
            "student_throughput_samples_per_s": s["throughput_samples_per_s"],
        }
        _set(row, "speedup", speedups.get(key), "a median latency measured as 0")
        out[key] = row
    return out


def _cpu_latency(m: dict) -> dict:
    """The CPU figure beside the device's when the job ran on an accelerator (the CPU is where users deploy)."""
    lat = m.get("latency_cpu")
    if lat is None:
        return {"latency_cpu": None, "latency_cpu_reason": "the job ran on the CPU: 'latency' is the CPU figure"}
    return {
        "latency_cpu": _latency_rows(lat),
        "latency_cpu_conditions": {k: lat.get(k) for k in ("batch_sizes", "runs", "torch_threads", "device")},
    }


def _ort_latency_rows(dep: dict) -> dict:
    """ONNX Runtime latency per batch size: teacher, student, student_int8 (null with a reason when not made)."""
    lat, out = dep["latency"], {}
    for key in (f"batch_{bs}" for bs in lat["batch_sizes"]):
        row: dict[str, Any] = {}
        for name in dep["labels"]:
            cell = (lat["per_model"].get(name) or {}).get(key) or {}
            for field in ("median_ms", "p95_ms", "throughput_samples_per_s"):
                _set(row, f"{name}_{field}", cell.get(field), dep.get("quantization_reason") or "not measured")
        _set(row, "speedup", (lat.get("speedup") or {}).get(key), "a median latency measured as 0")
        _set(
            row,
            "speedup_int8",
            (lat.get("speedup_int8") or {}).get(key),
            dep.get("quantization_reason") or "a median latency measured as 0",
        )
        out[key] = row
    return out


def _runtimes(ctx: dict, pytorch_rows: dict) -> dict:
    """Latency by runtime: eager PyTorch (as in `latency`) and ONNX Runtime, with int8 sizes and accuracies."""
    m = ctx["measurements"]
    dep = m.get("deployment")
    pytorch = {"latency": pytorch_rows, "threads": m["latency"]["torch_threads"]}
    if not dep or "error" in dep:
        reason = f"the ONNX export or ONNX Runtime failed: {dep['error']}" if dep else "not measured in this run"
        return {"pytorch": pytorch, "onnxruntime": None, "onnxruntime_reason": reason}
    ort = {
        k: dep[k]
        for k in (
            "runtime",
            "onnxruntime_version",
            "provider",
            "intra_op_threads",
            "labels",
            "quantize",
            "exporter",
            "accuracy",
            "pytorch_accuracy",
            "size_mb",
            "student_accuracy_difference_points",
            "student_accuracy_matches_pytorch",
            "accuracy_drop_int8_points",
            "quantization",
            "size_note",
            "unit_note",
        )
    }
    ort["measure_s"] = dep.get("measure_s")
    ort["latency"] = _ort_latency_rows(dep)
    ort["latency_conditions"] = {k: dep["latency"][k] for k in ("batch_sizes", "runs", "warmup_runs", "schedule")}
    for key, value in dep.items():
        if key.endswith("_reason"):
            ort[key] = value
    return {"pytorch": pytorch, "onnxruntime": ort}


def _efficiency(ctx: dict) -> dict:
    """Latency, throughput, size on disk, memory and full-pass time, teacher vs student, with ratios."""
    m, cmp = ctx["measurements"], ctx["measurements"]["comparison"]
    lat = m["latency"]
    t_eff, s_eff = m["teacher"]["efficiency"], m["student"]["efficiency"]
    return {
        "runtimes": _runtimes(ctx, _latency_rows(lat)),
        "latency": _latency_rows(lat),
        "latency_conditions": {
            **{k: lat[k] for k in ("batch_sizes", "runs", "warmup_runs", "torch_threads", "schedule")},
            "device": lat.get("device", "cpu (fp32)"),
        },
        **_cpu_latency(m),
        "model_size": {
            "teacher_model_size_mb": t_eff["size"]["model_size_mb"],
            "student_model_size_mb": s_eff["size"]["model_size_mb"],
            "teacher_compressed_size_mb": t_eff["size"]["compressed_size_mb"],
            "student_compressed_size_mb": s_eff["size"]["compressed_size_mb"],
            "size_reduction_dense_pct": cmp["size_reduction_dense_pct"],
            "size_reduction_compressed_pct": cmp["size_reduction_compressed_pct"],
            "method": t_eff["size"]["method"],
        },
        "memory": {
            "teacher_param_buffer_mb": t_eff["memory"]["param_buffer_mb"],
            "student_param_buffer_mb": s_eff["memory"]["param_buffer_mb"],
            "method": "bytes of parameters and buffers",
        },
        **_inference_memory(m),
        "full_pass": {
            "teacher_s": t_eff["full_pass_s"],
            "student_s": s_eff["full_pass_s"],
            "samples": s_eff["full_pass_samples"],
            "speedup": cmp["full_pass_speedup"],
        },
        "flops": {
            "teacher_flops_per_sample": m["teacher"]["complexity"]["flops"]["flops_per_sample"],
            "student_flops_per_sample": m["student"]["complexity"]["flops"]["flops_per_sample"],
            "flops_ratio": cmp["flops_ratio"],
        },
        "unit_note": MB_NOTE,
    }


# ---- learning_outcomes -----------------------------------------------------------------------------------


def _stage_row(row: dict, measured: dict) -> dict:
    """One stage with fractions, percents and a reason for each missing figure."""
    stage = row.get("stage")
    out = {"stage": stage, "label": STAGE_LABELS.get(stage, str(stage))}
    val, test = finite(row.get("val_accuracy")), finite(row.get("test_accuracy"))
    if test is None and stage in measured:  # the test split is measured for the teacher and the final student
        test, out["test_accuracy_source"] = measured[stage], "measurements on the test split"
    _set_fraction(out, "val_accuracy", val, "this stage was not evaluated on the validation split")
    _set_fraction(
        out, "test_accuracy", test, "the test split is kept for the final measurement of teacher and final student"
    )
    if row.get("test_difference_from_previous") is not None:
        out["test_difference_from_previous"] = row["test_difference_from_previous"]
    return out


def _validation_rows(rows: list[dict]) -> list[dict]:
    """Validation rows as given, with a reason where a row has no pruning step (teacher and KD phases)."""
    out = []
    for row in rows:
        row = dict(row)
        if row.get("pruning_step") is None and "pruning_step" in row:
            row["pruning_step_reason"] = f"a {row.get('phase')}-phase validation, not a pruning step"
        out.append(row)
    return out


def _learning_outcomes(ctx: dict) -> dict:
    """Accuracy at each stage and a plain-language summary built from the measured numbers."""
    m = ctx["measurements"]
    measured = {
        "teacher": m["teacher"]["effectiveness"]["accuracy"],
        "final": m["student"]["effectiveness"]["accuracy"],
    }
    sentences = summary_sentences(ctx)
    return {
        "accuracy_by_stage": [_stage_row(row, measured) for row in ctx.get("stages", [])],
        "validation_history": _validation_rows(ctx.get("validation", [])),
        "summary": " ".join(sentences),
        "summary_sentences": sentences,
    }


# ---- latency_target --------------------------------------------------------------------------------------

NO_TARGET = "no latency target was asked for (options target_latency_ms or target_speedup)"


def _candidate_row(row: dict, teacher_flops: float | None) -> dict:
    """One candidate: its amount, FLOPs, parameters and the latencies measured in the same rounds as the teacher."""
    return {
        "amount": row["amount"],
        "flops_per_sample": row.get("flops_per_sample"),
        "flops_ratio": ratio(teacher_flops, row.get("flops_per_sample")),
        "parameters": row.get("parameters"),
        "latency_ms": row["student_ms"],
        "latency_ms_ci": row.get("student_ms_ci"),
        "latency_p95_ms": row.get("student_p95_ms"),
        "teacher_latency_ms": row["teacher_ms"],
        "teacher_latency_ms_ci": row.get("teacher_ms_ci"),
        "speedup": row["speedup"],
        "speedup_ci": row.get("speedup_ci"),
        "meets_target": row["meets_target"],
        "measure_s": row.get("measure_s"),
    }


def _latency_target(ctx: dict) -> dict:
    """What was asked, every candidate measured (untrained), the amount chosen, what the trained student achieved
    in the same runtime at the same batch size, and whether it met the target."""
    search = ctx.get("latency_target") or {}
    if not search:
        out: dict[str, Any] = {"candidates": []}
        for key in ("asked", "chosen", "achieved", "met"):
            _set(out, key, None, NO_TARGET)
        return out
    achieved = ctx["measurements"].get("latency_target") or {}
    asked = search["asked"]
    out = {
        "asked": asked,
        "amount": search["amount"],
        "candidates": [_candidate_row(row, search.get("teacher_flops_per_sample")) for row in search["candidates"]],
        "chosen": search["chosen"],
        "chosen_note": f"the least {search['amount']} measured to meet the target; it replaced the job's "
        f"{search['amount']} (metadata.config.resolved.{search['amount']})",
    }
    _set(
        out,
        "achieved",
        {
            "latency_ms": achieved["student_ms"],
            "latency_ms_ci": achieved["student_ms_ci"],
            "latency_p95_ms": achieved["student_p95_ms"],
            "teacher_latency_ms": achieved["teacher_ms"],
            "teacher_latency_ms_ci": achieved["teacher_ms_ci"],
            "speedup": achieved["speedup"],
            "speedup_ci": achieved["speedup_ci"],
            "runtime": asked["runtime"],
            "batch_size": asked["batch_size"],
        }
        if achieved
        else None,
        "the trained student was not timed",
    )
    _set(out, "met", achieved.get("met"), "the trained student was not timed")
    out["met_note"] = (
        "met: the trained student's median latency (or the teacher's median over the student's, timed in the same "
        "rounds) meets what was asked; timings are noisy, so a target near the achieved figure may flip between runs "
        "(see the intervals)"
    )
    out["search"] = {
        "stopped": search["stopped"],
        "fastest": search["fastest"],
        "non_monotone": search["non_monotone"],
        "non_monotone_note": "pairs of candidates where the larger amount measured slower: timing noise",
        "grid": search["grid"],
        "teacher_flops_per_sample": search.get("teacher_flops_per_sample"),
        "teacher_parameters": search.get("teacher_parameters"),
    }
    out["conditions"] = search["conditions"]
    out["note"] = (
        "candidates are structural students of an untrained build of the teacher's architecture, timed before any "
        "training: dense latency does not depend on the weights' values; achieved is the trained student, timed "
        "the same way against the trained teacher"
    )
    return out


# ---- metadata and assembly -------------------------------------------------------------------------------


def _inference_memory(m: dict) -> dict:
    """inference_memory: per runtime, model and batch size, the peak RSS of a fresh process that loaded the saved
    model and ran the batch, and its increase over that process before loading; null with the reason otherwise."""
    memory = m.get("inference_memory")
    if not memory or "error" in memory:
        reason = (memory or {}).get("error") or "inference memory was not measured in this run"
        return {"inference_memory": None, "inference_memory_reason": reason}
    return {"inference_memory": {**memory, "unit_note": MB_NOTE}}


def _metadata(ctx: dict) -> dict:
    params = {who: ctx["measurements"][who]["compression"]["parameters"] for who in ("teacher", "student")}
    return {
        "job_id": ctx.get("job_id"),
        "model": {"id": ctx.get("model_name"), "display_name": ctx.get("display_name"), "family": ctx.get("family")},
        "dataset": ctx.get("dataset"),
        "config": ctx.get("config"),
        "teacher_source": ctx.get("teacher_source"),
        "student_source": ctx.get("student_source"),
        "environment": ctx.get("environment"),
        "timings_s": ctx.get("timings_s"),
        "trainable_parameters": {
            **{who: params[who].get("trainable") for who in params},
            "note": "parameters with requires_grad when measured: a fact about the training run (the teacher is "
            "frozen after its training, so 0), not a property of the deployed model",
        },
        "generated_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "report_version": REPORT_VERSION,
        "conventions": CONVENTIONS,
    }


def build_report(ctx: dict) -> dict:
    """The report: the sections (keys.SECTIONS) plus metadata, strict-JSON-safe, every null beside a reason."""
    report = {
        "student_model_performance": _student_performance(ctx),
        "teacher_vs_student_comparison": _comparison(ctx),
        "knowledge_distillation_analysis": _kd_analysis(ctx),
        "pruning_analysis": _pruning_analysis(ctx),
        "efficiency_improvements": _efficiency(ctx),
        "learning_outcomes": _learning_outcomes(ctx),
        "latency_target": _latency_target(ctx),
        "metadata": _metadata(ctx),
    }
    report["teacher_vs_student_comparison"]["table"] = _table(report)
    return ensure_reasons(sanitize_json(report))


def _table(report: dict) -> list[dict]:
    """Every before/after figure as a row {metric, unit, teacher, student} (the CSV's rows), for quick display."""
    return [
        {"metric": f"{group}.{field}", "unit": unit, "teacher": t, "student": s}
        for group, field, unit, t, s in pair_rows(report)
    ]


def report_to_json(report: dict) -> str:
    """The report as strict JSON text (no NaN or Infinity)."""
    return to_strict_json(report)


__all__ = ["SECTIONS", "build_report", "report_to_json", "sanitize_json"]

"""Plain-language summary sentences, each a template filled with numbers measured in this run."""

from __future__ import annotations

from collections.abc import Callable

from .common import finite
from .realised import NO_SPEEDUP_BELOW, bought_nothing, flops_against_speed, speed_blocks

SAME_BAND = 0.02  # ratios within 2% of 1 are reported as "about the same"


def _num(x: float) -> str:
    """A readable number: 1,234 / 12.35 / 0.00423."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"


def _change(pct: float, noun: str = "") -> str:
    """'12.3% less' / '4.0% more' for a reduction percentage (negative = it grew)."""
    return f"{abs(pct):.1f}% {'less' if pct >= 0 else 'more'}{noun}"


def _times(ratio: float, better: str, worse: str) -> str:
    """'2.10x faster' / '1.30x slower' / 'about the same' from a teacher/student ratio."""
    if abs(ratio - 1.0) < SAME_BAND:
        return "about the same"
    return f"{ratio:.2f}x {better}" if ratio > 1 else f"{1 / ratio:.2f}x {worse}"


def _noise(low: float, high: float, p_value: float | None) -> str:
    """'(95% CI 0.4 to 3.1 points, McNemar p = 0.01)' and whether the interval spans 0."""
    p = "" if p_value is None else f", McNemar p = {p_value:.2g}"
    return f"95% CI {low:+.1f} to {high:+.1f} points{p}"


def _accuracy(ctx: dict) -> str:
    m = ctx["measurements"]
    t, s = m["teacher"]["effectiveness"]["accuracy"], m["student"]["effectiveness"]["accuracy"]
    drop = (t - s) * 100.0
    c = m["comparison"]
    low, high = c["accuracy_drop_ci_points"]
    noise = _noise(low, high, c.get("accuracy_drop_p_value"))
    diff = (s - t) * 100.0 + 0.0  # + 0.0: no "-0.0"
    if c.get("accuracy_drop_within_noise"):
        change = f"a change of {diff:+.1f} percentage points, within noise (drop {noise})"
    elif drop > 0:
        change = f"a drop of {drop:.1f} percentage points ({noise}), beyond the noise of this test split"
    else:
        change = f"a gain of {-drop:.1f} percentage points (drop {noise}), beyond the noise"
    return (
        f"On {m['student']['effectiveness']['num_samples']} test samples the teacher ({ctx['display_name']}) "
        f"scored {t:.1%} accuracy and the student {s:.1%}: {change}."
    )


def _parameters(ctx: dict) -> str:
    m = ctx["measurements"]
    t, s = m["teacher"]["compression"]["parameters"], m["student"]["compression"]["parameters"]
    ratio = m["comparison"]["compression_ratio"]
    return (
        f"The student has {s['total']:,} parameters ({s['nonzero']:,} nonzero) against the teacher's "
        f"{t['total']:,}: a compression ratio of {ratio:.2f}x by nonzero parameters."
    )


def _size(ctx: dict) -> str:
    m = ctx["measurements"]
    t, s, c = m["teacher"]["efficiency"]["size"], m["student"]["efficiency"]["size"], m["comparison"]
    return (
        f"Its weights take {_num(s['model_size_mb'])} MB dense ({_change(c['size_reduction_dense_pct'])} than "
        f"the teacher's {_num(t['model_size_mb'])} MB) and {_num(s['compressed_size_mb'])} MB deflated "
        f"({_change(c['size_reduction_compressed_pct'])} than {_num(t['compressed_size_mb'])} MB)."
    )


def _latency(ctx: dict) -> str:
    lat = ctx["measurements"]["latency"]
    parts = []
    for key, speedup in (lat.get("speedup") or {}).items():
        t, s = lat["per_model"]["teacher"][key]["median_ms"], lat["per_model"]["student"][key]["median_ms"]
        parts.append(
            f"at {key.replace('_', ' ')} the student's median latency was {_num(s)} ms against "
            f"{_num(t)} ms ({_times(speedup, 'faster', 'slower')})"
        )
    return (f"Over {lat['runs']} interleaved runs, " + "; ".join(parts) + ".") if parts else ""


def _flops(ctx: dict) -> str:
    m = ctx["measurements"]
    t, s = m["teacher"]["complexity"]["flops"], m["student"]["complexity"]["flops"]
    sparsity = m["student"]["compression"]["sparsity"]["global_sparsity"]
    return (
        f"Per sample the student needs {_num(s['flops_per_sample'] / 1e6)} MFLOPs against "
        f"{_num(t['flops_per_sample'] / 1e6)} ({_times(m['comparison']['flops_ratio'], 'fewer', 'more')}); "
        f"its {sparsity:.1%} weight sparsity does not lower these dense FLOPs, but skipping zero weights would "
        f"save {_num(s['sparse_flops_per_sample'] / 1e6)} MFLOPs per sample."
    )


RUNTIME_NAMES = {"pytorch": "PyTorch", "pytorch_cpu": "PyTorch on the CPU", "onnxruntime": "ONNX Runtime"}


def _speeds(rows: dict) -> str:
    """'1.52x at batch 1 and 2.10x at batch 32 (realised 40% and 55% of the FLOPs ratio)'."""
    keys = list(rows)
    speeds = " and ".join(f"{rows[k]['speedup']:.2f}x at {k.replace('_', ' ')}" for k in keys)
    realised = " and ".join(f"{rows[k]['realised_fraction']:.0%}" for k in keys)
    return f"{speeds} (realising {realised} of the FLOPs ratio)"


def _flops_vs_speed(ctx: dict) -> str:
    m = ctx["measurements"]
    c = m["comparison"]
    block = flops_against_speed(c["flops_ratio"], c["flops_ratio_if_zeros_skipped"], speed_blocks(m))
    parts = [
        f"{RUNTIME_NAMES.get(name, name)} {_speeds(rows)}"
        for name, rows in block["runtimes"].items()
        if isinstance(rows, dict) and rows
    ]
    text = (
        f"The student needs {c['flops_ratio']:.2f}x fewer dense FLOPs than the teacher; measured speedup: "
        + "; ".join(parts)
        + "."
    )
    idle = bought_nothing(block)
    if idle:
        names = " and ".join(RUNTIME_NAMES.get(n, n) for n in idle)
        text += f" In {names} those fewer FLOPs bought no measured speedup (below {NO_SPEEDUP_BELOW:g}x)."
    return text


def _pruning_speed(ctx: dict) -> str:
    effect = ctx["measurements"].get("pruning_effect") or {}
    if not effect or "error" in effect:
        return ""
    method = (ctx.get("pruning") or {}).get("method", "the pruning method")
    speedups = effect["latency"]["speedup"]
    keys = list(speedups)
    speeds = " and ".join(f"{speedups[k]:.2f}x at {k.replace('_', ' ')}" for k in keys)
    skipped = f"{effect['flops_ratio_if_zeros_skipped']:.2f}x fewer if zero weights were skipped"
    dense = (
        f"left dense FLOPs as they were ({effect['flops_ratio']:.2f}x; {skipped})"
        if abs(effect["flops_ratio"] - 1.0) < SAME_BAND
        else f"cut dense FLOPs {effect['flops_ratio']:.2f}x ({skipped})"
    )
    text = (
        f"The pruning method '{method}' alone {dense} and cut nonzero weights {effect['nonzero_parameter_ratio']:.2f}x; in PyTorch "
        f"the pruned student ran {speeds} faster than before pruning (ratios of interleaved medians)"
    )
    if all(finite(v) is not None and v < NO_SPEEDUP_BELOW for v in speedups.values()):
        return text + f": it bought no measured speedup (below {NO_SPEEDUP_BELOW:g}x)."
    return text + "."


def _sparse_kernel(ctx: dict) -> str:
    block = ctx["measurements"].get("semi_structured") or {}
    layers = block.get("eligible_layers") or []
    if not layers:
        return ""
    if block.get("speedup") is None:
        return f"{len(layers)} Linear layers have the 2:4 pattern, but no 2:4 speedup was measured: {block['speedup_reason']}."
    speeds = " and ".join(f"{v:.2f}x at {k.replace('_', ' ')}" for k, v in block["speedup"].items())
    return f"Run by the 2:4 semi-structured sparse kernel ({len(layers)} Linear layers, fp16), the student ran {speeds} faster than dense."


def _stage(ctx: dict, stage: str) -> float | None:
    rows = [r for r in ctx.get("stages", []) if r.get("stage") == stage]
    return finite(rows[0].get("val_accuracy")) if rows else None


def _distillation(ctx: dict) -> str:
    before, after = _stage(ctx, "student_structural"), _stage(ctx, "student_kd")
    config = ctx.get("config", {})
    if before is None or after is None:
        return ""
    loss = (ctx.get("kd_loss") or {}).get("name", "logits")
    weights = (ctx.get("kd_loss") or {}).get("weights") or {}
    settings = f"T = {config.get('temperature')}, alpha = {config.get('alpha')}"
    if loss == "logits":
        how = f"Distillation ({settings})"
    elif "logits" in weights:  # a combination with the logits loss
        how = f"Distillation with {loss} ({settings})"
    else:
        how = f"Training with the '{loss}' loss"
    text = (
        f"{how} took the student's validation accuracy from {before:.1%} right after structural compression "
        f"to {after:.1%}"
    )
    rows = [r for r in ctx.get("stages", []) if r.get("stage") == "student_kd"]
    diff = rows[0].get("test_difference_from_previous") if rows else None
    if diff:
        low, high = diff["ci_points"]
        verdict = "within noise" if diff["within_noise"] else "beyond the noise"
        text += f"; on the test split it changed accuracy by {diff['points']:+.1f} points ({_noise(low, high, diff['p_value'])}, {verdict})"
    if (ctx["measurements"].get("controls") or {}).get("kd_gain"):
        return text + "."
    return text + (
        ". This mixes what the teacher taught with plain extra training; the ce_only control arm (option "
        "controls) separates the two."
    )


def _controls(ctx: dict) -> str:
    controls = ctx["measurements"].get("controls") or {}
    arms = controls.get("arms") or {}
    if not arms:
        return ""
    parts = [f"{arm} {record['effectiveness']['accuracy']:.1%}" for arm, record in arms.items()]
    text = "Control arms without the teacher, measured like the student: " + ", ".join(parts)
    for key, what in (("kd_gain", "distillation's gain over ce_only"), ("init_gain", "the gain of starting from the "
                      "teacher's weights over scratch")):  # fmt: skip
        gain = controls.get(key)
        if gain:
            low, high = gain["ci_points"]
            verdict = "within noise" if gain["within_noise"] else "beyond the noise"
            text += f"; {what}: {gain['points']:+.1f} points ({_noise(low, high, gain['p_value'])}, {verdict})"
    return text + "."


def _agreement(ctx: dict) -> str:
    pred = ctx["measurements"]["predictions"]
    n = len(pred.get("labels", []))
    if not n:
        return ""
    same = sum(a == b for a, b in zip(pred["teacher"], pred["student"], strict=True))
    return f"Teacher and student gave the same prediction on {same / n:.1%} of the test samples."


def _pruning(ctx: dict) -> str:
    pruning = ctx.get("pruning") or {}
    steps = pruning.get("steps") or []
    if not steps:
        return ""
    first, last = steps[0], steps[-1]
    target = finite(pruning.get("target_sparsity"))
    target_text = f" (target {target:.1%})" if target is not None else ""
    return (
        f"Pruning in {len(steps)} step{'s' if len(steps) != 1 else ''} reached "
        f"{last['achieved_sparsity']:.1%} sparsity{target_text}; validation accuracy was "
        f"{first['val_accuracy']:.1%} after the first step and {last['val_accuracy']:.1%} after the last."
    )


def _latency_target(ctx: dict) -> str:
    search, achieved = ctx.get("latency_target") or {}, ctx["measurements"].get("latency_target")
    if not search or not achieved:
        return ""
    asked = search["asked"]
    what = (
        f"a median latency of at most {asked['target_latency_ms']:g} ms"
        if asked.get("target_latency_ms") is not None
        else f"a {asked['target_speedup']:g}x speedup"
    )
    low, high = achieved["speedup_ci"]
    return (
        f"Asked for {what} in {asked['runtime']} at batch size {asked['batch_size']}, the search timed "
        f"{len(search['candidates'])} untrained candidates and chose {search['amount']} {search['chosen']:g}; the "
        f"trained student ran in {achieved['student_ms']:.3g} ms, {achieved['speedup']:.2f}x the teacher's speed "
        f"(95% CI {low:.2f} to {high:.2f}): the target was {'met' if achieved['met'] else 'not met'}."
    )


SENTENCES: tuple[Callable[[dict], str], ...] = (
    _accuracy,
    _parameters,
    _size,
    _latency,
    _flops,
    _flops_vs_speed,
    _distillation,
    _controls,
    _agreement,
    _pruning,
    _latency_target,
    _pruning_speed,
    _sparse_kernel,
)


def summary_sentences(ctx: dict) -> list[str]:
    """The sentences whose numbers exist in this run; a sentence missing a number is left out, not guessed."""
    out = []
    for sentence in SENTENCES:
        try:
            text = sentence(ctx)
        except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
            text = ""  # a figure this sentence needs is missing or null
        if text:
            out.append(text)
    return out

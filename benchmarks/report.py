"""BENCHMARKS.md from the measured results; targets met or missed are said plainly."""

from __future__ import annotations

import re

from benchmarks.compression import TARGETS


def _f(value, fmt: str = "{:,.2f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def _model_rows(rows: list[dict]) -> list[str]:
    out = [
        "| model | teacher acc | student acc | drop (points) | F1 teacher / student | params teacher / student nonzero "
        "| size MB dense (teacher / student) | size MB deflated | FLOPs/sample teacher / student | FLOPs ratio "
        "| latency b1 ms (t / s) | speedup b1 | latency b32 ms (t / s) | speedup b32 | realised of FLOPs ratio (b32) "
        "| wall s cold | wall s cached |",
        "|" + "---|" * 17,
    ]
    for r in rows:
        c, w = r["cold"], r["cached"]
        b1, b32 = c["latency_ms"].get("batch_1", (None, None)), c["latency_ms"].get("batch_32", (None, None))
        s1, s32 = c["speedup"].get("batch_1"), c["speedup"].get("batch_32")
        realised = s32 / c["flops_ratio"] if s32 and c["flops_ratio"] else None
        out.append(
            f"| {r['model']} | {_f(c['accuracy'][0], '{:.4f}')} | {_f(c['accuracy'][1], '{:.4f}')} "
            f"| {_f(c['accuracy_drop_points'])} | {_f(c['f1_macro'][0], '{:.4f}')} / {_f(c['f1_macro'][1], '{:.4f}')} "
            f"| {_f(c['parameters'][0], '{:,}')} / {_f(c['parameters'][1], '{:,}')} "
            f"| {_f(c['size_mb'][0])} / {_f(c['size_mb'][1])} | {_f(c['compressed_mb'][0])} / {_f(c['compressed_mb'][1])} "
            f"| {_f(c['flops'][0], '{:,.0f}')} / {_f(c['flops'][1], '{:,.0f}')} | {_f(c['flops_ratio'])} "
            f"| {_f(b1[0])} / {_f(b1[1])} | {_f(s1)} | {_f(b32[0])} / {_f(b32[1])} | {_f(s32)} | {_f(realised)} "
            f"| {_f(c['wall_s'], '{:.0f}')} | {_f(w['wall_s'], '{:.0f}')} |"
        )
    return out


def _target_rows(rows: list[dict], loop: dict) -> list[str]:
    out = [
        "| model | dense size reduction ≥ 50% | accuracy drop ≤ 1.5 points | batch-1 speedup ≥ 1.5x "
        "| teacher test accuracy ≥ 95% | job ≤ 180 s cold | job ≤ 90 s with cached teacher |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c, w = r["cold"], r["cached"]
        size, drop, sp = c["size_reduction_dense_pct"], c["accuracy_drop_points"], c["speedup"].get("batch_1")
        acc = c["accuracy"][0]
        out.append(
            f"| {r['model']} | {_verdict(None if size is None else size >= TARGETS['size_reduction_pct_min'])}"
            f" ({_f(size, '{:.1f}')}%) | {_verdict(None if drop is None else drop <= TARGETS['accuracy_drop_points_max'])}"
            f" ({_f(drop)}) | {_verdict(None if sp is None else sp >= TARGETS['speedup_batch_1_min'])}"
            f" ({_f(sp)}x) | {_verdict(acc >= 0.95)} ({acc:.2%}) | {_verdict(c['wall_s'] <= 180)}"
            f" ({c['wall_s']:.0f} s) | {_verdict(w['wall_s'] <= 90)} ({w['wall_s']:.0f} s) |"
        )
    ratio = loop["framework_over_bare"]
    out.append("")
    out.append(
        f"Training loop: the framework runs at {ratio:.1%} of the bare PyTorch KD loop's samples/s "
        f"({loop['framework_samples_per_s']:.0f} vs {loop['bare_samples_per_s']:.0f}, median of "
        f"{loop['rounds']} interleaved rounds, {loop['model']}): target ≥ 90% {_verdict(ratio >= 0.9)}."
    )
    return out


def _server_rows(srv: dict | None) -> list[str]:
    if not srv:
        return ["Not run (--skip-server)."]
    out = [
        "| request | idle p50 ms | idle p99 ms | training p50 ms | training p99 ms | target p99 < 100 ms |",
        "|---|---|---|---|---|---|",
    ]
    for key in ("GET /test", "GET /jobs/<id>"):
        i, t = srv["idle"][key], srv["training"][key]
        out.append(
            f"| `{key}` | {i['p50_ms']:.1f} | {i['p99_ms']:.1f} | {t['p50_ms']:.1f} | {t['p99_ms']:.1f} "
            f"| {_verdict(t['p99_ms'] < srv['target_p99_ms_while_training'])} |"
        )
    out += [
        "",
        f"Socket.IO `training_progress` events while training: {srv['progress_events_per_s']:.1f} per second "
        f"(longest gap {_f(srv['progress_max_gap_s'])} s; contract: at least every 2 s, at most ~10/s).",
        f"Cancel request to `cancelled` state: {srv['cancel_to_cancelled_s']:.2f} s.",
    ]
    return out


def _load(results: dict) -> str:
    load = results.get("load_average_at_start")
    return "" if load is None else f", load average {load:.1f} at its start"


def _on(item: dict) -> str:
    return f" on {item['run_machine']}" if item.get("run_machine") else ""


def _earlier(results: dict) -> str:
    """Which figures come from an earlier run (`python -m benchmarks --merge` re-measures only some models)."""
    earlier = [
        f"{r['model']} (run started {r['run_started_at']}{_on(r)})"
        for r in results["compression"]
        if r.get("run_started_at", results["started_at"]) != results["started_at"]
    ]
    parts = [f" Rows of earlier runs, kept by `--merge`: {', '.join(earlier)}." if earlier else ""]
    for key, title in (("training_loop", "training loop"), ("server", "server responsiveness")):
        when = (results.get(key) or {}).get("run_started_at")
        if when and when != results["started_at"]:
            parts.append(f" The {title} figures come from the run started {when}{_on(results[key])}.")
    return "".join(parts)


def render(results: dict) -> str:
    """The whole BENCHMARKS.md."""
    env = results["environment"]
    lines = [
        "# Benchmarks",
        "",
        "Measured by `python -m benchmarks` (raw figures in `benchmarks/results.json`). Every number below comes "
        "from the run named here; nothing is estimated. Quick preset, built-in datasets, default options, seed 0.",
        "",
        f"Machine: {env['cpu_model']}, {env['cpu_count']} cores, torch {env['torch_version']} "
        f"({env['torch_threads']} threads), {env['platform']}. Run started {results['started_at']}, "
        f"took {results['total_s']:.0f} s{_load(results)}.{_earlier(results)}",
        "",
        "Latencies are medians of at least 30 interleaved runs (teacher and student alternating); speedups are "
        "ratios from the same run. Sizes: dense = safetensors bytes of the weights; deflated = the same bytes "
        "through zlib, which is what 30% unstructured sparsity buys on disk. Dense FLOPs do not fall with "
        "unstructured sparsity; the FLOPs ratio comes from the structural student.",
        "",
        "## Compression results",
        "",
    ]
    lines += _model_rows(results["compression"])
    lines += ["", "## Targets", ""]
    lines += _target_rows(results["compression"], results["training_loop"])
    lines += ["", "## Server responsiveness", ""]
    lines += _server_rows(results.get("server"))
    return "\n".join(lines) + "\n"


def splice_marked(text: str, section: str, begin: str, end: str) -> str:
    """`text` (BENCHMARKS.md) with the part between the markers `begin` and `end` replaced by `section` (which
    carries both markers), or `section` appended when the markers are absent."""
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    return pattern.sub(lambda _m: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"

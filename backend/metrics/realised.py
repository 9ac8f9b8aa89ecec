"""FLOPs against milliseconds: how much of a FLOPs cut a runtime turned into measured speed.

`realised_fraction` = measured speedup / FLOPs ratio (both slow / fast): 1 means every removed FLOP became time
saved, 0.5 half of it, below 1 / flops_ratio the model got slower. A speedup below NO_SPEEDUP_BELOW is called "no
measured speedup": a method that cut FLOPs or weights and bought less than that bought nothing a user would see.
"""

from __future__ import annotations

from typing import Any

from .common import finite, ratio

NO_SPEEDUP_BELOW = 1.1


def _scaled(interval: Any, by: float | None) -> list[float] | None:
    if not interval or by is None or by == 0 or any(finite(v) is None for v in interval):
        return None
    return [interval[0] / by, interval[1] / by]


def runtime_rows(latency: dict | None, flops_ratio: float | None, flops_ratio_sparse: float | None) -> dict:
    """Per batch key of one runtime's latency block: speedup (with its interval), FLOPs ratio, realised fraction."""
    speedups, intervals = (latency or {}).get("speedup") or {}, (latency or {}).get("speedup_ci") or {}
    out = {}
    for key, speedup in speedups.items():
        row: dict[str, Any] = {
            "flops_ratio": flops_ratio,
            "speedup": speedup,
            "speedup_ci": intervals.get(key),
            "realised_fraction": ratio(speedup, flops_ratio),
            "realised_fraction_ci": _scaled(intervals.get(key), flops_ratio),
            "realised_fraction_if_zeros_skipped": ratio(speedup, flops_ratio_sparse),
            "bought_speedup": None if finite(speedup) is None else speedup >= NO_SPEEDUP_BELOW,
        }
        for name, value in list(row.items()):
            if value is None:
                row[f"{name}_reason"] = (
                    "the latency measurement kept no per-run times"
                    if name.endswith("_ci")
                    else "undefined: a figure it needs was not measured or measured as 0"
                )
        out[key] = row
    return out


def flops_against_speed(
    flops_ratio: float | None, flops_ratio_sparse: float | None, runtimes: dict[str, dict | str]
) -> dict:
    """The FLOPs ratio beside the measured speedups of every runtime (a latency block, or the reason it has none)."""
    out: dict[str, Any] = {
        "flops_ratio": flops_ratio,
        "flops_ratio_if_zeros_skipped": flops_ratio_sparse,
        "no_speedup_below": NO_SPEEDUP_BELOW,
        "runtimes": {},
        "note": "ratios are slow / fast (above 1: fewer FLOPs, faster); realised_fraction = speedup / flops_ratio "
        "(dense FLOPs, FlopCounterMode); realised_fraction_if_zeros_skipped divides by the ratio of the FLOPs "
        "left if every zero weight were skipped; bought_speedup: speedup at least no_speedup_below",
    }
    for name, latency in runtimes.items():
        if isinstance(latency, str):
            out["runtimes"][name], out["runtimes"][f"{name}_reason"] = None, latency
        else:
            out["runtimes"][name] = runtime_rows(latency, flops_ratio, flops_ratio_sparse)
    return out


def bought_nothing(block: dict) -> list[str]:
    """The runtimes where every measured batch size sped up less than NO_SPEEDUP_BELOW."""
    names = []
    for name, rows in (block.get("runtimes") or {}).items():
        if isinstance(rows, dict) and rows and all(r.get("bought_speedup") is False for r in rows.values()):
            names.append(name)
    return names


def speed_blocks(measurements: dict) -> dict[str, dict | str]:
    """Each runtime's teacher-vs-student latency block in a job's measurements, or the reason it has none."""
    out: dict[str, dict | str] = {"pytorch": measurements["latency"]}
    if measurements.get("latency_cpu"):
        out["pytorch_cpu"] = measurements["latency_cpu"]
    dep = measurements.get("deployment")
    if not dep:
        out["onnxruntime"] = "not measured in this run"
    elif "error" in dep:
        out["onnxruntime"] = f"the ONNX export or ONNX Runtime failed: {dep['error']}"
    else:
        out["onnxruntime"] = dep["latency"]
    return out

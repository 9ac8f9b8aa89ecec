"""A latency target: the least compression whose student meets a latency (or a speedup over the teacher) in the
runtime the user deploys to, found before any training.

Candidates are untrained. The dense latency of a network does not depend on the values of its weights (the same
shapes run the same kernels on the same number of multiply-adds), so each candidate is the structural student of
an untrained copy of the teacher's architecture, timed as it is. The trained student is timed again at the end
(`achieved`), the same way, and the report says whether it met the target.

`search_amount` is pure: it takes `measure(amount) -> (student_ms, teacher_ms[, details])` and bisects over a grid
of amounts, so any compression amount can be searched (the structural ratio today; a structured sparsity would
plug in the same way). `RuntimeTimer` and `CandidateTimer` do the measuring: ONNX Runtime (each model exported to
ONNX in a temporary folder and run in an InferenceSession) or eager PyTorch, the teacher timed in the same
alternating rounds as each candidate so that the speedup is a ratio of medians from one run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backend.models.onnx_export import OrtModel, export_onnx, ort_predictor

from .common import Batch, measuring
from .complexity import count_flops
from .compression import count_parameters
from .efficiency import MIN_LATENCY_RUNS, _interleaved_times
from .stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE, paired_medians

RESOLUTION = 0.025  # the grid the amount is searched on
MAX_CANDIDATES = 8  # at most this many candidates are built and timed (bisection over 0..0.95 needs 7)
WARMUP_RUNS = 5


class LatencyTargetUnreachable(ValueError):
    """No candidate within the limits met the target (a ValueError: the request is the user's to change)."""


def describe_target(target_latency_ms: float | None, target_speedup: float | None) -> str:
    """'a median latency of at most 2 ms' / 'a speedup of at least 2.5x over the teacher'."""
    if target_latency_ms is not None:
        return f"a median latency of at most {target_latency_ms:g} ms"
    return f"a speedup of at least {target_speedup:g}x over the teacher"


def meets(
    student_ms: float, teacher_ms: float, *, target_latency_ms: float | None, target_speedup: float | None
) -> bool:
    """Whether one measurement (medians) meets the target."""
    if target_latency_ms is not None:
        return student_ms <= target_latency_ms
    return student_ms > 0 and teacher_ms / student_ms >= target_speedup


def _grid(low: float, high: float, resolution: float) -> list[float]:
    """low, low + resolution, ..., high (high always included)."""
    steps = max(1, int(round((high - low) / resolution)))
    return [round(low + (high - low) * k / steps, 6) for k in range(steps + 1)]


def search_amount(
    measure: Callable[[float], tuple],
    *,
    target_latency_ms: float | None = None,
    target_speedup: float | None = None,
    low: float = 0.0,
    high: float = 0.95,
    resolution: float = RESOLUTION,
    max_candidates: int = MAX_CANDIDATES,
    check_stop: Callable[[], None] | None = None,
) -> dict:
    """The least amount in [low, high] whose candidate meets the target, by bisection on a grid of `resolution`.

    The most compressed candidate (`high`) is measured first: when even it misses the target, the search stops
    there (`met` False, `chosen` None), so an unreachable target costs one candidate. Otherwise the bracket
    (largest amount known to miss, least amount known to meet) is halved until it spans one grid step or
    `max_candidates` were measured; `chosen` is the least amount known to meet. Latency is assumed to fall as the
    amount grows; timings are noisy, so `non_monotone` lists measured pairs where a larger amount ran slower.
    """
    if (target_latency_ms is None) == (target_speedup is None):
        raise ValueError("give exactly one of target_latency_ms and target_speedup")
    if max_candidates < 1:
        raise ValueError("max_candidates must be at least 1")
    grid = _grid(low, high, resolution)
    candidates: list[dict] = []

    def run(index: int) -> bool:
        if check_stop is not None:
            check_stop()
        student_ms, teacher_ms, *rest = measure(grid[index])
        ok = meets(student_ms, teacher_ms, target_latency_ms=target_latency_ms, target_speedup=target_speedup)
        row = {
            "amount": grid[index],
            "student_ms": student_ms,
            "teacher_ms": teacher_ms,
            "speedup": teacher_ms / student_ms if student_ms > 0 else None,
            "meets_target": ok,
        }
        candidates.append({**row, **(rest[0] if rest else {})})
        return ok

    lo, hi = -1, len(grid) - 1  # grid[lo] is known to miss (-1: nothing below `low`), grid[hi] to meet
    stopped = "bracket closed: the next smaller amount on the grid missed the target (or none is smaller)"
    if not run(hi):
        stopped = "unreachable: the most compressed candidate missed the target"
    else:
        while hi - lo > 1:
            if len(candidates) >= max_candidates:
                stopped = f"max_candidates ({max_candidates}) reached; the least amount measured to meet is chosen"
                break
            mid = (lo + hi) // 2 if lo >= 0 else hi // 2
            if run(mid):
                hi = mid
            else:
                lo = mid
    met = candidates[0]["meets_target"]
    fastest = min(candidates, key=lambda c: c["student_ms"])
    return {
        "candidates": candidates,
        "chosen": grid[hi] if met else None,
        "met": met,
        "fastest": {"amount": fastest["amount"], "student_ms": fastest["student_ms"], "speedup": fastest["speedup"]},
        "stopped": stopped,
        "non_monotone": _non_monotone(candidates),
        "grid": {"low": low, "high": high, "resolution": resolution, "max_candidates": max_candidates},
    }


def _non_monotone(candidates: list[dict]) -> list[dict]:
    """Pairs of candidates where the larger amount measured slower than the smaller one (timing noise)."""
    ordered = sorted(candidates, key=lambda c: c["amount"])
    return [
        {"smaller_amount": a["amount"], "larger_amount": b["amount"], "student_ms": [a["student_ms"], b["student_ms"]]}
        for i, a in enumerate(ordered)
        for b in ordered[i + 1 :]
        if b["student_ms"] > a["student_ms"]
    ]


class RuntimeTimer:
    """Times a teacher and a student in one runtime at one batch size: alternating rounds (order flipped every
    round) after warm-up; medians with bootstrap intervals, and the speedup as a ratio of medians.

    `runtime` "onnxruntime": each model is exported to ONNX under `work_dir` and run in an InferenceSession
    (CPUExecutionProvider, the PyTorch thread count); "pytorch": eager, eval mode, inference_mode.
    """

    def __init__(
        self,
        runtime: str,
        model_id: str,
        adapter: Any,
        example_batch: Callable[[int], Batch],
        *,
        batch_size: int,
        runs: int,
        work_dir: Path,
    ) -> None:
        if runs < MIN_LATENCY_RUNS:
            raise ValueError(f"runs must be at least {MIN_LATENCY_RUNS} (got {runs})")
        self.runtime, self.model_id, self.adapter = runtime, model_id, adapter
        self.batch_size, self.runs, self.work_dir = batch_size, runs, Path(work_dir)
        self.batch = example_batch(batch_size)
        self._export_example = example_batch(2)  # the exported batch axis is dynamic
        self.predict = ort_predictor(adapter) if runtime == "onnxruntime" else adapter.predict

    def load(self, name: str, model: nn.Module) -> Any:
        """What the runtime runs: an OrtModel of the exported `model` (in work_dir/name), or the module itself."""
        if self.runtime != "onnxruntime":
            return model
        folder = self.work_dir / name
        exported = export_onnx(self.model_id, model, self._export_example, folder)
        return OrtModel.load(folder, exported, torch.get_num_threads())

    def time(self, teacher: Any, student: Any) -> dict:
        """Both models timed in the same rounds; latencies in ms."""
        models = {"teacher": teacher, "student": student}
        with self._context(models), torch.inference_mode():
            times = _interleaved_times(models, self.predict, self.batch, self.runs, WARMUP_RUNS)
        ms = {name: [t * 1000.0 for t in values] for name, values in times.items()}
        paired = paired_medians(ms["teacher"], ms["student"])  # ratio: median(teacher) / median(student)
        return {
            "student_ms": paired["median_b"],
            "student_ms_ci": paired["median_b_ci"],
            "teacher_ms": paired["median_a"],
            "teacher_ms_ci": paired["median_a_ci"],
            "speedup": paired["ratio"],
            "speedup_ci": paired["ratio_ci"],
            "student_p95_ms": _p95(ms["student"]),
            "teacher_p95_ms": _p95(ms["teacher"]),
            "rounds": paired["rounds"],
        }

    @contextlib.contextmanager
    def _context(self, models: dict[str, Any]) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for model in models.values():
                if isinstance(model, nn.Module):
                    stack.enter_context(measuring(model))
            yield

    def conditions(self) -> dict:
        """How the timings were taken (the report's `asked`/`candidates` note)."""
        return {
            "runtime": self.runtime,
            "batch_size": self.batch_size,
            "runs": self.runs,
            "warmup_runs": WARMUP_RUNS,
            "threads": torch.get_num_threads(),
            **(
                {
                    "onnxruntime_sessions": "one intra-op pool per model; each run stops its pool's spinning when it "
                    "ends, so an idle model's threads do not take the cores of the model timed next"
                }
                if self.runtime == "onnxruntime"
                else {}
            ),
            "schedule": "teacher and candidate alternate every round and the order flips each round; the speedup "
            "is median(teacher) / median(candidate) over the same rounds",
            "interval": f"percentile bootstrap of the medians, {BOOTSTRAP_RESAMPLES} resamples of the paired rounds "
            f"(seed {BOOTSTRAP_SEED}), {CONFIDENCE:.0%}",
        }


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(0.95 * len(ordered))) - 1))]


class CandidateTimer:
    """`measure(amount)` for search_amount: builds the candidate with `make_student(amount)`, counts its FLOPs and
    parameters, and times it against the teacher (loaded into the runtime once)."""

    def __init__(
        self, timer: RuntimeTimer, teacher: nn.Module, make_student: Callable[[float], nn.Module], flops_batch: Batch
    ) -> None:
        self.timer, self.make_student, self.flops_batch = timer, make_student, flops_batch
        self.teacher = timer.load("teacher", teacher)
        self.teacher_flops = count_flops(teacher, timer.adapter.predict, flops_batch)["flops_per_sample"]
        self.teacher_parameters = count_parameters(teacher)["total"]
        self.count = 0

    def __call__(self, amount: float) -> tuple[float, float, dict]:
        started = time.perf_counter()
        self.count += 1
        student = self.make_student(amount).eval()
        details = {
            "flops_per_sample": count_flops(student, self.timer.adapter.predict, self.flops_batch)["flops_per_sample"],
            "parameters": count_parameters(student)["total"],
        }
        timing = self.timer.time(self.teacher, self.timer.load(f"candidate_{self.count}", student))
        details.update(timing, measure_s=time.perf_counter() - started)
        return timing["student_ms"], timing["teacher_ms"], details


__all__ = [
    "MAX_CANDIDATES",
    "RESOLUTION",
    "CandidateTimer",
    "LatencyTargetUnreachable",
    "RuntimeTimer",
    "describe_target",
    "meets",
    "search_amount",
]

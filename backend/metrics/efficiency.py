"""Efficiency: serialized size (dense and compressed), memory, interleaved latency and full-pass time."""

from __future__ import annotations

import contextlib
import gc
import statistics
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence

import psutil
import torch
from safetensors.torch import save as safetensors_save
from torch import nn

from .common import MB, MB_NOTE, Batch, Predict, batch_size_of, measuring, ratio
from .stats import median_ratio_interval

ZLIB_LEVEL = 6
MIN_LATENCY_RUNS = 30
_CHUNK = 16 * 1024 * 1024


def effective_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with pruning masks folded in (`w = w_orig * w_mask`), shared tensors kept once, cloned."""
    state = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int, tuple]] = set()
    for key, tensor in state.items():
        if key.endswith("_mask") and f"{key[:-5]}_orig" in state:
            continue
        # Tied weights (e.g. T5's shared embedding) appear under several names; safetensors refuses shared storage.
        # Identity is taken from the state dict's own tensors, which stay alive (a temporary's address is reused).
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if ident in seen and tensor.numel() > 0:
            continue
        seen.add(ident)
        if key.endswith("_orig") and f"{key[:-5]}_mask" in state:
            key, tensor = key[:-5], tensor * state[f"{key[:-5]}_mask"]
        out[key] = tensor.detach().cpu().contiguous().clone()
    return out


def _deflated_size(data: bytes) -> int:
    """Bytes of data after zlib (deflate) at ZLIB_LEVEL, streamed so the output is never held whole."""
    compressor, size = zlib.compressobj(ZLIB_LEVEL), 0
    view = memoryview(data)
    for start in range(0, len(view), _CHUNK):
        size += len(compressor.compress(view[start : start + _CHUNK]))
    return size + len(compressor.flush())


def model_size(model: nn.Module, compress: bool = True) -> dict:
    """Dense bytes of the safetensors serialization of the effective weights, and those bytes deflated."""
    data = safetensors_save(effective_state_dict(model))
    # Deflating runs at roughly 15 MB/s on one core (about 17 s for DistilBERT-base): compress=False skips it.
    dense, compressed = len(data), _deflated_size(data) if compress else None
    out = {
        "dense_bytes": dense,
        "model_size_mb": dense / MB,
        "compressed_bytes": compressed,
        "compressed_size_mb": None if compressed is None else compressed / MB,
        "method": "safetensors serialization of the state dict with pruning masks folded in and tied tensors "
        f"once; compressed = those bytes through zlib level {ZLIB_LEVEL} (what zeros save on disk)",
        "unit_note": MB_NOTE,
    }
    if compressed is None:
        out["compressed_bytes_reason"] = out["compressed_size_mb_reason"] = "not computed (compress=False)"
    return out


def param_buffer_bytes(model: nn.Module) -> int:
    """Bytes held by the model's distinct parameters and buffers (pruning masks included, as they are in RAM)."""
    tensors = {id(t): t for t in (*model.parameters(), *model.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())


class _RssSampler(threading.Thread):
    """Samples this process's resident set size until stopped; keeps the maximum."""

    def __init__(self, interval_s: float = 0.001) -> None:
        super().__init__(daemon=True)
        self.process, self.interval_s = psutil.Process(), interval_s
        self.peak, self.samples = self.process.memory_info().rss, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self.samples += 1
            self._stop_event.wait(self.interval_s)
        self.peak = max(self.peak, self.process.memory_info().rss)  # a last look: the run may beat the first tick
        self.samples += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def memory_footprint(model: nn.Module, predict: Predict, batch: Batch, repeats: int = 3) -> dict:
    """Parameter+buffer MB, and the peak RSS increase (psutil, background sampling) while running inference."""
    gc.collect()
    baseline = psutil.Process().memory_info().rss
    sampler = _RssSampler()
    sampler.start()
    try:
        with measuring(model), torch.inference_mode():
            for _ in range(repeats):
                predict(model, batch)
    finally:
        sampler.stop()
    return {
        "param_buffer_mb": param_buffer_bytes(model) / MB,
        "peak_rss_increase_mb": max(sampler.peak - baseline, 0) / MB,
        "rss_baseline_mb": baseline / MB,
        "rss_samples": sampler.samples,
        "batch_size": batch_size_of(batch),
        "method": f"psutil RSS of the whole process sampled every ~1 ms during {repeats} inference calls, minus "
        "the RSS just before; memory the allocator already holds from earlier runs is not counted "
        "again, so this can be ~0 for small models",
        "unit_note": MB_NOTE,
    }


def _summary(times_s: Sequence[float], batch_size: int) -> dict:
    """Median, p95, mean and min in ms, and throughput from the median."""
    ms = sorted(t * 1000.0 for t in times_s)
    p95_index = min(len(ms) - 1, max(0, int(round(0.95 * len(ms))) - 1))  # nearest-rank 95th percentile
    median = statistics.median(ms)
    return {
        "median_ms": median,
        "p95_ms": ms[p95_index],
        "mean_ms": statistics.fmean(ms),
        "min_ms": ms[0],
        "throughput_samples_per_s": ratio(batch_size * 1000.0, median),
        "runs": len(ms),
    }


def _time_once(model: nn.Module, predict: Predict, batch: Batch) -> float:
    start = time.perf_counter()
    out = predict(model, batch)
    if isinstance(out, torch.Tensor) and out.is_cuda:  # kernels run asynchronously: wait for them before timing
        torch.cuda.synchronize(out.device)
    return time.perf_counter() - start


def _interleaved_times(
    models: dict[str, nn.Module], predict: Predict, batch: Batch, runs: int, warmup: int
) -> dict[str, list[float]]:
    """Per model, `runs` timings taken in alternation: A B, B A, A B, ... so drift hits each model alike."""
    names = list(models)
    for _ in range(warmup):
        for name in names:
            predict(models[name], batch)
    times: dict[str, list[float]] = {name: [] for name in names}
    for run in range(runs):
        for name in names if run % 2 == 0 else names[::-1]:
            times[name].append(_time_once(models[name], predict, batch))
    return times


def _speedups(
    per_model: dict[str, dict], keys: list[str], pair: tuple[str, str] = ("teacher", "student")
) -> dict | None:
    """slow median / fast median per batch size (teacher / student by default), when both were timed."""
    slow, fast = pair
    if not {slow, fast} <= set(per_model):
        return None
    return {key: ratio(per_model[slow][key]["median_ms"], per_model[fast][key]["median_ms"]) for key in keys}


SPEEDUP_CI_NOTE = (
    "95% percentile-bootstrap interval (1,000 resamples, seed 0) of the ratio of medians, resampling the "
    "interleaved runs in pairs"
)


def speedup_intervals(
    times: dict[str, dict[str, list[float]]], fast: str = "student", slow: str = "teacher"
) -> dict | None:
    """Per batch key, the interval of `slow` median / `fast` median from the paired run times."""
    if slow not in times or fast not in times:
        return None
    return {key: median_ratio_interval(times[slow][key], times[fast][key]) for key in times[slow]}


@contextlib.contextmanager
def _all_measuring(models: dict[str, nn.Module]) -> Iterator[None]:
    """measuring() for several models at once."""
    with contextlib.ExitStack() as stack:
        for model in models.values():
            stack.enter_context(measuring(model))
        yield


def measure_latency(
    models: dict[str, nn.Module],
    predict: Predict,
    example_batch: Callable[[int], Batch],
    batch_sizes: Sequence[int] = (1, 32),
    runs: int = 30,
    warmup: int = 5,
    pair: tuple[str, str] = ("teacher", "student"),
) -> dict:
    """Interleaved latency per model and batch size (eval, inference_mode, same threads), with the speedup of
    `pair` (slow, fast: teacher / student by default) and its interval."""
    if runs < MIN_LATENCY_RUNS:
        raise ValueError(f"runs must be at least {MIN_LATENCY_RUNS} (got {runs}): fewer gives unstable medians")
    threads = torch.get_num_threads()
    per_model: dict[str, dict] = {name: {} for name in models}
    raw: dict[str, dict[str, list[float]]] = {name: {} for name in models}
    keys = [f"batch_{bs}" for bs in batch_sizes]
    with _all_measuring(models), torch.inference_mode():
        for bs, key in zip(batch_sizes, keys, strict=True):
            batch = example_batch(bs)  # one batch per size, shared by every model
            for name, times in _interleaved_times(models, predict, batch, runs, warmup).items():
                per_model[name][key] = _summary(times, bs)
                raw[name][key] = times
    out = {
        "batch_sizes": list(batch_sizes),
        "runs": runs,
        "warmup_runs": warmup,
        "torch_threads": threads,
        "schedule": "interleaved: models alternate every run and the order flips each run",
        "per_model": per_model,
        "speedup": _speedups(per_model, keys, pair),
        "speedup_ci": speedup_intervals(raw, fast=pair[1], slow=pair[0]),
        "speedup_ci_note": SPEEDUP_CI_NOTE,
    }
    if out["speedup"] is None:
        out["speedup_reason"] = out["speedup_ci_reason"] = f"speedup needs models named {pair[0]!r} and {pair[1]!r}"
    return out


def time_full_pass(model: nn.Module, predict: Predict, batches: Iterable[Batch]) -> float:
    """Seconds to predict every batch (a batch dict, or a (batch, labels) pair) in eval and inference mode."""
    with measuring(model), torch.inference_mode():
        start = time.perf_counter()
        for batch in batches:
            predict(model, batch[0] if isinstance(batch, tuple) else batch)
        return time.perf_counter() - start

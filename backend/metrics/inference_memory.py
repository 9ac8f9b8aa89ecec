"""Inference memory as a user who deploys the model would see it: a fresh process loads the saved model and runs
a batch of 1, then of 32; its peak resident set size (RSS), and the increase over the same process before the
model was loaded.

One probe process (`python -m backend.metrics.inference_memory --serve`) is started by the first job of a worker
and reused by the next ones. It imports torch,
ONNX Runtime, the adapter (tokenizer) and the models' classes first, then forks one child per (model, runtime):
the child starts with the parent's memory and nothing of any model, loads the model from its saved files, runs
the batches and reads its own peak RSS after each (getrusage ru_maxrss, which Linux resets to the current RSS
at fork). The children run one at a time, so no measurement sees another's memory.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from backend.models.adapters import adapter_for
from backend.models.onnx_export import OrtModel, ort_predictor

MB = 1e6
BATCH_SIZES = (1, 32)
METHOD = (
    "a fresh process per model and runtime (forked from a probe that has imported torch, ONNX Runtime, the "
    "tokenizer and the models' classes, but holds no model; the child's increase includes starting torch's threads) loads the model from its saved files and runs a batch of 1, then a batch of 32; "
    "after each, peak_rss_mb is its peak resident set size so far (getrusage ru_maxrss) and increase_mb that peak "
    "minus the RSS before loading"
)


def _rss_bytes() -> int:
    return psutil.Process().memory_info().rss


def _peak_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


# What any pickled module needs besides its own classes: tensor rebuilders and the builtin set.
BASE_GLOBALS = ("torch:Tensor", "torch._tensor:_rebuild_from_type_v2", "builtins:set")


def pickle_globals(*models: Any) -> list[str]:
    """ "module:name" of every class and function a pickle of `models` names: their modules' classes, their
    configs' classes and the functions stored on them (activations). The probe allows these and nothing else."""
    import torch

    names = set(BASE_GLOBALS)
    for model in models:
        for module in model.modules():
            names.add(f"{type(module).__module__}:{type(module).__qualname__}")
            for value in vars(module).values():
                if callable(value) and not isinstance(value, (torch.nn.Module, type)) and hasattr(value, "__module__"):
                    names.add(f"{value.__module__}:{getattr(value, '__qualname__', value.__name__)}")
        for attr in ("config", "generation_config"):
            config = getattr(model, attr, None)
            if config is not None:
                names.add(f"{type(config).__module__}:{type(config).__qualname__}")
    return sorted(names)


def _resolve(names: list[str]) -> list[Any]:
    """The objects named "module:qualname" (imported now, before forking: part of the baseline)."""
    import importlib

    out = []
    for name in names:
        module, _, qualname = name.partition(":")
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        out.append(obj)
    return out


def _measure_child(entry: dict, batches: dict, adapter: Any, threads: int, allowed: list[Any]) -> dict:
    """In the forked child: load the model, run a batch of 1, then of 32, reading the peak after each."""
    import torch

    torch.set_num_threads(threads)
    before = _rss_bytes()
    if entry["runtime"] == "pytorch":
        with torch.serialization.safe_globals(allowed):  # weights_only: only the classes the job's models use
            model = torch.load(entry["path"], weights_only=True).eval()

        def run(batch: dict) -> None:
            with torch.inference_mode():
                adapter.predict(model, batch)
    else:
        model, predict = OrtModel.load(Path(entry["path"]), entry["exported"], threads), ort_predictor(adapter)

        def run(batch: dict) -> None:
            predict(model, batch)

    out = {}
    for bs in BATCH_SIZES:
        batch = {k: v[:bs] for k, v in batches.items()}
        run(batch)
        peak = max(_peak_bytes(), _rss_bytes())
        out[f"batch_{bs}"] = {
            "peak_rss_mb": peak / MB,
            "increase_mb": max(0, peak - before) / MB,
            "baseline_rss_mb": before / MB,
            "batch_size": int(next(iter(batch.values())).shape[0]),
        }
    return out


def _fork_measure(entry: dict, batch: dict, adapter: Any, threads: int, allowed: list[Any]) -> dict:
    """One measurement in a forked child; its result comes back through a pipe."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        try:
            out = _measure_child(entry, batch, adapter, threads, allowed)
        except Exception as exc:  # noqa: BLE001 - reported to the parent as this measurement's reason
            text = str(exc)
            where = text.find("Unsupported global")  # weights_only refused a class the job's models do not use
            out = {"error": f"{type(exc).__name__}: {text[where:] if where >= 0 else text}"[:300]}
        os.write(write, json.dumps(out).encode())
        os.close(write)
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        return {"error": f"the measuring process ended without an answer (status {status})"}
    return json.loads(b"".join(chunks))


def _adapter(spec: dict) -> Any:
    """The model's adapter, rebuilt from the saved tokenizer (save_pretrained folder) and the class names."""
    tokenizer = None
    if spec.get("tokenizer"):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(spec["tokenizer"], trust_remote_code=False)
    return adapter_for(spec["model_id"], tokenizer, spec["class_names"])


def probe(spec: dict) -> dict:
    """Run every measurement of `spec` (in the probe process); {runtime: {label: {batch_N: {...}}}}."""
    import onnxruntime  # noqa: F401
    import torch

    allowed = _resolve(spec["allowed_globals"])  # the models' classes: importing them is not the model's memory
    # No tensor work here: an OpenMP thread pool started before fork() deadlocks the children's first parallel op.
    adapter = _adapter(spec)
    batches = torch.load(spec["batch"], weights_only=True)
    out: dict[str, Any] = {}
    for entry in spec["entries"]:
        result = _fork_measure(entry, batches, adapter, spec["threads"], allowed)
        if "error" in result:
            result = {f"batch_{bs}": {"error": result["error"]} for bs in BATCH_SIZES}
        out.setdefault(entry["runtime"], {})[entry["label"]] = result
    return out


class _Probe:
    """The probe process, started once and reused: later jobs pay for its forks, not for importing torch again.

    It reads the path of a spec per line on stdin and answers one JSON line on stdout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "backend.metrics.inference_memory", "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                cwd=Path(__file__).resolve().parents[2],
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self._proc

    def ask(self, spec_path: Path, timeout_s: float) -> dict:
        with self._lock:
            proc = self._start()
            proc.stdin.write(f"{spec_path}\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
            line = proc.stdout.readline() if ready else ""
            if not line:
                proc.kill()
                proc.wait()
                self._proc = None
                return {"error": "the memory probe gave no answer" + ("" if ready else f" within {timeout_s:.0f} s")}
            return json.loads(line)

    def close(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.stdin.close()
                self._proc.wait(timeout=10)
            self._proc = None


_PROBE = _Probe()
atexit.register(_PROBE.close)


def measure_inference_memory(spec: dict, work_dir: Path, timeout_s: float = 180.0) -> dict:
    """The probe's measurements for `spec` (files under work_dir), or {"error": reason}."""
    if not hasattr(os, "fork"):
        return {"error": "needs os.fork (Linux or macOS) to start each measurement from a model-free process"}
    spec_path = work_dir / "inference_memory.json"
    spec_path.write_text(json.dumps(spec))
    started = time.perf_counter()
    out = _PROBE.ask(spec_path, timeout_s)
    if "error" not in out:
        out["seconds"] = time.perf_counter() - started
        out["method"] = METHOD
    return out


def _serve() -> None:
    """The probe's loop: one spec path per line in, one JSON answer per line out, until stdin closes."""
    for line in sys.stdin:
        try:
            answer = probe(json.loads(Path(line.strip()).read_text()))
        except Exception as exc:  # noqa: BLE001 - one bad spec must not end the probe
            answer = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        _serve()
    else:
        print(json.dumps(probe(json.loads(Path(sys.argv[1]).read_text()))), flush=True)

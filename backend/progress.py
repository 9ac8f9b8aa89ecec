"""The command line's progress display: kd callbacks that draw a one-line bar per phase on stderr (backend.cli and
backend.study_cli both use it)."""

from __future__ import annotations

import sys
import time

from backend.kd.callbacks import Callbacks


class ProgressBar(Callbacks):
    """A one-line progress bar per phase on stderr."""

    def __init__(self, stream=sys.stderr, width: int = 30) -> None:
        self.stream, self.width, self._last = stream, width, 0.0

    def on_phase_start(self, phase, info):
        self.stream.write(f"\n[{phase}]")
        self.stream.flush()

    def on_step_end(self, phase, step, total, losses, eta_s):
        now = time.monotonic()
        if step != total and now - self._last < 0.2:
            return
        self._last = now
        filled = int(self.width * step / max(1, total))
        terms = " ".join(f"{k}={v:.3f}" for k, v in losses.items() if v is not None)
        eta = f" eta {eta_s:4.0f}s" if eta_s is not None else ""
        self.stream.write(f"\r[{phase}] [{'#' * filled}{'.' * (self.width - filled)}] {step}/{total} {terms}{eta}  ")
        self.stream.flush()

    def on_metrics(self, phase, metrics):
        if "accuracy" in metrics or "val_accuracy" in metrics:
            acc = metrics.get("accuracy", metrics.get("val_accuracy"))
            extra = f" sparsity {metrics['achieved_sparsity']:.1%}" if "achieved_sparsity" in metrics else ""
            self.stream.write(f"\n  validation accuracy {acc:.2%}{extra}")

    def on_phase_end(self, phase, info):
        self.stream.write(f"\n[{phase}] done in {info['seconds']:.1f}s")
        self.stream.flush()

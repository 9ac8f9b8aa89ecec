"""Facts about the machine and libraries, reported in health answers and report metadata; torch's thread count."""

from __future__ import annotations

import os
import platform
from functools import lru_cache


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_info() -> dict:
    """Versions of the numerical stack, device and thread counts."""
    import torch
    import torchvision
    import transformers

    return {
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "transformers_version": transformers.__version__,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
    }


def set_torch_threads(requested: int) -> None:
    """Leave a core to the web server unless told otherwise."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(requested if requested > 0 else max(1, (os.cpu_count() or 2) - 1))

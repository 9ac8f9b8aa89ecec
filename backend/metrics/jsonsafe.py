"""Strict JSON: non-finite numbers become null with a reason, library scalars become Python numbers."""
from __future__ import annotations

import json
import math
from pathlib import PurePath
from typing import Any

import numpy as np
import torch

REASON_SUFFIX = "_reason"  # the null convention: key: null next to key_reason: "why"
NON_FINITE_REASON = "the measured value was not a finite number (NaN or infinity)"
UNKNOWN_REASON = "not available: it was not supplied to or measured by the report builder"


def _scalar(obj: Any) -> Any:
    """A Python number for numpy/torch scalars and 0-d arrays; the object itself otherwise."""
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 and obj.dim() == 0 else obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def _is_non_finite(obj: Any) -> bool:
    return isinstance(obj, float) and not math.isfinite(obj)


def sanitize_json(obj: Any) -> Any:
    """A copy that json.dumps(allow_nan=False) accepts: NaN/inf -> None (reason added in dicts), scalars -> Python."""
    obj = _scalar(obj)
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            value = _scalar(value)
            out[str(key)] = None if _is_non_finite(value) else sanitize_json(value)
            if _is_non_finite(value) and f"{key}{REASON_SUFFIX}" not in obj:
                out[f"{key}{REASON_SUFFIX}"] = NON_FINITE_REASON
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [None if _is_non_finite(_scalar(v)) else sanitize_json(v) for v in items]
    if _is_non_finite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, PurePath):
        return str(obj)
    return repr(obj)


def ensure_reasons(obj: Any, default: str = UNKNOWN_REASON) -> Any:
    """In place: drop empty *_reason keys; every key whose value is None (or a list holding None) gets a reason."""
    if isinstance(obj, dict):
        for key in [k for k in obj if k.endswith(REASON_SUFFIX) and not obj[k]]:
            del obj[key]  # an empty reason (e.g. mean_kl_reason: None beside a measured mean_kl) says nothing
        for key in [k for k in obj if not k.endswith(REASON_SUFFIX)]:
            value = obj[key]
            lacks = f"{key}{REASON_SUFFIX}" not in obj
            if lacks and (value is None or (isinstance(value, list) and any(v is None for v in value))):
                obj[f"{key}{REASON_SUFFIX}"] = default
            ensure_reasons(value, default)
    elif isinstance(obj, list):
        for item in obj:
            ensure_reasons(item, default)
    return obj


def to_strict_json(obj: Any, indent: int | None = 2) -> str:
    """Sanitised, strict JSON text (allow_nan=False)."""
    return json.dumps(sanitize_json(obj), allow_nan=False, indent=indent)

"""Strict JSON, decided in one place: non-finite numbers become null, library scalars/arrays become Python values.

Used by the report (null with a reason) and by the API and job events (plain null, via jsonable). Duck typed on
tolist()/item(), so numpy arrays and torch tensors convert without this module importing either: the API process
stays free of torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

REASON_SUFFIX = "_reason"  # the null convention: key: null next to key_reason: "why"
NON_FINITE_REASON = "the measured value was not a finite number (NaN or infinity)"
UNKNOWN_REASON = "not available: it was not supplied to or measured by the report builder"


def _scalar(obj: Any) -> Any:
    """Python numbers/lists for numpy/torch scalars, arrays and tensors; the object itself otherwise."""
    if obj is None or isinstance(obj, (bool, int, float, str, Mapping, list, tuple, set, frozenset)):
        return obj
    tolist = getattr(obj, "tolist", None)  # numpy arrays and scalars, torch tensors
    if callable(tolist):
        return tolist()
    item = getattr(obj, "item", None)
    if callable(item):
        return item()
    return obj


def _is_non_finite(obj: Any) -> bool:
    return isinstance(obj, float) and not math.isfinite(obj)


def sanitize_json(obj: Any, *, reasons: bool = True) -> Any:
    """A copy that json.dumps(allow_nan=False) accepts: NaN/inf -> None, scalars -> Python, tuples/sets -> lists.

    With reasons, a dict key whose value was non-finite also gets key_reason (unless it has one already).
    """
    obj = _scalar(obj)
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            value = _scalar(value)
            out[str(key)] = None if _is_non_finite(value) else sanitize_json(value, reasons=reasons)
            if reasons and _is_non_finite(value) and f"{key}{REASON_SUFFIX}" not in obj:
                out[f"{key}{REASON_SUFFIX}"] = NON_FINITE_REASON
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [sanitize_json(v, reasons=reasons) for v in items]
    if _is_non_finite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)  # paths, devices, dtypes, enums: their readable name


def jsonable(value: Any) -> Any:
    """sanitize_json without reasons: what the API and job events send (NaN/inf -> plain null)."""
    return sanitize_json(value, reasons=False)


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

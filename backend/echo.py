"""Values echoed back in error messages, cut short: a client's megabyte must not come back whole."""

from __future__ import annotations

from typing import Any

ECHO_CHARS = 100


def clip(value: Any, limit: int = ECHO_CHARS) -> str:
    """repr() of a value (str() of a string), cut to `limit` characters with an ellipsis."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"

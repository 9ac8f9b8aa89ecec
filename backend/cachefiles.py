"""When a cached model (a folder of cache/teachers or cache/students) was last used: its meta.json's mtime.

The jobs that load a cached model touch it (backend.models.teachers, backend.pipeline); least-recently-used
eviction (backend.jobs.disk) reads it. Plain files, no other backend module, so both sides can import it.
"""

from __future__ import annotations

from pathlib import Path


def last_used(folder: Path) -> float:
    """When a cached model was last saved or loaded: its meta.json's mtime (touched on every use)."""
    try:
        return (folder / "meta.json").stat().st_mtime
    except FileNotFoundError:
        return 0.0


def touch_cached(folder: Path) -> None:
    """Mark a cached teacher or student as used now (least-recently-used eviction reads this)."""
    try:
        (folder / "meta.json").touch(exist_ok=True)
    except FileNotFoundError:
        pass

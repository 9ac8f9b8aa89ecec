"""Disk lifecycle of the data directory: removing trees atomically, leftovers after a kill, the teacher cache bound.

Everything here works on folders the service itself made; no Flask, no torch.

Removal is two steps: the folder is first renamed to a `.trash-*` name next to it (atomic, so readers see it
either whole or gone), then deleted. A kill between the two leaves only a `.trash-*` folder, which
clean_leftovers removes at the next start.

A full disk: free_bytes / below_floor are the admission check (507 below the free-space floor), is_disk_full
tells a failed job's error apart as `disk_full` (errno ENOSPC/EDQUOT anywhere in the exception's chain, the same
words in a library's own error, or, for writers that hide the cause such as torch.save's "unexpected pos", a
filesystem with under NEARLY_FULL_BYTES left when the job failed), and disk_full_message says where and how
much is free.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from backend.cachefiles import last_used
from backend.cachefiles import touch_cached as touch_cached  # the other side of last_used, here with the rest
from backend.data.uploads.common import UPLOAD_ID_RE  # one definition of what an upload id looks like

log = logging.getLogger(__name__)

TRASH_PREFIX = ".trash-"
JOB_ID_RE = re.compile(r"^job_[0-9a-f]{16}$")
# A job that fails while its filesystem has less than this left failed for want of space, whatever the writer said.
NEARLY_FULL_BYTES = 2**20
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_FULL_WORDS = ("no space left on device", "disk quota exceeded", "database or disk is full")
# An entry of the teacher cache used this recently is never evicted: a job may be loading it right now.
TEACHER_IN_USE_S = 600.0


def move_to_trash(path: Path) -> Path | None:
    """Rename path to a `.trash-*` sibling (atomic); None when there is nothing there."""
    trash = path.with_name(f"{TRASH_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        path.rename(trash)
    except FileNotFoundError:
        return None
    return trash


def remove(path: Path | None) -> None:
    """Delete a file or folder tree; missing is fine."""
    if path is None:
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_tree(path: Path) -> None:
    """Remove a folder the atomic way (trash, then delete)."""
    remove(move_to_trash(path))


def inside(base: Path, path: Path) -> bool:
    """True when path (resolved) is base itself or below it: never delete outside the service's folders."""
    base, path = base.resolve(), path.resolve()
    return path == base or base in path.parents


@dataclass(frozen=True)
class Retention:
    """What to keep: the newest retain_jobs finished jobs and/or those finished in the last retain_days (0: no
    bound); the teacher cache at most cache_max_entries entries and/or cache_max_mb MB (0: no bound)."""

    retain_jobs: int = 0
    retain_days: float = 0.0
    cache_max_entries: int = 0
    cache_max_mb: float = 0.0


@dataclass
class Cleaned:
    """What clean_leftovers removed, as paths relative to the folder they were found in."""

    removed: list[str] = field(default_factory=list)

    def add(self, path: Path, root: Path) -> None:
        self.removed.append(str(path.relative_to(root)))
        remove(path)


def clean_leftovers(
    upload_dir: Path,
    jobs_dir: Path,
    cache_dir: Path,
    *,
    known_jobs: Iterable[str],
    interrupted_jobs: Iterable[str] = (),
) -> list[str]:
    """Remove what a killed server leaves behind; call before any worker starts. Returns what was removed.

    - uploads: `.staging/*` (files mid-check), `.incoming/*` (spooled request bodies), `.trash-*`,
      `upl_*/model.*.tmp` (a teacher ZIP mid-extraction) and `upl_*` folders without meta.json;
    - jobs: `.trash-*`, `*.tmp` files in job folders (report/bundle mid-write), folders of jobs that have
      no row, and the partial folders of jobs that were interrupted before they produced anything;
    - model caches: `teachers/*.tmp`, `students/*.tmp` (an entry mid-save) and their `.trash-*`.
    """
    done = Cleaned()
    for sub in (".staging", ".incoming"):
        for entry in _children(upload_dir / sub):
            done.add(entry, upload_dir)
    for entry in _children(upload_dir):
        if entry.name.startswith(TRASH_PREFIX):
            done.add(entry, upload_dir)
        elif UPLOAD_ID_RE.match(entry.name) and entry.is_dir():
            if not (entry / "meta.json").is_file():
                done.add(entry, upload_dir)
                continue
            for tmp in entry.glob("model.*.tmp"):
                done.add(tmp, upload_dir)
    known, interrupted = set(known_jobs), set(interrupted_jobs)
    for entry in _children(jobs_dir):
        if entry.name.startswith(TRASH_PREFIX):
            done.add(entry, jobs_dir)
        elif JOB_ID_RE.match(entry.name) and entry.is_dir():
            if entry.name not in known or entry.name in interrupted:
                done.add(entry, jobs_dir)
                continue
            for tmp in entry.rglob("*.tmp"):
                done.add(tmp, jobs_dir)
    for kind in ("teachers", "students"):
        for entry in _children(cache_dir / kind):
            if entry.name.endswith(".tmp") or entry.name.startswith(TRASH_PREFIX):
                done.add(entry, cache_dir)
    if done.removed:
        log.info("removed %d leftover(s) of an earlier run: %s", len(done.removed), ", ".join(done.removed[:20]))
    return done.removed


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


# ---------------------------------------------------------------- model caches (teachers, distilled students)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def prune_model_cache(
    cache_dir: Path,
    *,
    max_entries: int = 0,
    max_mb: float = 0,
    in_use_s: float = TEACHER_IN_USE_S,
    now: float | None = None,
) -> list[str]:
    """Evict the least recently used entries of a model cache (cache/teachers or cache/students) until at most
    max_entries / max_mb remain (0: no bound).

    An entry used in the last in_use_s seconds is never evicted (a job may be loading it), so the cache can
    stay over its bound until those age. Eviction is an atomic rename, then a delete. Returns evicted names."""
    if max_entries <= 0 and max_mb <= 0:
        return []
    now = time.time() if now is None else now
    entries = [
        e
        for e in _children(cache_dir)
        if e.is_dir() and not e.name.endswith(".tmp") and not e.name.startswith(TRASH_PREFIX)
    ]
    entries.sort(key=last_used)  # oldest use first
    sizes = {e.name: _size(e) for e in entries}
    count, total = len(entries), sum(sizes.values())
    evicted = []
    for entry in entries:
        over_count = max_entries > 0 and count > max_entries
        over_size = max_mb > 0 and total > max_mb * 2**20
        if not (over_count or over_size):
            break
        if now - last_used(entry) < in_use_s:
            continue
        remove_tree(entry)
        evicted.append(entry.name)
        count, total = count - 1, total - sizes[entry.name]
    if evicted:
        log.info("%s cache: evicted %s", cache_dir.name, ", ".join(evicted))
    return evicted


def remove_cached_of_dataset(cache_dir: Path, dataset: str) -> list[str]:
    """Remove the cached teachers or students trained on one dataset (an upload being deleted); their names."""
    gone = []
    for entry in _children(cache_dir):
        try:
            meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("dataset") == dataset:
            remove_tree(entry)
            gone.append(entry.name)
    return gone


# ---------------------------------------------------------------- free space


def free_bytes(path: Path | str) -> int:
    """Free bytes (for an unprivileged writer) on the filesystem of path, or of its nearest existing parent."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def below_floor(folders: Iterable[Path | str], floor_bytes: int) -> tuple[Path, int] | None:
    """(folder, its free bytes) for the first folder whose filesystem has less than floor_bytes free; else None."""
    if floor_bytes <= 0:
        return None
    for folder in folders:
        free = free_bytes(folder)
        if free < floor_bytes:
            return Path(folder), free
    return None


def is_disk_full(exc: BaseException, folders: Iterable[Path | str] = ()) -> bool:
    """True when exc (or an exception it was raised from) says the disk is full, or when one of folders is on a
    filesystem with under NEARLY_FULL_BYTES left (a writer such as torch.save hides the cause)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            return True
        if any(words in str(current).lower() for words in _FULL_WORDS):
            return True
        current = current.__cause__ or current.__context__
    return any(free_bytes(folder) < NEARLY_FULL_BYTES for folder in folders)


def human_bytes(n: int) -> str:
    """1.5 GiB, 12.0 MiB, 300 KiB, 12 B."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def disk_full_message(folder: Path | str) -> str:
    """What a job (or an upload) that ran out of space tells its user: the folder and what is free there now."""
    return (
        f"disk full: the filesystem of {Path(folder)} has {human_bytes(free_bytes(folder))} free; free some space "
        "(delete old jobs, uploads or cached teachers) and try again"
    )

"""Bookkeeping of the folders the service writes and later trusts: when a cached model was last used, and the
sha256 digest of a folder's files.

Last use: a cached model (a folder of cache/teachers or cache/students) was last used at its meta.json's mtime.
The jobs that load a cached model touch it (backend.models.teachers, backend.pipeline); least-recently-used
eviction (backend.jobs.disk) reads it.

Digests: `seal` writes DIGEST_FILE (sha256 of every other file in the folder) atomically, after everything else,
so a folder with a digest was written whole. `check` re-hashes the files and says what differs: a truncated or
altered file, a missing one, or a missing digest. The teacher and student caches are sealed when written and
checked before they are loaded (a mismatch is discarded and rebuilt); a job's artifacts are sealed at the end of
the job and checked when served. Plain files, no other backend module, so every layer can import it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

DIGEST_FILE = "digests.json"
_SKIPPED_SUFFIXES = (".tmp", ".lock")


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


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != DIGEST_FILE and not p.name.endswith(_SKIPPED_SUFFIXES)
    )


def seal(folder: Path) -> dict[str, str]:
    """Write folder/DIGEST_FILE (relative path -> sha256 of every other file) atomically; returns the digests."""
    files = {name: file_sha256(folder / name) for name in _files(folder)}
    tmp = folder / f"{DIGEST_FILE}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.write_text(json.dumps({"algorithm": "sha256", "files": files}, indent=1), encoding="utf-8")
        os.replace(tmp, folder / DIGEST_FILE)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return files


def digests(folder: Path) -> dict[str, str] | None:
    """The sealed digests of a folder (relative path -> sha256); None when it has no readable digest file."""
    try:
        data = json.loads((folder / DIGEST_FILE).read_text(encoding="utf-8"))
        files = data["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return files if isinstance(files, dict) else None


def check(folder: Path) -> str | None:
    """None when every file listed in folder's digest is there with the same sha256 and no file is unlisted;
    otherwise what is wrong, in words."""
    sealed = digests(folder)
    if sealed is None:
        return f"{DIGEST_FILE} is missing or unreadable"
    present = set(_files(folder))
    for name, expected in sorted(sealed.items()):
        if name not in present:
            return f"{name} is missing"
        if file_sha256(folder / name) != expected:
            return f"{name} does not match its sha256 digest (truncated or altered)"
    extra = sorted(present - set(sealed))
    if extra:
        return f"{extra[0]} is not in the digest"
    return None


def check_file(folder: Path, name: str) -> str | None:
    """None when one file (relative to folder) matches folder's digest, or when folder has no digest (written
    before digests were kept); otherwise what is wrong. A folder of files is checked file by file."""
    sealed = digests(folder)
    if sealed is None:
        return None
    target = (folder / name).resolve()
    paths = (
        [p.relative_to(folder.resolve()).as_posix() for p in sorted(target.rglob("*")) if p.is_file()]
        if target.is_dir()
        else [name]
    )
    for rel in paths:
        if rel not in sealed:
            return f"{rel} is not in the digest"
        if file_sha256(folder / rel) != sealed[rel]:
            return f"{rel} does not match its sha256 digest (truncated or altered)"
    return None


def discard(folder: Path) -> None:
    """Remove a folder the atomic way: renamed to a `.trash-*` sibling, then deleted (missing is fine)."""
    trash = folder.with_name(f".trash-{folder.name}-{uuid.uuid4().hex[:8]}")
    try:
        folder.rename(trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)

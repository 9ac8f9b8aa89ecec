"""Storing an upload: size-capped copy into a staging folder, inspection by kind, atomic rename; read, list, delete."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .checkpoints import _inspect_checkpoint
from .common import (
    EXTENSIONS,
    META,
    NO_RECOGNISER,
    STAGING,
    UPLOAD_ID_RE,
    ModelRecogniser,
    UnsupportedUpload,
    UploadError,
    UploadInUse,
    UploadLimits,
    UploadNotFound,
    UploadTooLarge,
)
from .csvfile import _inspect_csv
from .images import _inspect_image_zip
from .modelzip import _inspect_model_zip, _model_root
from .npz import _inspect_npz
from .zipsafe import _file_entries, open_checked_zip


def save_upload(
    upload_dir: str | Path,
    filename: str | None,
    stream: IO[bytes],
    limits: UploadLimits = UploadLimits(),
    recognise: ModelRecogniser = NO_RECOGNISER,
) -> dict[str, Any]:
    """Check an incoming file and store it; returns its meta (upload_id, kind, what was found). A teacher's
    model_hint comes from `recognise` (None without one)."""
    ext = file_extension(filename)
    if ext not in EXTENSIONS:
        raise UnsupportedUpload(f"Unsupported file type {ext or '(none)'!r}; accepted: {sorted(EXTENSIONS)}.")
    upload_dir = Path(upload_dir)
    upload_id = "upl_" + uuid.uuid4().hex
    staging = upload_dir / STAGING / upload_id
    staging.mkdir(parents=True)
    try:
        stored = staging / f"upload{ext}"
        size, digest = _copy_limited(stream, stored, limits.max_bytes)
        if size == 0:
            raise UploadError("The file is empty.")
        details = _inspect(EXTENSIONS[ext], stored, limits, recognise)
        meta = {
            "upload_id": upload_id,
            **details,
            "filename": display_name(filename),
            "stored_name": stored.name,
            "size_bytes": size,
            "sha256": digest,
            "created_at": time.time(),
        }
        (staging / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        os.replace(staging, upload_dir / upload_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return meta


def resolve_upload(upload_dir: str | Path, upload_id: Any) -> tuple[Path, dict[str, Any]]:
    """The stored file and meta of an upload; UploadNotFound when there is none."""
    if not isinstance(upload_id, str) or not UPLOAD_ID_RE.match(upload_id):
        raise UploadNotFound(f"Unknown upload_id {upload_id!r}; upload ids look like 'upl_<32 hex digits>'.")
    folder = Path(upload_dir) / upload_id
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UploadNotFound(f"Unknown upload_id {upload_id!r}: no such upload.") from None
    path = folder / meta["stored_name"]
    if not path.is_file():
        raise UploadNotFound(f"The file of upload {upload_id!r} is missing.")
    return path, meta


def delete_upload(upload_dir: str | Path, upload_id: Any, users: Callable[[str], list[str]]) -> None:
    """Remove an upload's folder (file, meta, extracted model); UploadInUse while `users(upload_id)` names jobs.

    The folder is renamed away first (atomic: from then on resolve_upload says it does not exist, so no new
    job can take it), the users are asked again, and only then is it deleted; a job that appeared in between
    gets the folder back and the caller a 409."""
    resolve_upload(upload_dir, upload_id)  # UploadNotFound for a bad or unknown id
    _refuse_if_used(upload_id, users)
    folder = Path(upload_dir) / upload_id
    trash = Path(upload_dir) / f".trash-{upload_id}-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(folder, trash)
    except FileNotFoundError:
        raise UploadNotFound(f"Unknown upload_id {upload_id!r}: no such upload.") from None
    try:
        _refuse_if_used(upload_id, users)
    except UploadInUse:
        os.rename(trash, folder)
        raise
    shutil.rmtree(trash, ignore_errors=True)


def _refuse_if_used(upload_id: str, users: Callable[[str], list[str]]) -> None:
    jobs = users(upload_id)
    if jobs:
        raise UploadInUse(
            f"Upload {upload_id} is used by queued or running job(s) {', '.join(jobs[:5])}; cancel "
            "them first (POST /cancel_training), then delete it."
        )


def list_uploads(upload_dir: str | Path) -> list[dict[str, Any]]:
    """Meta of every stored upload, newest first."""
    metas = []
    for folder in Path(upload_dir).glob("upl_*"):
        try:
            metas.append(json.loads((folder / META).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return sorted(metas, key=lambda m: m.get("created_at", 0), reverse=True)


def file_extension(filename: str | None) -> str:
    """Lower-case extension of the client's file name (the only thing taken from it)."""
    return Path(str(filename or "").replace("\\", "/")).suffix.lower()


def display_name(filename: str | None) -> str:
    """The client's base name, cleaned, for display only; never used as a path."""
    base = str(filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"[\x00-\x1f\x7f]", "", base)[:200]


def _copy_limited(stream: IO[bytes], target: Path, max_bytes: int) -> tuple[int, str]:
    """Copy at most max_bytes; UploadTooLarge past that."""
    digest, size = hashlib.sha256(), 0
    with open(target, "xb") as out:
        while chunk := stream.read(1024 * 1024):
            size += len(chunk)
            if size > max_bytes:
                raise UploadTooLarge(f"The file is larger than the limit of {max_bytes // (1024 * 1024)} MB.")
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def _inspect(kind: str, path: Path, limits: UploadLimits, recognise: ModelRecogniser) -> dict[str, Any]:
    """What a stored file of one kind holds; a teacher (checkpoint, model ZIP) with its model_hint."""
    if kind in ("checkpoint", "safetensors"):
        return _inspect_checkpoint(path, limits, recognise)
    if kind == "zip":
        return _inspect_zip(path, limits, recognise)
    return _DATASET_INSPECTORS[kind](path, limits)


def _inspect_zip(path: Path, limits: UploadLimits, recognise: ModelRecogniser) -> dict[str, Any]:
    with open_checked_zip(path, limits, verify=True) as zf:
        entries = _file_entries(zf)
        if _model_root(entries) is not None:
            return _inspect_model_zip(zf, entries, limits, recognise)
        return _inspect_image_zip(zf, entries, limits)


_DATASET_INSPECTORS: dict[str, Callable[[Path, UploadLimits], dict[str, Any]]] = {
    "csv": _inspect_csv,
    "npz": _inspect_npz,
}

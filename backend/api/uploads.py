"""File uploads: datasets (CSV, ZIP of class folders, NPZ) and teacher checkpoints."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO

from flask import Blueprint, Request, current_app, jsonify, request

from backend.api.common import check_disk_room
from backend.api.errors import ApiError
from backend.data import uploads as store
from backend.jobs import disk
from backend.jobs.store import iso_time
from backend.models.registry import model_for_checkpoint, model_for_hf_type

bp = Blueprint("uploads", __name__)
# An uploaded teacher's model_hint: which registered model its tensor names or config model_type look like.
RECOGNISER = store.ModelRecogniser(from_state_keys=model_for_checkpoint, from_hf_type=model_for_hf_type)


class UploadRequest(Request):
    """Spools large multipart files inside the upload directory, not the system temp dir."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        incoming = Path(current_app.config["UPLOAD_DIR"]) / ".incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        return tempfile.SpooledTemporaryFile(max_size=1024 * 1024, mode="rb+", dir=incoming)


def limits() -> store.UploadLimits:
    """The app's upload limits."""
    cfg = current_app.config
    return store.UploadLimits(
        max_bytes=int(cfg["MAX_CONTENT_LENGTH"]),
        max_zip_entries=int(cfg["MAX_ZIP_ENTRIES"]),
        max_uncompressed_bytes=int(cfg["MAX_UNCOMPRESSED_MB"]) * 1024 * 1024,
        max_tensor_bytes=int(cfg["MAX_TENSOR_MB"]) * 1024 * 1024,
    )


@bp.post("/upload")
def upload():
    """Check and store one file (multipart field `file`); 201 with what was found, 507 when the disk is full."""
    if not request.mimetype.startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_media_type", "Send the file as multipart/form-data in a field named 'file'.")
    check_disk_room()  # before the body is read: it is spooled to the upload dir
    try:
        incoming = request.files.get("file")
    except OSError as exc:  # the spooled body filled the disk (other failures are the handler's 500)
        if not disk.is_disk_full(exc):
            raise
        raise disk_full() from None
    if incoming is None:
        raise ApiError(400, "missing_file", "No file: send it as multipart/form-data in a field named 'file'.")
    try:
        meta = store.save_upload(
            current_app.config["UPLOAD_DIR"], incoming.filename, incoming.stream, limits(), RECOGNISER
        )
    except store.UploadError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    except OSError as exc:  # nothing stays behind: save_upload removes its staging folder
        if not disk.is_disk_full(exc):
            raise
        raise disk_full() from None
    finally:
        incoming.close()
    return jsonify(_public(meta)), 201, {"Location": f"/uploads/{meta['upload_id']}"}


@bp.get("/uploads")
def list_uploads():
    """Every stored upload, newest first."""
    metas = [_public(m) for m in store.list_uploads(current_app.config["UPLOAD_DIR"])]
    return jsonify({"uploads": metas, "count": len(metas)})


@bp.get("/uploads/<upload_id>")
def upload_detail(upload_id: str):
    """What was found in one upload."""
    try:
        _, meta = store.resolve_upload(current_app.config["UPLOAD_DIR"], upload_id)
    except store.UploadNotFound as exc:
        raise ApiError(404, exc.code, str(exc)) from None
    return jsonify(_public(meta))


@bp.delete("/uploads/<upload_id>")
def delete_upload(upload_id: str):
    """Remove an upload and every file made from it; 204, 404 unknown, 409 while a queued/running job uses it."""
    jobs = current_app.extensions["jobs"]
    try:
        store.delete_upload(current_app.config["UPLOAD_DIR"], upload_id, jobs.jobs_using_upload)
    except store.UploadError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    for kind in ("teachers", "students"):  # the models trained on it
        disk.remove_cached_of_dataset(jobs.cache_dir / kind, upload_id)
    return "", 204


def disk_full() -> ApiError:
    """507 for an upload that filled the disk (the partial file is gone; earlier uploads are untouched)."""
    free = disk.free_bytes(current_app.config["UPLOAD_DIR"])
    return ApiError(
        507,
        "insufficient_storage",
        f"The server's disk filled up while storing the file ({disk.human_bytes(free)} free now); nothing was "
        "stored. Delete old jobs or uploads and retry.",
        disk_free_bytes=free,
    )


def _public(meta: dict) -> dict:
    data = {k: v for k, v in meta.items() if k != "stored_name"}
    data["created_at"] = iso_time(meta.get("created_at"))
    return data

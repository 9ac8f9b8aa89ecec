"""Helpers shared by the blueprints: the job manager, JSON bodies, picking a job."""

from __future__ import annotations

from typing import Any

from flask import current_app, request

from backend.api.errors import ApiError
from backend.echo import clip
from backend.jobs import SUCCEEDED, ArtifactAltered, JobManager, JobNotFound, JobRecord, disk
from backend.models.registry import UnknownModelError, resolve_model_name

TRUE_WORDS = {"1", "true", "yes", "on"}


def manager() -> JobManager:
    """The app's job manager."""
    return current_app.extensions["jobs"]


def json_body(*, required: bool = True) -> dict[str, Any]:
    """The request's JSON object; 400 when it is not one (an empty body is {} unless required)."""
    if not request.get_data(cache=True):
        if required:
            raise ApiError(400, "invalid_body", "The request body must be a JSON object.")
        return {}
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "The request body must be a JSON object.")
    return data


def arg(name: str, body: dict[str, Any] | None = None) -> Any:
    """A parameter from the JSON body, else from the query string."""
    if body is not None and body.get(name) is not None:
        return body[name]
    return request.args.get(name)


def get_job(job_id: Any) -> JobRecord:
    """A job by id, or 404."""
    if not isinstance(job_id, str):
        raise ApiError(400, "invalid_option", "job_id must be a string.", field="job_id")
    try:
        return manager().get(job_id)
    except JobNotFound:
        raise ApiError(404, "job_not_found", f"No job with id '{clip(job_id)}'; GET /jobs lists the jobs.") from None


def finished_job(body: dict[str, Any] | None = None) -> JobRecord:
    """The job named by job_id, else the latest succeeded one (of model_name, if given); 404/409 otherwise."""
    job_id = arg("job_id", body)
    if job_id not in (None, ""):
        record = get_job(job_id)
        if record.state != SUCCEEDED:
            raise ApiError(
                409,
                "job_not_succeeded",
                f"Job {record.id} is {record.state}; results exist only for succeeded jobs.",
                state=record.state,
            )
        return record
    model_name = model_filter(arg("model_name", body))
    record = manager().latest_succeeded(model_name)
    if record is None:
        which = f" for {model_name}" if model_name else ""
        raise ApiError(
            404,
            "no_results",
            f"No succeeded job{which} yet: start one with POST /train and wait "
            "for it to finish (GET /jobs shows its state).",
        )
    return record


def disk_state() -> dict[str, Any]:
    """Free bytes on the data and upload dirs' filesystems (the smaller of the two) and the floor, in bytes."""
    cfg = current_app.config
    free = min(disk.free_bytes(cfg["DATA_DIR"]), disk.free_bytes(cfg["UPLOAD_DIR"]))
    return {"disk_free_bytes": free, "min_free_disk_bytes": int(float(cfg["MIN_FREE_DISK_MB"]) * 2**20)}


def check_disk_room() -> None:
    """507 while the data or upload dir's filesystem has less free space than MIN_FREE_DISK_MB: a job or an
    upload admitted now could fill the disk under the jobs, uploads and database already there."""
    state = disk_state()
    if state["disk_free_bytes"] < state["min_free_disk_bytes"]:
        raise ApiError(
            507,
            "insufficient_storage",
            f"Only {disk.human_bytes(state['disk_free_bytes'])} free on the server's data disk, below its floor of "
            f"{disk.human_bytes(state['min_free_disk_bytes'])} (MIN_FREE_DISK_MB); delete old jobs or uploads "
            "(DELETE /jobs/<id>, DELETE /uploads/<id>) and retry.",
            **state,
        )


def model_filter(name: Any) -> str | None:
    if name in (None, ""):
        return None
    try:
        return resolve_model_name(name)
    except UnknownModelError as exc:
        raise ApiError(400, "invalid_option", str(exc), field="model_name") from None


def artifact(record: JobRecord, name: str):
    """Path of a job artifact; 404 naming it when missing, 409 when it no longer matches the job's digest."""
    try:
        return manager().artifact_path(record, name)
    except FileNotFoundError:
        raise ApiError(404, "artifact_missing", f"Job {record.id} has no {name} file.") from None
    except ArtifactAltered as exc:
        raise altered(exc) from None


def altered(exc: ArtifactAltered) -> ApiError:
    """409 for a job file that no longer matches the digest its job wrote."""
    return ApiError(
        409,
        "artifact_altered",
        f"{exc} Run the job again (POST /train with the same options) for a trustworthy copy.",
    )

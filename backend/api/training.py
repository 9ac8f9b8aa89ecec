"""Training jobs: start, cancel, list, inspect."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from backend.api.common import arg, check_disk_room, get_job, json_body, manager, model_filter
from backend.api.errors import ApiError
from backend.data.uploads import DATASET_KINDS, TEACHER_KINDS, UploadNotFound, resolve_upload
from backend.jobconfig import ConfigError, JobConfig
from backend.jobs import STATES, JobNotFound, JobStateError
from backend.models.registry import get_model_spec

bp = Blueprint("training", __name__)
QUEUE_RETRY_AFTER_S = 30
BROKER_RETRY_AFTER_S = 10


@bp.post("/train")
def train():
    """Validate the options and queue a job; 202 at once, 503 while the broker is down, 429 when the queue is full,
    507 when the disk is."""
    body = json_body()
    admit_jobs()
    check_disk_room()
    if isinstance(body, dict) and body.get("device") is None:  # the server's default (--device, KD_DEVICE)
        body = {**body, "device": current_app.config.get("DEVICE", "auto")}
    try:
        config = JobConfig.from_dict(body)
    except ConfigError as exc:
        raise ApiError(400, "invalid_option", str(exc), field=exc.field) from None
    _check_uploads(config)
    _check_public_dataset(config)
    record = manager().submit(config)
    answer = {
        "job_id": record.id,
        "status": record.state,
        "model_name": config.model_name,
        "queue_position": manager().queue_position(record.id),
        "config": config.to_dict(),
        "links": {
            "job": f"/jobs/{record.id}",
            "cancel": "/cancel_training",
            "evaluate": f"/evaluate?job_id={record.id}",
        },
    }
    return jsonify(answer), 202, {"Location": f"/jobs/{record.id}"}


def admit_jobs(jobs: int = 1) -> None:
    """Refuse new jobs while the broker is down (503) or the queue is full (429); nothing is stored either way."""
    check_broker()
    check_queue_room(jobs)


def check_broker() -> None:
    """503 with Retry-After while the job broker (--broker) does not answer: a job accepted now could not be sent."""
    if manager().broker_state() == "down":
        raise ApiError(
            503,
            "broker_unavailable",
            "The job broker (Redis) does not answer; jobs already accepted are kept and run when it is back. "
            "Retry later.",
            headers={"Retry-After": str(BROKER_RETRY_AFTER_S)},
        )


def check_queue_room(jobs: int = 1) -> None:
    """429 with Retry-After unless `jobs` more fit under MAX_QUEUED_JOBS: one caller cannot queue unbounded work.

    A study's points are admitted together or not at all: into an empty queue a study larger than the cap still
    fits (its grid is capped too), otherwise all its points must fit under the cap. So the queue never holds more
    than the larger of the cap and one study.
    """
    cap, waiting = int(current_app.config["MAX_QUEUED_JOBS"]), manager().queue_length()
    if waiting >= cap or (waiting > 0 and waiting + jobs > cap):
        raise ApiError(
            429,
            "queue_full",
            f"{cap} jobs are already waiting (MAX_QUEUED_JOBS); retry when one has started, or cancel one.",
            headers={"Retry-After": str(QUEUE_RETRY_AFTER_S)},
        )


def _check_uploads(config: JobConfig) -> None:
    """Uploads named in the options exist and fit the model."""
    family = get_model_spec(config.model_name).family
    if config.dataset_is_upload:
        _check_upload("dataset", config.dataset, DATASET_KINDS[family], f"a {family} dataset")
    if config.teacher_upload_id is not None:
        _check_upload("teacher_upload_id", config.teacher_upload_id, TEACHER_KINDS, "a checkpoint or model ZIP")


def _check_public_dataset(config: JobConfig) -> None:
    """A public dataset must be cached here, or the machine online to download it (400 naming the folder)."""
    from pathlib import Path

    from backend.data import public

    root = Path(current_app.config["DATA_DIR"]) / "cache" / "datasets"
    if config.dataset in public.PUBLIC and not public.is_cached(config.dataset, root) and public.offline():
        raise ApiError(400, "dataset_unavailable", public.unavailable_message(config.dataset, root), field="dataset")


def _check_upload(field: str, upload_id: str, kinds: tuple[str, ...], what: str) -> None:
    try:
        _, meta = resolve_upload(current_app.config["UPLOAD_DIR"], upload_id)
    except UploadNotFound as exc:
        raise ApiError(404, "upload_not_found", str(exc), field=field) from None
    if meta.get("kind") not in kinds:
        raise ApiError(
            400,
            "invalid_option",
            f"{field}: upload {upload_id} is a {meta.get('kind')}, not {what} (valid kinds: {list(kinds)}).",
            field=field,
        )


@bp.post("/cancel_training")
def cancel_training():
    """Cancel the named job (default: the running one)."""
    body = json_body(required=False)
    job_id = arg("job_id", body)
    if job_id not in (None, ""):
        get_job(job_id)  # 404 for an unknown id
    try:
        record = manager().cancel(job_id or None)
    except JobStateError as exc:
        raise ApiError(409, "conflict", str(exc), state=exc.state) from None
    status = record.state if record.finished else "cancelling"
    return jsonify({"job_id": record.id, "status": status, "state": record.state, "phase": record.phase})


@bp.get("/jobs")
def list_jobs():
    """Jobs, newest first; filters state, model_name, limit."""
    state = request.args.get("state")
    if state is not None and state not in STATES:
        raise ApiError(400, "invalid_option", f"state must be one of {list(STATES)}.", field="state")
    limit = _limit(request.args.get("limit"))
    model_name = model_filter(request.args.get("model_name"))
    jobs = [_public(r) for r in manager().list_jobs(state=state, model_name=model_name, limit=limit)]
    return jsonify(
        {
            "jobs": jobs,
            "count": len(jobs),
            "queue_length": manager().queue_length(),
            "running_job_id": manager().running_job_id(),
        }
    )


@bp.get("/jobs/<job_id>")
def job_detail(job_id: str):
    """One job: state, phase, progress, timings, error, artifacts, and the history of its states."""
    data = _public(get_job(job_id))
    data["history"] = manager().store.history(job_id)
    return jsonify(data)


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str):
    """Remove a finished job: its row and every file (report, bundle, plots); 204, 404 unknown, 409 if active."""
    get_job(job_id)  # 404 for an unknown id
    try:
        manager().delete(job_id)
    except JobNotFound:
        raise ApiError(404, "job_not_found", f"No job with id {job_id!r}; GET /jobs lists the jobs.") from None
    except JobStateError as exc:
        raise ApiError(409, "conflict", str(exc), state=exc.state) from None
    return "", 204


def _public(record) -> dict[str, Any]:
    data = record.to_public()
    data["queue_position"] = manager().queue_position(record.id)
    return data


def _limit(raw: str | None) -> int:
    if raw is None:
        return 50
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise ApiError(400, "invalid_option", "limit must be an integer between 1 and 1000.", field="limit")
    return value

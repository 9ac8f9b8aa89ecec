"""Compression studies: sweep a grid of options as ordinary jobs; table, Pareto frontier, CSV, MATLAB, plots."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, send_file

from backend.api.common import check_disk_room, json_body, manager
from backend.api.errors import ApiError
from backend.api.training import admit_jobs
from backend.jobconfig import ConfigError, study_axes
from backend.jobs import JobStateError, jsonable
from backend.jobs.studies import MAX_POINTS, StudyNotFound, StudyRecord, StudyService
from backend.metrics.study import STUDY_PLOT_KINDS, render_study_plot, study_csv
from backend.metrics.study import study_matlab as matlab_of_rows  # this module's study_matlab wraps it

bp = Blueprint("studies", __name__)

STUDY_README = """KD-Pruning Simulator: compression study {study_id} ({model}, {points} points)

Files
  study.csv             one line per point: grid values, measured figures, Pareto flags (empty = not measured)
  study.json            the same table as JSON, with the study's state and grid
  matlab_study.json     {{"matlab_data": ...}} for MATLAB's jsondecode: grid_axes, columns, points (rows = points)
  plots/pareto.png      accuracy vs batch-1 latency, the Pareto frontier highlighted
  plots/study_sparsity.png  accuracy vs sparsity, one line per structural ratio

Every figure was measured by the point's own job (GET /evaluate?job_id=... has its full report).
pareto_latency / pareto_size: no other point is at least as accurate and at least as fast (small), one strictly.
"""


def service() -> StudyService:
    """The app's study service."""
    return current_app.extensions["studies"]


def get_study(study_id: Any) -> StudyRecord:
    """A study by id, or 404."""
    try:
        return service().get(study_id)
    except StudyNotFound as exc:
        raise ApiError(404, "study_not_found", str(exc)) from None


@bp.post("/studies")
def create_study():
    """Validate every point of the grid, then queue them all as jobs; 202 {study_id, job_ids}."""
    body = json_body()
    check_disk_room()
    try:
        study = service().create(body, admit=admit_jobs)
    except ConfigError as exc:
        raise ApiError(400, "invalid_option", str(exc), field=exc.field) from None
    answer = {
        "study_id": study.id,
        "job_ids": study.job_ids,
        "points_total": len(study.points),
        "points_done": 0,
        "state": "queued",
        "grid": study.grid,
        "links": {
            "study": f"/studies/{study.id}",
            "cancel": f"/studies/{study.id}/cancel",
            "csv": f"/studies/{study.id}?format=csv",
            "matlab": f"/matlab_metrics?study_id={study.id}",
            "pareto": f"/visualize?kind=pareto&study_id={study.id}",
        },
    }
    return jsonify(answer), 202, {"Location": f"/studies/{study.id}"}


@bp.get("/studies")
def list_studies():
    """Studies, newest first, with state and points done/total."""
    studies = [service().summary(s) for s in service().store.list()]
    return jsonify({"studies": studies, "count": len(studies), "max_points": MAX_POINTS})


@bp.get("/studies/<study_id>")
def study_detail(study_id: str):
    """State, points done/total, one row per point with measured results and Pareto flags (?format=csv: CSV)."""
    study = get_study(study_id)
    if request.args.get("format") == "csv":
        return study_csv_response(study)
    return jsonify(jsonable(service().detail(study)))


def study_csv_response(study: StudyRecord) -> Response:
    return Response(
        study_csv(service().rows(study), study_axes()),
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename={study.id}.csv"},
    )


@bp.post("/studies/<study_id>/cancel")
def cancel_study(study_id: str):
    """Cancel the points not finished; finished points and their results are kept."""
    study = get_study(study_id)
    service().cancel(study)
    return jsonify(jsonable(service().summary(get_study(study_id))))


@bp.delete("/studies/<study_id>")
def delete_study(study_id: str):
    """Delete a finished study (409 while a point is queued or running); its jobs too where jobs can be deleted."""
    study = get_study(study_id)
    rows = service().rows(study)
    active = [r["job_id"] for r in rows if r["state"] in ("queued", "running")]
    if active:
        raise ApiError(
            409,
            "study_active",
            f"Study {study.id} has {len(active)} point(s) queued or running; "
            f"cancel it first (POST /studies/{study.id}/cancel).",
            state="running",
        )
    deleted, delete = [], getattr(manager(), "delete", None)
    if callable(delete) and request.args.get("keep_jobs") not in ("1", "true"):
        for row in rows:
            if row["state"] == "deleted":
                continue
            try:
                delete(row["job_id"])
                deleted.append(row["job_id"])
            except (JobStateError, LookupError):  # gone meanwhile, or in use: it stays in /jobs
                continue
    service().store.delete(study.id)
    note = None if callable(delete) else "jobs are kept: this server has no job deletion; they stay in /jobs"
    return jsonify({"study_id": study.id, "deleted": True, "jobs_deleted": deleted, "note": note})


# -- used by /visualize, /matlab_metrics and /download when they get a study_id ----------------------


def study_plot(study_id: Any, kind: str) -> Response:
    """PNG of a study (kind pareto or study_sparsity)."""
    study = get_study(study_id)
    png = render_study_plot(service().rows(study), kind, _title(study, kind))
    return send_file(io.BytesIO(png), mimetype="image/png", download_name=f"{study.id}_{kind}.png")


def _title(study: StudyRecord, kind: str) -> str:
    what = "accuracy vs batch-1 latency" if kind == "pareto" else "accuracy vs sparsity"
    return f"{study.model_name} study {study.id}: {what}"


def study_matlab(study_id: Any) -> dict[str, Any]:
    """{"matlab_data": ...} of a study: numeric matrices, rows = points."""
    study = get_study(study_id)
    data = matlab_of_rows(service().rows(study), study.grid, study_axes())
    return {"matlab_data": jsonable({"study_id": study.id, "model_name": study.model_name, **data})}


def study_bundle(study_id: Any) -> Response:
    """ZIP: CSV, table JSON, MATLAB data, both PNGs, README."""
    study = get_study(study_id)
    rows = service().rows(study)
    detail = service().detail(study)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("study.csv", study_csv(rows, study_axes()))
        zf.writestr("study.json", json.dumps(jsonable(detail), indent=2, allow_nan=False))
        zf.writestr("matlab_study.json", json.dumps(study_matlab(study.id), allow_nan=False))
        for kind in STUDY_PLOT_KINDS:
            zf.writestr(f"plots/{kind}.png", render_study_plot(rows, kind, _title(study, kind)))
        zf.writestr("README.txt", STUDY_README.format(study_id=study.id, model=study.model_name, points=len(rows)))
    buffer.seek(0)
    return send_file(
        buffer, mimetype="application/zip", as_attachment=True, download_name=f"{study.model_name}_{study.id}.zip"
    )

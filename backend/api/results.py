"""Results of succeeded jobs: the report, MATLAB data, plots and the download bundle."""

from __future__ import annotations

import io
import json
from functools import lru_cache
from typing import Any

from flask import Blueprint, current_app, jsonify, request, send_file

from backend.api.common import TRUE_WORDS, altered, arg, artifact, finished_job, json_body, manager
from backend.api.errors import ApiError
from backend.api.studies import study_bundle, study_matlab, study_plot
from backend.echo import clip
from backend.jobs import ArtifactAltered, JobRecord, jsonable
from backend.metrics.matlab import matlab_all_models
from backend.metrics.plots import PLOT_KINDS
from backend.metrics.study import STUDY_PLOT_KINDS

bp = Blueprint("results", __name__)


@bp.get("/evaluate")
def evaluate():
    """The full report of ?job_id= (default: the latest succeeded job)."""
    record = finished_job()
    path = artifact(record, "report")  # 404 missing, 409 altered (its digest checked)
    try:
        stat = path.stat()
        body = _report_body(str(path), stat.st_mtime_ns, stat.st_size)
    except (OSError, ValueError):
        raise ApiError(404, "artifact_missing", f"The report of job {record.id} is missing or unreadable.") from None
    return current_app.response_class(body, mimetype="application/json")


@lru_cache(maxsize=32)
def _report_body(path: str, mtime_ns: int, size: int) -> str:
    """The report file as the JSON answer, made once per file version: a succeeded job's report never changes,
    and parsing and re-encoding it (tens of KB) was most of the API's work under clients polling /evaluate."""
    with open(path, encoding="utf-8") as f:
        return current_app.json.dumps(jsonable(json.load(f))) + "\n"


@bp.get("/matlab_metrics")
def matlab_metrics():
    """{"matlab_data": ...} of one job, or with ?all=1 the latest job of every model."""
    if request.args.get("study_id"):  # a compression study: numeric matrices, rows = points
        return jsonify(study_matlab(request.args["study_id"]))
    if str(request.args.get("all", "")).lower() in TRUE_WORDS:
        latest = manager().latest_succeeded_per_model()
        if not latest:
            finished_job()  # the same 404 as for a single job
        reports = {model: _report(record) for model, record in latest.items()}
        return jsonify({"matlab_data": jsonable(matlab_all_models(reports))})
    return jsonify({"matlab_data": _matlab_of(finished_job())})


def _matlab_of(record: JobRecord) -> dict[str, Any]:
    """The job's matlab_metrics.json as written by the job; 404 when it is missing."""
    try:
        data = json.loads(artifact(record, "matlab").read_text(encoding="utf-8"))
    except ValueError:
        raise ApiError(404, "artifact_missing", f"The matlab file of job {record.id} is unreadable.") from None
    if isinstance(data, dict) and set(data) == {"matlab_data"}:
        data = data["matlab_data"]
    return jsonable(data)


@bp.route("/visualize", methods=["GET", "POST"])
def visualize():
    """A PNG plot of a job: JSON {job_id?, kind?} (or query parameters); no kind: the overview figure."""
    body = json_body(required=False) if request.method == "POST" else None
    kind = arg("kind", body)
    if arg("study_id", body) not in (None, ""):  # a study's plots: kind pareto or study_sparsity
        kind = kind or STUDY_PLOT_KINDS[0]
        if kind not in STUDY_PLOT_KINDS:
            raise ApiError(
                400,
                "invalid_option",
                f"with study_id, kind must be one of {list(STUDY_PLOT_KINDS)}, got '{clip(kind)}'.",
                field="kind",
            )
        return study_plot(arg("study_id", body), kind)
    if kind in (None, ""):
        kind = "overview"
    if kind not in PLOT_KINDS:
        raise ApiError(
            400, "invalid_option", f"kind must be one of {list(PLOT_KINDS)}, got '{clip(kind)}'.", field="kind"
        )
    record = finished_job(body)
    png = artifact(record, f"plots/{kind}").read_bytes()  # the job drew every kind: served, never redrawn here
    return send_file(io.BytesIO(png), mimetype="image/png", download_name=f"{record.id}_{kind}.png")


@bp.get("/download")
def download():
    """The job's bundle: student model, report, MATLAB data, CSV, plots, README (?study_id=: a study's bundle)."""
    if request.args.get("study_id"):
        return study_bundle(request.args["study_id"])
    record = finished_job()
    path = artifact(record, "bundle")
    return send_file(
        path, mimetype="application/zip", as_attachment=True, download_name=f"{record.model_name}_{record.id}.zip"
    )


def _report(record: JobRecord) -> dict[str, Any]:
    try:
        return jsonable(manager().report(record))
    except ArtifactAltered as exc:
        raise altered(exc) from None
    except (FileNotFoundError, ValueError):
        raise ApiError(404, "artifact_missing", f"The report of job {record.id} is missing or unreadable.") from None

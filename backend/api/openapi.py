"""GET /openapi.json: an OpenAPI 3 description of every endpoint (a test checks it against app.url_map)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from backend import __version__
from backend.jobconfig import Option, job_options, model_help
from backend.jobs import STATES as JOB_STATES
from backend.jobs.studies import CHOSEN_BY_TARGET, MAX_POINTS, MAX_SEEDS, REQUIRED_AXES

bp = Blueprint("openapi", __name__)

JSON = "application/json"
STATES = list(JOB_STATES)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


JOB_SELECTION = [
    _query("job_id", "A job id; default: the latest succeeded job."),
    _query("model_name", "With no job_id: the latest succeeded job of this model."),
]
OBJ = {"type": "object"}


def train_options() -> dict[str, Any]:
    """The /train request body: one property per job option, from its declaration (backend/jobconfig.py)."""
    properties = {o.name: o.json_schema() for o in job_options()}
    properties["model_name"]["description"] = model_help()
    properties["pretrained"] = {
        "oneOf": [{"type": "boolean"}, properties["pretrained"]],
        "description": properties["pretrained"].get("description", ""),
    }
    return {"type": "object", "required": ["model_name"], "additionalProperties": False, "properties": properties}


def _axis(option: Option) -> dict[str, Any]:
    """A grid axis: a non-empty list of distinct values of the option."""
    item = {k: v for k, v in option.json_schema().items() if k not in ("description", "default")}
    item["type"] = option.type
    if "enum" in item:
        item["enum"] = [v for v in item["enum"] if v is not None]
    return {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_POINTS,
        "uniqueItems": True,
        "items": item,
        "description": f"values of {option.name} to sweep",
    }


def study_options() -> dict[str, Any]:
    """The /studies request body: the /train options, with the swept ones in `grid` (its axes: every study-axis
    option)."""
    axes = [o for o in job_options() if o.study_axis]
    grid = {
        "type": "object",
        "required": [a for a in REQUIRED_AXES if a not in CHOSEN_BY_TARGET],
        "additionalProperties": False,
        "description": f"values to sweep; every combination is a point (a job); at most {MAX_POINTS} points; "
        f"{' and '.join(REQUIRED_AXES)} are required, {' and '.join(CHOSEN_BY_TARGET)} not with a latency target",
        "properties": {o.name: _axis(o) for o in axes},
    }
    train = train_options()
    seed = train["properties"]["seed"]
    seeds = {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_SEEDS,
        "uniqueItems": True,
        "items": {k: v for k, v in seed.items() if k in ("type", "minimum", "maximum")},
        "description": "run every grid point once per seed; rows then report each metric's mean, standard deviation "
        "(<metric>_std) and 95% t-interval (<metric>_ci), the frontier is computed on the means, and separable: "
        "false marks a frontier point within the noise of one it dominates; not together with seed",
    }
    return {
        **train,
        "required": ["model_name", "grid"],
        "properties": {**train["properties"], "grid": grid, "seeds": seeds},
    }


STUDY_SELECTION = [_query("study_id", "A study id: the study's figure/data instead of a job's")]
STUDY_PATH = [{"name": "study_id", "in": "path", "required": True, "schema": {"type": "string"}}]
STUDY = {
    "type": "object",
    "required": ["study_id", "state", "points_total", "points_done", "job_ids"],
    "properties": {
        "study_id": {"type": "string"},
        "state": {"type": "string"},
        "points_total": {"type": "integer"},
        "points_done": {"type": "integer"},
        "job_ids": {"type": "array", "items": {"type": "string"}},
    },
}


def _study_paths() -> dict[str, Any]:
    """POST/GET /studies, one study, its CSV, cancel and delete."""
    s404 = _err("Unknown study")
    return {
        "/studies": {
            "post": {
                "summary": "Start a compression study: every grid point is queued as an ordinary job",
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("StudyOptions")}}},
                "responses": {
                    "202": _json(STUDY, "Queued: study_id and the job_ids of its points"),
                    "400": _err(f"Bad option or grid value (named), or more than {MAX_POINTS} points"),
                    "429": _err("The queue is full (MAX_QUEUED_JOBS): the whole study is refused"),
                    "507": _err(DISK_FLOOR),
                    "503": _err("The job broker (--broker) does not answer: the whole study is refused"),
                },
            },
            "get": {
                "summary": "Studies, newest first, with state and points done/total",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["studies"],
                            "properties": {"studies": {"type": "array", "items": STUDY}},
                        },
                        "Studies",
                    )
                },
            },
        },
        "/studies/{study_id}": {
            "get": {
                "summary": "A study: state, points done/total, one row per point with measured results and "
                "pareto_latency / pareto_size flags (format=csv: the table as CSV)",
                "parameters": STUDY_PATH + [_query("format", "csv: the table as CSV")],
                "responses": {
                    "200": {
                        "description": "The study (JSON), or CSV with format=csv",
                        "content": {JSON: {"schema": STUDY}, "text/csv": {"schema": {"type": "string"}}},
                    },
                    "404": s404,
                },
            },
            "delete": {
                "summary": "Delete a finished study (and its jobs where jobs can be deleted)",
                "parameters": STUDY_PATH,
                "responses": {
                    "200": _json(OBJ, "Deleted"),
                    "404": s404,
                    "409": _err("A point is queued or running: cancel first"),
                },
            },
        },
        "/studies/{study_id}/cancel": {
            "post": {
                "summary": "Cancel the points not finished; finished points are kept",
                "parameters": STUDY_PATH,
                "responses": {"200": _json(STUDY, "The study after cancelling"), "404": s404},
            }
        },
    }


def _schemas() -> dict[str, Any]:
    """The components' schemas (the option schemas are derived afresh: options may be registered at run time)."""
    return {**SCHEMAS, "TrainOptions": train_options(), "StudyOptions": study_options()}


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "Job": {
        "type": "object",
        "required": ["id", "model_name", "state", "phase", "config"],
        "properties": {
            "id": {"type": "string"},
            "model_name": {"type": "string"},
            "dataset": {"type": ["string", "null"]},
            "state": {"type": "string", "enum": STATES},
            "phase": {"type": "string"},
            "config": OBJ,
            "progress": OBJ,
            "created_at": {"type": "string"},
            "started_at": {"type": ["string", "null"]},
            "finished_at": {"type": ["string", "null"]},
            "duration_s": {"type": ["number", "null"]},
            "error": {"type": ["string", "null"]},
            "error_type": {"type": ["string", "null"]},
            "artifacts": {"type": "array", "items": {"type": "string"}},
            "phase_timings": OBJ,
            "summary": OBJ,
            "queue_position": {"type": ["integer", "null"]},
            "heartbeat_at": {"type": ["string", "null"], "description": "last heartbeat of the worker running it"},
            "history": {
                "type": "array",
                "description": "GET /jobs/<id> only: every state the job entered, in order (note: error_type)",
                "items": {
                    "type": "object",
                    "properties": {
                        "state": {"type": "string", "enum": STATES},
                        "at": {"type": "string"},
                        "note": {"type": ["string", "null"]},
                    },
                },
            },
            "worker": {
                "type": "object",
                "description": "the worker process that ran the job (empty until one takes it)",
                "properties": {
                    "name": {"type": "string"},
                    "host": {"type": "string"},
                    "device": {"type": "string"},
                    "pid": {"type": "integer"},
                    "mode": {"type": "string", "enum": ["local", "celery", "thread"]},
                },
            },
        },
    },
    "Upload": {
        "type": "object",
        "required": ["upload_id", "kind", "size_bytes"],
        "properties": {
            "upload_id": {"type": "string"},
            "kind": {"type": "string", "enum": ["csv", "image_zip", "model_zip", "checkpoint", "safetensors", "npz"]},
            "use_as": {"type": "string"},
            "size_bytes": {"type": "integer"},
            "filename": {"type": "string"},
        },
    },
}


def _paths() -> dict[str, Any]:
    job_404 = _err("Unknown job")
    return {
        "/": {
            "get": {
                "summary": "Dashboard: start, follow and compare jobs in the browser",
                "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}},
            }
        },
        "/test": {
            "get": {
                "summary": "Health: status, versions, device, threads, queue length",
                "responses": {"200": _json(OBJ, "Health")},
            }
        },
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _json(OBJ, "OpenAPI 3")}}},
        "/models": {
            "get": {
                "summary": "Models: ids, aliases, family, presets, datasets, defaults; option and service limits",
                "responses": {"200": _json(OBJ, "Models")},
            }
        },
        "/train": {
            "post": {
                "summary": "Queue a training job",
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("TrainOptions")}}},
                "responses": {
                    "202": _json(
                        {
                            "type": "object",
                            "required": ["job_id", "status"],
                            "properties": {"job_id": {"type": "string"}, "status": {"type": "string"}},
                        },
                        "Queued",
                    ),
                    "400": _err("Bad option (the message names it and its range or valid choices)"),
                    "404": _err("An upload_id in the options is unknown"),
                    "429": {**_err("The queue is full (MAX_QUEUED_JOBS)"), "headers": RETRY_AFTER},
                    "507": _err(DISK_FLOOR),
                    "503": {**_err("The job broker (--broker) does not answer; retry later"), "headers": RETRY_AFTER},
                },
            }
        },
        "/cancel_training": {
            "post": {
                "summary": "Cancel a job (default: the running job)",
                "requestBody": {
                    "required": False,
                    "content": {JSON: {"schema": {"type": "object", "properties": {"job_id": {"type": "string"}}}}},
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["job_id", "status"],
                            "properties": {"job_id": {"type": "string"}, "status": {"type": "string"}},
                        },
                        "Cancelled (or cancelling)",
                    ),
                    "400": _err("Bad body"),
                    "404": job_404,
                    "409": _err("Already finished, or nothing running"),
                },
            }
        },
        "/jobs": {
            "get": {
                "summary": "Jobs, newest first",
                "parameters": [
                    _query("state", "Filter by state", {"type": "string", "enum": STATES}),
                    _query("model_name", "Filter by model"),
                    _query("limit", "At most this many (1-1000)", {"type": "integer", "minimum": 1, "maximum": 1000}),
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["jobs"],
                            "properties": {"jobs": {"type": "array", "items": _ref("Job")}},
                        },
                        "Jobs",
                    ),
                    "400": _err("Bad filter"),
                },
            }
        },
        "/jobs/{job_id}": {
            "get": {
                "summary": "One job: state, phase, progress, timings, error",
                "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json(_ref("Job"), "The job"), "404": job_404},
            },
            "delete": {
                "summary": "Delete a finished job: its row and every file (report, bundle, plots)",
                "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "204": {"description": "Deleted; no body"},
                    "404": job_404,
                    "409": _err("Queued or running: cancel it first"),
                },
            },
        },
        "/evaluate": {
            "get": {
                "summary": "The full report of a succeeded job",
                "parameters": JOB_SELECTION,
                "responses": {
                    "200": _json(OBJ, "Report"),
                    "400": _err("Bad model_name"),
                    "404": _err("No such job, no succeeded job yet, or its report file is missing (artifact_missing)"),
                    "409": _err(
                        "The job has not succeeded, or its report no longer matches its digest (artifact_altered)"
                    ),
                },
            }
        },
        "/matlab_metrics": {
            "get": {
                "summary": "MATLAB-friendly metrics of a job, or (all=1) the latest job of every model",
                "parameters": JOB_SELECTION
                + STUDY_SELECTION
                + [_query("all", "1: the latest succeeded job of every model")],
                "responses": {
                    "200": _json(
                        {"type": "object", "required": ["matlab_data"], "properties": {"matlab_data": OBJ}},
                        "MATLAB data",
                    ),
                    "400": _err("Bad model_name"),
                    "404": _err(
                        "No such job, no succeeded job yet, or the file the job wrote is missing (artifact_missing)"
                    ),
                    "409": _err("The job has not succeeded"),
                },
            }
        },
        "/visualize": {
            m: {
                "summary": "A PNG plot of a succeeded job; no kind: the overview (teacher vs student, four groups)",
                **(
                    {
                        "requestBody": {
                            "required": False,
                            "content": {
                                JSON: {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "job_id": {"type": "string"},
                                            "study_id": {"type": "string"},
                                            "kind": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        }
                    }
                    if m == "post"
                    else {
                        "parameters": JOB_SELECTION
                        + STUDY_SELECTION
                        + [
                            _query(
                                "kind",
                                "Plot kind; default: overview; with study_id: pareto (default) or study_sparsity",
                            )
                        ]
                    }
                ),
                "responses": {
                    "200": {
                        "description": "PNG",
                        "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "400": _err("Unknown kind (the message lists them)"),
                    "404": _err(
                        "No such job, no succeeded job yet, or the file the job wrote is missing (artifact_missing)"
                    ),
                    "409": _err("The job has not succeeded"),
                },
            }
            for m in ("get", "post")
        },
        "/download": {
            "get": {
                "summary": "ZIP bundle: student model, report, MATLAB data, CSV, plots, README (or a study's bundle)",
                "parameters": JOB_SELECTION + STUDY_SELECTION,
                "responses": {
                    "200": {
                        "description": "ZIP",
                        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "400": _err("Bad model_name"),
                    "404": _err("No such job, or no succeeded job yet"),
                    "409": _err("The job has not succeeded"),
                },
            }
        },
        "/upload": {
            "post": {
                "summary": "Upload a dataset or checkpoint (multipart field 'file')",
                "description": "Every archive (ZIP, .npz, and torch checkpoints, which are ZIPs, also .bin weights "
                "inside model ZIPs) is checked before anything reads it: entry count, compression "
                "ratio, total unpacked size, intact members (CRC); checkpoints also the bytes of their "
                "tensors; legacy pickle checkpoints are refused. 400 names the refused entry.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {"file": {"type": "string", "format": "binary"}},
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json(_ref("Upload"), "Stored; says what was found"),
                    "400": _err("Refused: the message says why"),
                    "413": _err("Too large"),
                    "415": _err("Unsupported file type"),
                    "507": _err(DISK_FLOOR + ", or the file filled the disk (nothing stored)"),
                },
            }
        },
        "/uploads": {
            "get": {
                "summary": "Stored uploads, newest first",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["uploads"],
                            "properties": {"uploads": {"type": "array", "items": _ref("Upload")}},
                        },
                        "Uploads",
                    )
                },
            }
        },
        "/uploads/{upload_id}": {
            "get": {
                "summary": "One upload",
                "parameters": [{"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json(_ref("Upload"), "The upload"), "404": _err("Unknown upload")},
            },
            "delete": {
                "summary": "Delete an upload and every file made from it (extracted model, teachers trained on it)",
                "parameters": [{"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "204": {"description": "Deleted; no body"},
                    "404": _err("Unknown upload"),
                    "409": _err("A queued or running job uses it (dataset or teacher_upload_id)"),
                },
            },
        },
        "/test_model": {
            "post": {
                "summary": "Build a model, run one forward pass, return parameters, layers, size",
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "required": ["model_name"],
                                "properties": {"model_name": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {"200": _json(OBJ, "What was measured"), "400": _err("Unknown model_name")},
            }
        },
        **_study_paths(),
        "/test_metrics": {
            "get": {
                "summary": "Run the metrics code on a small model pair; the figures measured",
                "responses": {
                    "200": _json(OBJ, "What was measured"),
                    "429": {**_err("A run is in progress (one at a time)"), "headers": RETRY_AFTER},
                },
            }
        },
    }


DISK_FLOOR = "Free space below the floor (MIN_FREE_DISK_MB): insufficient_storage"
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}
PUBLIC_PATHS = {"/"}  # no token needed: the dashboard's page shell holds no data


def _guarded(paths: dict[str, Any]) -> dict[str, Any]:
    """The answers every operation may give because of the checks in backend/api/security.py."""
    for path, operations in paths.items():
        for method, op in operations.items():
            responses = op["responses"]
            if path not in PUBLIC_PATHS:
                op["security"] = [{}, {"bearerAuth": []}]  # the token is needed when the server has one
                responses.setdefault("401", _err("The server has an API token and the request lacks it"))
            responses.setdefault("421", _err("The Host header is not a name of this service"))
            if method in ("post", "put", "patch", "delete"):
                responses.setdefault("403", _err("The Origin header names a page that may not call the service"))
                responses.setdefault("413", _err("Body too large (1 MiB for JSON; MAX_UPLOAD_MB for /upload)"))
                responses.setdefault("415", _err("Wrong Content-Type (JSON bodies must be application/json)"))
                if path != "/upload":
                    responses.setdefault("400", _err("Bad body: not a JSON object, or nested deeper than 32"))
    return paths


def spec(server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI document."""
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "KD-Pruning Simulator",
            "version": __version__,
            "description": "Knowledge distillation plus pruning, measured. Errors are "
            '{"error": {"code", "message"}}. Socket.IO events: training_status, '
            "training_progress, training_metrics, training_error (each with job_id) and "
            "study_progress (study_id, points_done, points_total, state, latest: the row of the "
            "point that just ended) reach every connected client; 'join' with {job_id} or "
            "{study_id} narrows a client to what it joined (a study brings its jobs' events), "
            "'leave' undoes it, and each event arrives once. With a token, connect with "
            'auth={"token": ...}. Numeric options have the ranges '
            "shown in TrainOptions (also in GET /models, 'limits').",
        },
        "paths": _guarded(_paths()),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Only when the server was started with --api-token (KD_API_TOKEN)",
                }
            },
        },
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 description of this service."""
    return jsonify(spec(request.host_url.rstrip("/")))

"""GET /openapi.json: an OpenAPI 3 description of every endpoint (a test checks it against app.url_map)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from backend import __version__

bp = Blueprint("openapi", __name__)

JSON = "application/json"
STATES = ["queued", "running", "succeeded", "failed", "cancelled"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


JOB_SELECTION = [_query("job_id", "A job id; default: the latest succeeded job."),
                 _query("model_name", "With no job_id: the latest succeeded job of this model.")]
OBJ = {"type": "object"}

TRAIN_OPTIONS: dict[str, Any] = {
    "type": "object", "required": ["model_name"], "additionalProperties": False,
    "properties": {
        "model_name": {"type": "string", "description": "distilbert, t5-small, mobilenetv2, resnet18 or an alias"},
        "dataset": {"type": "string", "description": "a built-in dataset name or an upload_id"},
        "preset": {"type": "string", "enum": ["quick", "standard"]},
        "pretrained": {"oneOf": [{"type": "boolean"}, {"type": "string", "enum": ["auto", "true", "false"]}]},
        "teacher_upload_id": {"type": ["string", "null"]},
        "epochs": {"type": ["integer", "null"], "minimum": 0},
        "kd_epochs": {"type": ["integer", "null"], "minimum": 0},
        "finetune_epochs": {"type": ["integer", "null"], "minimum": 0},
        "temperature": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
        "alpha": {"type": "number", "minimum": 0, "maximum": 1},
        "sparsity": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "pruning_steps": {"type": "integer", "minimum": 1, "maximum": 20},
        "structural_ratio": {"type": ["number", "null"], "minimum": 0, "maximum": 0.95},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2147483647},
        "batch_size": {"type": ["integer", "null"], "minimum": 1, "maximum": 4096},
        "learning_rate": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1},
        "max_grad_norm": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000000},
        "max_samples": {"type": ["integer", "null"], "minimum": 20},
        "latency_runs": {"type": "integer", "minimum": 30, "maximum": 1000},
        "quantize": {"type": "string", "enum": ["none", "dynamic_int8"], "default": "none",
                     "description": "dynamic_int8: the exported student quantized by ONNX Runtime's quantize_dynamic "
                                    "and measured (size, accuracy, latency) as a third column, student_int8"},
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
    "TrainOptions": TRAIN_OPTIONS,
    "Job": {"type": "object", "required": ["id", "model_name", "state", "phase", "config"], "properties": {
        "id": {"type": "string"}, "model_name": {"type": "string"}, "dataset": {"type": ["string", "null"]},
        "state": {"type": "string", "enum": STATES}, "phase": {"type": "string"}, "config": OBJ,
        "progress": OBJ, "created_at": {"type": "string"}, "started_at": {"type": ["string", "null"]},
        "finished_at": {"type": ["string", "null"]}, "duration_s": {"type": ["number", "null"]},
        "error": {"type": ["string", "null"]}, "error_type": {"type": ["string", "null"]},
        "artifacts": {"type": "array", "items": {"type": "string"}}, "phase_timings": OBJ, "summary": OBJ,
        "queue_position": {"type": ["integer", "null"]}}},
    "Upload": {"type": "object", "required": ["upload_id", "kind", "size_bytes"], "properties": {
        "upload_id": {"type": "string"}, "kind": {"type": "string", "enum": [
            "csv", "image_zip", "model_zip", "checkpoint", "safetensors", "npz"]},
        "use_as": {"type": "string"}, "size_bytes": {"type": "integer"}, "filename": {"type": "string"}}},
}


def _paths() -> dict[str, Any]:
    job_404 = _err("Unknown job")
    return {
        "/": {"get": {"summary": "Dashboard: start, follow and compare jobs in the browser",
                      "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {
                          "type": "string"}}}}}}},
        "/test": {"get": {"summary": "Health: status, versions, device, threads, queue length",
                          "responses": {"200": _json(OBJ, "Health")}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _json(OBJ, "OpenAPI 3")}}},
        "/models": {"get": {"summary": "Models: ids, aliases, family, presets, datasets, defaults",
                            "responses": {"200": _json(OBJ, "Models")}}},
        "/train": {"post": {
            "summary": "Queue a training job", "requestBody": {"required": True, "content": {JSON: {
                "schema": _ref("TrainOptions")}}},
            "responses": {"202": _json({"type": "object", "required": ["job_id", "status"], "properties": {
                "job_id": {"type": "string"}, "status": {"type": "string"}}}, "Queued"),
                "400": _err("Bad option (the message names it and the valid choices)"),
                "404": _err("An upload_id in the options is unknown")}}},
        "/cancel_training": {"post": {
            "summary": "Cancel a job (default: the running job)",
            "requestBody": {"required": False, "content": {JSON: {"schema": {
                "type": "object", "properties": {"job_id": {"type": "string"}}}}}},
            "responses": {"200": _json({"type": "object", "required": ["job_id", "status"], "properties": {
                "job_id": {"type": "string"}, "status": {"type": "string"}}}, "Cancelled (or cancelling)"),
                "400": _err("Bad body"), "404": job_404, "409": _err("Already finished, or nothing running")}}},
        "/jobs": {"get": {
            "summary": "Jobs, newest first",
            "parameters": [_query("state", "Filter by state", {"type": "string", "enum": STATES}),
                           _query("model_name", "Filter by model"),
                           _query("limit", "At most this many (1-1000)", {"type": "integer", "minimum": 1,
                                                                          "maximum": 1000})],
            "responses": {"200": _json({"type": "object", "required": ["jobs"], "properties": {
                "jobs": {"type": "array", "items": _ref("Job")}}}, "Jobs"), "400": _err("Bad filter")}}},
        "/jobs/{job_id}": {"get": {
            "summary": "One job: state, phase, progress, timings, error",
            "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json(_ref("Job"), "The job"), "404": job_404}}},
        "/evaluate": {"get": {
            "summary": "The full report of a succeeded job", "parameters": JOB_SELECTION,
            "responses": {"200": _json(OBJ, "Report"), "400": _err("Bad model_name"), "404": _err(
                "No such job, or no succeeded job yet"), "409": _err("The job has not succeeded")}}},
        "/matlab_metrics": {"get": {
            "summary": "MATLAB-friendly metrics of a job, or (all=1) the latest job of every model",
            "parameters": JOB_SELECTION + [_query("all", "1: the latest succeeded job of every model")],
            "responses": {"200": _json({"type": "object", "required": ["matlab_data"], "properties": {
                "matlab_data": OBJ}}, "MATLAB data"), "400": _err("Bad model_name"),
                "404": _err("No such job, or no succeeded job yet"), "409": _err("The job has not succeeded")}}},
        "/visualize": {m: {
            "summary": "A PNG plot of a succeeded job",
            **({"requestBody": {"required": False, "content": {JSON: {"schema": {"type": "object", "properties": {
                "job_id": {"type": "string"}, "kind": {"type": "string"}}}}}}} if m == "post" else
               {"parameters": JOB_SELECTION + [_query("kind", "Plot kind")]}),
            "responses": {"200": {"description": "PNG", "content": {"image/png": {"schema": {
                "type": "string", "format": "binary"}}}}, "400": _err("Unknown kind (the message lists them)"),
                "404": _err("No such job, or no succeeded job yet"), "409": _err("The job has not succeeded")}}
            for m in ("get", "post")},
        "/download": {"get": {
            "summary": "ZIP bundle: student model, report, MATLAB data, CSV, plots, README",
            "parameters": JOB_SELECTION,
            "responses": {"200": {"description": "ZIP", "content": {"application/zip": {"schema": {
                "type": "string", "format": "binary"}}}}, "400": _err("Bad model_name"),
                "404": _err("No such job, or no succeeded job yet"), "409": _err("The job has not succeeded")}}},
        "/upload": {"post": {
            "summary": "Upload a dataset or checkpoint (multipart field 'file')",
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"], "properties": {"file": {"type": "string",
                                                                                "format": "binary"}}}}}},
            "responses": {"201": _json(_ref("Upload"), "Stored; says what was found"),
                          "400": _err("Refused: the message says why"), "413": _err("Too large"),
                          "415": _err("Unsupported file type")}}},
        "/uploads": {"get": {"summary": "Stored uploads, newest first", "responses": {"200": _json(
            {"type": "object", "required": ["uploads"], "properties": {"uploads": {
                "type": "array", "items": _ref("Upload")}}}, "Uploads")}}},
        "/uploads/{upload_id}": {"get": {
            "summary": "One upload", "parameters": [{"name": "upload_id", "in": "path", "required": True,
                                                     "schema": {"type": "string"}}],
            "responses": {"200": _json(_ref("Upload"), "The upload"), "404": _err("Unknown upload")}}},
        "/test_model": {"post": {
            "summary": "Build a model, run one forward pass, return parameters, layers, size",
            "requestBody": {"required": True, "content": {JSON: {"schema": {
                "type": "object", "required": ["model_name"], "properties": {"model_name": {"type": "string"}}}}}},
            "responses": {"200": _json(OBJ, "What was measured"), "400": _err("Unknown model_name")}}},
        "/test_metrics": {"get": {"summary": "Run the metrics code on a small model pair; the figures measured",
                                  "responses": {"200": _json(OBJ, "What was measured")}}},
    }


def spec(server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI document."""
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "KD-Pruning Simulator", "version": __version__,
                 "description": "Knowledge distillation plus pruning, measured. Errors are "
                                "{\"error\": {\"code\", \"message\"}}. Socket.IO events: training_status, "
                                "training_progress, training_metrics, training_error (each with job_id); emit "
                                "'join' with {job_id} to get one job's events only."},
        "paths": _paths(),
        "components": {"schemas": SCHEMAS},
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 description of this service."""
    return jsonify(spec(request.host_url.rstrip("/")))

"""JSON errors everywhere: {"error": {"code", "message"}} with the right status, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from backend.echo import clip
from backend.jobs.disk import is_disk_full

log = logging.getLogger(__name__)

MESSAGE_CHARS = 1000  # a safety net for messages that echo a value without clip()


class ApiError(Exception):
    """An error a client caused or can act on; carries status, a stable code and optional headers."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **details: Any
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers or {}


def _short_message(message: str) -> str:
    """Keep the start and the end (which lists the valid choices) of an over-long message."""
    if len(message) <= MESSAGE_CHARS:
        return message
    half = MESSAGE_CHARS // 2
    return f"{message[:half]} … {message[-half:]}"


def error_body(code: str, message: str, **details: Any) -> dict:
    """The one shape of every error answer; strings in it never echo large input."""
    body: dict[str, Any] = {"code": code, "message": _short_message(str(message))}
    body.update({k: clip(v) if isinstance(v, str) else v for k, v in details.items()})
    return {"error": body}


def register_error_handlers(app: Flask) -> None:
    """Turn every exception into a JSON answer."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return jsonify(error_body(exc.code, exc.message, **exc.details)), exc.status, exc.headers

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name
        if exc.code == 413:  # the limit of this request: uploads have their own, larger one
            limit = request.max_content_length or app.config["MAX_CONTENT_LENGTH"]
            message = f"Request body too large: the limit is {_size(limit)}."
        response = jsonify(error_body(code, message))
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return response, exc.code

    @app.errorhandler(Exception)
    def _unhandled(exc: Exception):
        if is_disk_full(exc):  # e.g. the jobs database could not grow: the API answers, and says why
            log.error("disk full: %s: %s", type(exc).__name__, exc)
            message = "The server's disk is full; nothing was stored. Delete old jobs or uploads and retry."
            return jsonify(error_body("insufficient_storage", message)), 507
        log.exception("unhandled error")
        return jsonify(error_body("internal_error", "Internal server error; the server log has the details.")), 500


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n / 1024:g} KiB"

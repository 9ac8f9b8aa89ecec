"""JSON errors everywhere: {"error": {"code", "message"}} with the right status, never a traceback."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error a client caused or can act on; carries status and a stable code."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_body(code: str, message: str, **details: Any) -> dict:
    """The one shape of every error answer."""
    body: dict[str, Any] = {"code": code, "message": message}
    body.update(details)
    return {"error": body}


def register_error_handlers(app: Flask) -> None:
    """Turn every exception into a JSON answer."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return jsonify(error_body(exc.code, exc.message, **exc.details)), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name
        if exc.code == 413:
            limit = app.config.get("MAX_UPLOAD_MB")
            message = f"Request body too large: the limit is {limit} MB."
        response = jsonify(error_body(code, message))
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return response, exc.code

    @app.errorhandler(Exception)
    def _unhandled(exc: Exception):
        log.exception("unhandled error")
        return jsonify(error_body("internal_error", "Internal server error; the server log has the details.")), 500

"""GET /: the dashboard page (backend/static/dashboard/), which drives the whole service from a browser.

Its CSS and script are plain static files, served by Flask's static route at /static/dashboard/; the
Socket.IO client is the pinned npm package that `npm ci` copies to /static/vendor/socket.io/, and the page
loads it from its own origin only. backend/static/ works from any other web server too (open
dashboard/index.html there): the page then takes the backend's address from ?api=, which it honours only for
its own origin, a loopback origin, or one the server allowlists (given to the page in <meta name="kd-origins">).
The page holds no inline script, as the Content-Security-Policy (script-src 'self') requires.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from flask import Blueprint, Response, current_app, request, url_for

from backend.api.errors import ApiError

bp = Blueprint("dashboard", __name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PAGE = STATIC_DIR / "dashboard" / "index.html"
SOCKETIO_CLIENT = STATIC_DIR / "vendor" / "socket.io" / "socket.io.min.js"
MARKER = "<!-- served-by-backend -->"


def _head() -> str:
    """What the backend adds to the page: where its files and the API are, and whether the client exists."""
    client = "present" if SOCKETIO_CLIENT.is_file() else "missing"
    origins = json.dumps(current_app.extensions["kd_guard"].public_origins())
    return (
        f'<base href="{escape(url_for("static", filename="dashboard/"))}">'
        f'<meta name="kd-api" content="{escape(request.script_root + "/")}">'
        f'<meta name="kd-socketio-client" content="{client}">'
        f'<meta name="kd-origins" content="{escape(origins)}">'
    )


@bp.get("/")
def index():
    """The dashboard page."""
    try:
        html = PAGE.read_text(encoding="utf-8")
    except OSError:
        raise ApiError(
            500,
            "dashboard_missing",
            "The dashboard page is missing from backend/static/dashboard/; the API itself works (GET /openapi.json).",
        ) from None
    response = Response(html.replace(MARKER, _head(), 1), mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    return response

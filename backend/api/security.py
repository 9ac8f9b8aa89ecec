"""Who may call the service, and with what: Host names, origins (CORS and Socket.IO), the optional bearer token,
request bodies (type, size, JSON depth) and the security headers of every response.

Defaults are safe for a local service: the served names are the loopback names plus the bound host; origins
are the page's own plus any `http://localhost:<port>`, `http://127.0.0.1:<port>` or `http://[::1]:<port>`;
no token is asked for unless API_TOKEN is set (app.main refuses a non-loopback address without one).
"""

from __future__ import annotations

import hmac
import json
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from backend.api.errors import ApiError, clip, error_body

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
LOOPBACK_ORIGIN = re.compile(r"^http://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Endpoints that hold no data: the dashboard's page shell and its static files load without the token,
# so that the page can ask for it.
PUBLIC_ENDPOINTS = frozenset({"dashboard.index", "static"})
UPLOAD_ENDPOINT = "uploads.upload"


def split_setting(setting: Any) -> list[str]:
    """A comma-separated setting (or a list) as a list of stripped, non-empty entries."""
    items = setting if isinstance(setting, (list, tuple, set)) else str(setting or "").split(",")
    return [str(i).strip() for i in items if str(i).strip()]


def host_name(host: str) -> str:
    """The name part of a Host header: 'Example.com:80' -> 'example.com', '[::1]:5001' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


class Guard:
    """The app's allowlists and token, and the checks built on them."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.origins = [o.rstrip("/") for o in split_setting(config.get("CORS_ORIGINS"))]
        if any("*" in o for o in self.origins):
            raise ValueError(
                "CORS_ORIGINS: '*' is not allowed; list the origins (scheme://host:port) that may "
                "call the service. Loopback origins (http://localhost:*, http://127.0.0.1:*) are "
                "always allowed."
            )
        self.hosts = set(LOOPBACK_HOSTS) | {host_name(h) for h in split_setting(config.get("ALLOWED_HOSTS"))}
        bound = host_name(str(config.get("HOST") or ""))
        if bound in WILDCARD_HOSTS:  # every interface: the machine's own name is served too
            self.hosts.add(host_name(socket.gethostname()))
        else:
            self.hosts.add(bound)
        self.token = str(config.get("API_TOKEN") or "")

    def host_allowed(self, host: str | None) -> bool:
        """Whether a Host header names this service (DNS rebinding sends a foreign name)."""
        if not host:  # no Host header: no browser, so no rebinding
            return True
        return "*" in self.hosts or host_name(host) in self.hosts

    def origin_allowed(self, origin: str | None, environ: Mapping[str, Any] | None = None) -> bool:
        """Loopback origins, the configured ones, and the page's own (for python-engineio too)."""
        if not origin:
            return False
        origin = origin.rstrip("/")
        if LOOPBACK_ORIGIN.match(origin) or origin in self.origins:
            return True
        if environ is None:
            return False
        host = environ.get("HTTP_HOST", "")
        return self.host_allowed(host) and origin == f"{environ.get('wsgi.url_scheme', 'http')}://{host}"

    def token_ok(self, supplied: str | None) -> bool:
        """True when no token is set, or the supplied one matches (constant-time)."""
        if not self.token:
            return True
        return bool(supplied) and hmac.compare_digest(supplied.encode("utf-8"), self.token.encode("utf-8"))

    def csp(self) -> str:
        """Content-Security-Policy of every response: own scripts only; the API on allowlisted origins."""
        connect = ["'self'", "http://localhost:*", "http://127.0.0.1:*", "ws://localhost:*", "ws://127.0.0.1:*"]
        for origin in self.origins:
            connect += [origin, re.sub(r"^http", "ws", origin)]
        return (
            "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors "
            f"'none'; form-action 'self'; img-src 'self' data: blob:; style-src 'self'; "
            f"connect-src {' '.join(connect)}"
        )

    def public_origins(self) -> list[str]:
        """What the dashboard may be pointed at with ?api= besides its own origin and loopback."""
        return list(self.origins)


class GuardMiddleware:
    """WSGI: 421 for a foreign Host and security headers on every answer, Socket.IO's and static files too."""

    def __init__(self, wsgi_app: Callable, guard: Guard) -> None:
        self.wsgi_app, self.guard = wsgi_app, guard
        self.headers = [
            ("Content-Security-Policy", guard.csp()),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "no-referrer"),
        ]

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        def with_headers(status: str, headers: list, exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            headers.extend(h for h in self.headers if h[0].lower() not in present)
            return start_response(status, headers, exc_info)

        host = environ.get("HTTP_HOST")
        if not self.guard.host_allowed(host):
            body = json.dumps(
                error_body(
                    "misdirected_request",
                    f"Host {clip(host)!r} is not a name of this service; add it with "
                    "--allowed-hosts (KD_ALLOWED_HOSTS) if it is.",
                )
            ).encode()
            with_headers(
                "421 Misdirected Request", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        return self.wsgi_app(environ, with_headers)


def init_security(app: Flask, guard: Guard) -> None:
    """Register the per-request checks and the Host/headers middleware on the app."""
    app.extensions["kd_guard"] = guard
    app.before_request(_check_request)
    app.wsgi_app = GuardMiddleware(app.wsgi_app, guard)


def _check_request() -> None:
    """Origin of unsafe requests, token, then body type, size and JSON depth."""
    if request.method == "OPTIONS":  # CORS preflight: flask-cors answers it; it carries no token by design
        return
    guard: Guard = current_app.extensions["kd_guard"]
    origin = request.headers.get("Origin")
    if request.method not in SAFE_METHODS and origin and not guard.origin_allowed(origin, request.environ):
        # A cross-site form can post without a preflight; a foreign page must not change anything.
        raise ApiError(
            403,
            "origin_not_allowed",
            f"Origin {clip(origin)!r} may not call this service; "
            "start the server with --cors-origins (KD_CORS_ORIGINS) to allow it.",
        )
    if guard.token and request.endpoint not in PUBLIC_ENDPOINTS:
        if not guard.token_ok(bearer(request.headers.get("Authorization"))):
            raise ApiError(
                401,
                "unauthorized",
                "This server requires its API token: send the header 'Authorization: Bearer <token>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
    if request.method not in SAFE_METHODS and request.routing_exception is None:  # else the 404/405 stands
        _check_body(current_app.config)


def _check_body(config: Mapping[str, Any]) -> None:
    if request.endpoint == UPLOAD_ENDPOINT:
        return  # multipart only, checked by the endpoint, under MAX_UPLOAD_MB
    limit = int(config["MAX_BODY_KB"]) * 1024
    request.max_content_length = limit  # also bounds a chunked body while it is read
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    if not request.get_data(cache=True):
        return  # an empty body where a body is optional stays OK; endpoints that need one say so
    if request.mimetype != "application/json":
        # text/plain, form and multipart bodies are what a cross-site form can send without a preflight.
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Send the body as JSON with 'Content-Type: application/json' (got {clip(request.mimetype or 'none')!r}).",
        )
    max_depth = int(config["MAX_JSON_DEPTH"])
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # the JSON decoder recurses per level: a deep body must not be a 500
        data, too_deep = None, True
    else:
        too_deep = data is not None and _deeper_than(data, max_depth)
    if too_deep:
        raise ApiError(400, "too_deep", f"The JSON body is nested deeper than {max_depth} levels.")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays/objects nest more than `limit` levels (iterative: no recursion on hostile input)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False

"""The development server's request handler (`python backend/app.py`): Werkzeug's, with HTTP/1.1 keep-alive.

Werkzeug's development server answers every request with `Connection: close`, because after each request it
drains whatever the client sent beyond the body it read (so an oversized body gets its 413 rather than a reset),
and that drain would swallow a next request sent on the same connection. So every request of a polling client
costs a TCP connection and a new server thread, which is most of the server's CPU under many pollers.

`KeepAliveHandler` keeps the connection for the requests where that drain has nothing to do: a request with no
body (no Content-Length above 0, no Transfer-Encoding), that is not a WebSocket upgrade, from an HTTP/1.1 client
that did not ask to close. For those it answers without `Connection: close` and points the drain at an empty
stream; every other request is served exactly as Werkzeug serves it. A kept connection waits at most
`KEEP_ALIVE_S` for its next request, then closes (the first request of a connection has no deadline, as in
Werkzeug).
"""

from __future__ import annotations

import io
import os
import threading
from typing import Any

from werkzeug.serving import WSGIRequestHandler

KEEP_ALIVE_S = 5.0  # as gunicorn's keepalive in backend/gunicorn_conf.py


class _Drained:
    """Stands in for the connection while Werkzeug drains a bodiless request: a pipe whose writer is closed, so a
    selector sees it readable at once, and reading it (through the empty stream beside it) ends the drain."""

    _lock = threading.Lock()
    _fd: int | None = None

    def fileno(self) -> int:
        with self._lock:
            if _Drained._fd is None:
                read_end, write_end = os.pipe()
                os.close(write_end)
                _Drained._fd = read_end
            return _Drained._fd


_DRAINED = _Drained()


class KeepAliveHandler(WSGIRequestHandler):
    """Werkzeug's handler, speaking HTTP/1.1 and keeping the connection after a bodiless request."""

    protocol_version = "HTTP/1.1"
    _keep = False  # this request keeps its connection
    _kept: tuple[Any, Any] | None = None  # the real (rfile, connection) while the drain sees the stand-ins
    _idle = False  # waiting for a kept connection's next request
    _served = 0

    def handle_one_request(self) -> None:
        if self._served:
            self._idle = True
            self.connection.settimeout(KEEP_ALIVE_S)
        try:
            super().handle_one_request()
        finally:
            self._served += 1
            self._idle = self._keep = False
            if self._kept is not None:
                self.rfile, self.connection = self._kept
                self._kept = None

    def parse_request(self) -> bool:
        if self._idle:  # the next request line arrived: it is read as Werkzeug reads any request
            self._idle = False
            self.connection.settimeout(None)
        ok = super().parse_request()
        self._keep = ok and self._keeps_connection()
        return ok

    def _keeps_connection(self) -> bool:
        headers = self.headers
        return (
            not self.close_connection  # HTTP/1.1, and the client did not send Connection: close
            and headers.get("Content-Length", "0").strip() in ("", "0")
            and "Transfer-Encoding" not in headers
            and "Upgrade" not in headers
            and "Expect" not in headers
        )

    def make_environ(self) -> Any:
        environ = super().make_environ()
        if self._keep:  # the app reads no body; Werkzeug's drain after the answer reads the empty stand-ins
            self._kept = (self.rfile, self.connection)
            self.rfile, self.connection = io.BytesIO(), _DRAINED
        return environ

    def send_header(self, keyword: str, value: str) -> None:
        if self._keep and keyword.lower() == "connection" and value.lower() == "close":
            return
        super().send_header(keyword, value)

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - the overridden signature
        if self._idle and format.startswith("Request timed out"):
            return  # a kept connection that stayed quiet for KEEP_ALIVE_S: closed, nothing went wrong
        super().log_error(format, *args)

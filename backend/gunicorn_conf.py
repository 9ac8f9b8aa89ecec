"""The production server's gunicorn settings: `gunicorn -c backend/gunicorn_conf.py 'backend.wsgi:app'`.

Flask-SocketIO in threading mode runs under gunicorn's threaded worker (gthread) with ONE worker process
(Socket.IO sessions live in it; several need sticky sessions) and a pool of threads. A thread serves one
request at a time, and one WebSocket for the socket's whole life, so the pool must cover the WebSocket clients
plus the concurrent requests (KD_SERVER_THREADS).

gthread already waits for a new connection's first bytes without a thread (5 s, then back to its poller), but
once a request has begun, a thread reads it with no deadline: a client that sends half its headers and stops
would hold that thread forever. `BoundedThreadWorker` puts a deadline of KD_REQUEST_TIMEOUT_S on every read
and write of a plain HTTP request (a silence that long closes the connection and frees the thread); a
WebSocket upgrade gets no deadline (its socket is quiet between messages, and Socket.IO's own ping closes a
dead one). Settings come from backend/config.py (KD_* variables); gunicorn's own flags override them.
"""

from __future__ import annotations

from collections.abc import Callable

from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import TConn, ThreadWorker

from backend.config import load_config

_settings = load_config()

bind = f"{_settings['HOST']}:{_settings['PORT']}"
workers = 1
worker_class = "backend.gunicorn_conf.BoundedThreadWorker"
threads = int(_settings["SERVER_THREADS"])
timeout = 120  # a worker whose main loop stalls this long is restarted (no request of this API takes that long)
graceful_timeout = 10  # a stop takes at most 10 s (the running local job is cancelled first)
keepalive = 5
control_socket_disable = True  # gunicorn's control socket is one path per user: two servers would share it
REQUEST_TIMEOUT_S = float(_settings["REQUEST_TIMEOUT_S"])


class _BoundedConn(TConn):
    """A connection whose socket has a deadline on each read and write while a request is read and answered.

    A read that meets the deadline ends the request as a client that went away (gunicorn's NoMoreData, logged at
    debug level), and such a connection is closed at once: gunicorn's graceful close would first wait up to 2 s,
    on the worker's main loop, for a client that has stopped sending anyway.
    """

    stalled = False

    def init(self) -> None:
        fresh = self.parser is None
        super().init()  # sets the socket blocking (no deadline) for the worker thread
        self.sock.settimeout(REQUEST_TIMEOUT_S)
        if fresh and self.parser is not None and hasattr(self.parser, "unreader"):
            self.parser.unreader.chunk = self._deadline(self.parser.unreader.chunk)

    def _deadline(self, read: Callable[[int], bytes]) -> Callable[[int], bytes]:
        def chunk(size: int) -> bytes:
            try:
                return read(size)
            except TimeoutError:
                self.stalled = True
                raise NoMoreData() from None

        return chunk

    def close(self, graceful: bool = False) -> None:
        super().close(graceful=graceful and not self.stalled)


class BoundedThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, with a deadline on slow or half-open HTTP clients (see the module's doc)."""

    def enqueue_req(self, conn: TConn) -> None:
        conn.__class__ = _BoundedConn  # every connection gthread hands to a thread, new or kept alive
        super().enqueue_req(conn)

    def handle_request(self, req, conn):  # noqa: ANN001 - gunicorn's own types
        if any(name == "UPGRADE" and value.strip().lower() == "websocket" for name, value in req.headers):
            conn.sock.settimeout(None)  # a WebSocket lives as long as its client: simple-websocket reads it
        return super().handle_request(req, conn)

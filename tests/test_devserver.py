"""The development server's handler (backend/devserver.py) on a real Werkzeug server and real sockets.

A bodiless GET keeps its connection (so a polling client costs no new connection and thread per request), also
when the next request is already in the socket when the answer goes out; a request with a body is served as
Werkzeug serves it (its 413 intact, then the connection closes); a kept connection that stays quiet is closed.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest
from werkzeug.serving import make_server

from backend import devserver
from backend.devserver import KeepAliveHandler


@pytest.fixture()
def served(app):
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=KeepAliveHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    server.server_close()


def _responses(sock: socket.socket, count: int, timeout: float = 10.0) -> list[http.client.HTTPResponse]:
    """Read count HTTP responses from one socket."""
    sock.settimeout(timeout)
    reader = sock.makefile("rb")
    out = []
    for _ in range(count):
        res = http.client.HTTPResponse(_SocketLike(reader))
        res.begin()
        res.body = res.read()  # type: ignore[attr-defined]
        out.append(res)
    return out


class _SocketLike:
    """What HTTPResponse needs of a socket: makefile, answering the one shared reader (which a response's end
    must not close: the next response is read from it)."""

    def __init__(self, reader):
        self.reader = reader

    def makefile(self, *args, **kwargs):
        return self

    def __getattr__(self, name):
        return getattr(self.reader, name)

    def close(self):
        pass


def test_polling_client_keeps_one_connection(served):
    conn = http.client.HTTPConnection("127.0.0.1", served, timeout=10)
    conn.request("GET", "/test")
    first = conn.getresponse()
    assert first.status == 200 and json.loads(first.read())
    assert first.getheader("Connection") != "close"
    local = conn.sock.getsockname()
    for _ in range(5):
        conn.request("GET", "/test")
        res = conn.getresponse()
        assert res.status == 200 and json.loads(res.read())
        assert conn.sock is not None and conn.sock.getsockname() == local  # the same TCP connection
    conn.close()


def test_next_request_already_sent_is_answered_not_drained(served):
    """Two requests in one write (pipelined): the first answer's drain must not swallow the second."""
    with socket.create_connection(("127.0.0.1", served), timeout=10) as sock:
        request = b"GET /test HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        sock.sendall(request + b"GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first, second = _responses(sock, 2)
        assert first.status == 200
        assert second.status == 404 and json.loads(second.body)["error"]


def test_request_with_a_body_is_served_as_werkzeug_serves_it(served, app):
    """An oversized POST still gets its JSON 413 (Werkzeug's drain reads what the app did not) and a close."""
    limit = app.config["MAX_BODY_KB"] * 1024
    body = b"{" + b" " * (limit + 10) + b"}"
    with socket.create_connection(("127.0.0.1", served), timeout=10) as sock:
        head = (
            "POST /train HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        (res,) = _responses(sock, 1)
        assert res.status == 413 and json.loads(res.body)["error"]
        assert res.getheader("Connection") == "close"


def test_client_asking_to_close_gets_a_close(served):
    with socket.create_connection(("127.0.0.1", served), timeout=10) as sock:
        sock.sendall(b"GET /test HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        (res,) = _responses(sock, 1)
        assert res.status == 200 and res.getheader("Connection") == "close"
        assert sock.recv(1) == b""


def test_quiet_kept_connection_is_closed(served, monkeypatch):
    monkeypatch.setattr(devserver, "KEEP_ALIVE_S", 0.5)
    with socket.create_connection(("127.0.0.1", served), timeout=10) as sock:
        sock.sendall(b"GET /test HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        (res,) = _responses(sock, 1)
        assert res.status == 200
        started = time.monotonic()
        assert sock.recv(1) == b""  # the server closes the quiet connection ...
        assert time.monotonic() - started < 8  # ... after about KEEP_ALIVE_S, well before the socket's 10 s

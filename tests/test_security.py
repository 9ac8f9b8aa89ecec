"""The allowlists and checks of backend/api/security.py, through the app factory and the test client."""

from __future__ import annotations

import html
import re

import pytest

from backend.api.security import Guard, bearer, host_name
from backend.app import create_app


@pytest.mark.parametrize(
    "header, name",
    [
        ("Example.COM:8080", "example.com"),
        ("[::1]:5001", "::1"),
        ("::1", "::1"),
        ("localhost", "localhost"),
        ("host.example.", "host.example"),
    ],
)
def test_host_name(header, name):
    assert host_name(header) == name


def test_bearer():
    assert bearer("Bearer abc") == "abc" and bearer("bearer  abc ") == "abc"
    assert bearer("Basic abc") is None and bearer("Bearer") is None and bearer(None) is None


def test_guard_allowlists():
    guard = Guard(
        {"HOST": "10.0.0.5", "CORS_ORIGINS": "https://ui.example/, http://lab:8080", "ALLOWED_HOSTS": "kd.example"}
    )
    for host in ("localhost:5001", "127.0.0.1", "[::1]:1", "10.0.0.5:5001", "KD.example"):
        assert guard.host_allowed(host), host
    assert not guard.host_allowed("evil.example")
    for origin in (
        "http://localhost:3000",
        "http://127.0.0.1",
        "http://[::1]:8000",
        "https://ui.example",
        "http://lab:8080",
    ):
        assert guard.origin_allowed(origin), origin
    for origin in ("http://evil.example", "https://localhost:3000", "http://localhost.evil.example", "null", None):
        assert not guard.origin_allowed(origin), origin
    environ = {"HTTP_HOST": "kd.example:5001", "wsgi.url_scheme": "http"}
    assert guard.origin_allowed("http://kd.example:5001", environ)  # the page's own origin
    assert not guard.origin_allowed("http://rebind.example:5001", {**environ, "HTTP_HOST": "rebind.example:5001"})
    assert "https://ui.example" in guard.csp() and "script-src 'self'" in guard.csp()


def test_wildcard_origin_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not allowed"):
        create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "d"), "CORS_ORIGINS": "*"})


def test_token_checks_and_public_page(tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "DATA_DIR": str(tmp_path / "d"),
            "START_WORKERS": False,
            "API_TOKEN": "t0k",
            "CORS_ORIGINS": "https://ui.example",
        }
    )
    try:
        client = app.test_client()
        assert client.get("/jobs").status_code == 401
        assert client.get("/jobs", headers={"Authorization": "Bearer t0k"}).status_code == 200
        page = client.get("/")
        assert page.status_code == 200
        meta = re.search(r'<meta name="kd-origins" content="([^"]*)">', page.get_data(as_text=True))
        assert meta and html.unescape(meta.group(1)) == '["https://ui.example"]'
        preflight = client.options(
            "/train",
            headers={
                "Origin": "https://ui.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://ui.example"
        assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    finally:
        app.extensions["jobs"].shutdown()


def test_empty_optional_body_stays_ok_and_form_posts_are_415(client):
    assert client.post("/cancel_training").status_code == 409  # no body, nothing running: not a 415
    res = client.post("/cancel_training", data={"job_id": "x"})  # a form post
    assert res.status_code == 415
    assert client.post("/test_model", data="{}", content_type="application/json; charset=utf-8").status_code == 400

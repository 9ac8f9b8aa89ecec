"""The factory, the health endpoint and JSON errors."""

from __future__ import annotations

import torch

from backend.app import create_app


def test_factory_uses_test_config(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "d"), "MAX_UPLOAD_MB": 3})
    assert app.testing
    assert app.config["MAX_CONTENT_LENGTH"] == 3 * 1024 * 1024
    assert (tmp_path / "d").is_dir()
    assert app.config["UPLOAD_DIR"] == str(tmp_path / "d" / "uploads")


def test_env_overrides_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("KD_PORT", "6123")
    monkeypatch.setenv("KD_UPLOAD_DIR", str(tmp_path / "up"))
    app = create_app({"DATA_DIR": str(tmp_path / "d")})
    assert app.config["PORT"] == 6123
    assert app.config["UPLOAD_DIR"] == str(tmp_path / "up")


def test_health(client):
    res = client.get("/test")
    assert res.status_code == 200
    body = res.get_json()
    assert body["status"] == "ok"
    assert body["torch_version"] == torch.__version__
    assert body["device"] in {"cpu", "cuda"}
    assert body["torch_threads"] >= 1
    assert isinstance(body["queue_length"], int)


def test_unknown_path_is_json_404(client):
    res = client.get("/nope")
    assert res.status_code == 404
    assert res.is_json
    assert res.get_json()["error"]["code"] == "not_found"


def test_wrong_method_is_json_405(client):
    res = client.delete("/test")
    assert res.status_code == 405
    assert res.get_json()["error"]["code"] == "method_not_allowed"
    assert "GET" in res.headers["Allow"]


def test_unhandled_exception_is_json_500_without_traceback(app):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    res = app.test_client().get("/boom")
    assert res.status_code == 500
    text = res.get_data(as_text=True)
    assert "secret internals" not in text and "Traceback" not in text
    assert res.get_json()["error"]["code"] == "internal_error"


def test_cors_header_for_other_origin(client):
    res = client.get("/test", headers={"Origin": "http://localhost:3000"})
    assert res.headers.get("Access-Control-Allow-Origin") in {"*", "http://localhost:3000"}


def test_app_process_starts_without_torch(tmp_path):
    # The API process stays light: the JSON sanitiser it shares with the report must not import torch.
    import subprocess
    import sys
    from pathlib import Path

    program = (
        "import sys\n"
        "from backend.app import create_app\n"
        f"create_app({{'TESTING': True, 'DATA_DIR': {str(tmp_path / 'd')!r}}})\n"
        "import backend.jobs.events, backend.metrics.jsonsafe\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]

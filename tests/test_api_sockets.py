"""Socket.IO: a job's events reach only the clients that joined its room, each once; the token guards connect."""

from __future__ import annotations

import pytest

from backend.app import create_app, socketio
from tests.test_jobs_manager import scripted


@pytest.fixture()
def sock_app(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "START_WORKERS": False})
    app.extensions["jobs"]._runner = scripted(steps=2)
    yield app
    app.extensions["jobs"].shutdown()


def _events(sio) -> list[tuple[str, dict]]:
    return [(m["name"], m["args"][0]) for m in sio.get_received()]


def test_events_reach_only_the_job_room(sock_app):
    http = sock_app.test_client()
    bystander = socketio.test_client(sock_app, flask_test_client=http)
    follower = socketio.test_client(sock_app, flask_test_client=http)
    assert bystander.is_connected() and follower.is_connected()
    x = http.post("/train", json={"model_name": "resnet18"}).get_json()["job_id"]
    ack = follower.emit("join", {"job_id": x}, callback=True)
    assert ack["ok"] and ack["status"] == "queued"
    follower.get_received()
    y = http.post("/train", json={"model_name": "resnet18"}).get_json()["job_id"]
    manager = sock_app.extensions["jobs"]
    manager.run_next()
    manager.run_next()

    assert _events(bystander) == []  # joined nothing: hears nothing
    seen_x = _events(follower)
    assert {p["job_id"] for _, p in seen_x} == {x} and y != x
    statuses = [p["phase"] for name, p in seen_x if name == "training_status"]
    assert statuses == ["data", "teacher", "done"]  # once each
    names = {name for name, _ in seen_x}
    assert {"training_status", "training_progress", "training_metrics"} <= names
    progress = next(p for n, p in seen_x if n == "training_progress")
    assert {"job_id", "phase", "step", "total", "percent", "losses", "eta_s"} <= set(progress)

    assert follower.emit("leave", {"job_id": x}, callback=True)["ok"]
    http.post("/train", json={"model_name": "resnet18"})
    manager.run_next()
    assert _events(follower) == []  # left: nothing more
    bystander.disconnect()
    follower.disconnect()


def test_connect_needs_the_token_when_one_is_set(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "d"), "START_WORKERS": False, "API_TOKEN": "s3cret"})
    try:
        http = app.test_client()
        assert not socketio.test_client(app, flask_test_client=http).is_connected()
        assert not socketio.test_client(app, flask_test_client=http, auth={"token": "wrong"}).is_connected()
        ok = socketio.test_client(app, flask_test_client=http, auth={"token": "s3cret"})
        assert ok.is_connected()
        ok.disconnect()
        by_header = socketio.test_client(app, flask_test_client=http, headers={"Authorization": "Bearer s3cret"})
        assert by_header.is_connected()
        by_header.disconnect()
    finally:
        app.extensions["jobs"].shutdown()


def test_join_unknown_job_is_refused(sock_app):
    sio = socketio.test_client(sock_app)
    assert sio.emit("join", {"job_id": "job_nope"}, callback=True)["ok"] is False
    assert sio.emit("join", "nonsense", callback=True)["ok"] is False
    sio.disconnect()


def test_failed_job_emits_training_error(sock_app):
    from tests.test_jobs_manager import scripted as make

    sock_app.extensions["jobs"]._runner = make(fail=RuntimeError("kaput"))
    http = sock_app.test_client()
    sio = socketio.test_client(sock_app, flask_test_client=http)
    other = socketio.test_client(sock_app, flask_test_client=http)
    job_id = http.post("/train", json={"model_name": "resnet18"}).get_json()["job_id"]
    assert sio.emit("join", {"job_id": job_id}, callback=True)["ok"]
    sio.get_received()
    sock_app.extensions["jobs"].run_next()
    assert other.get_received() == []  # training_error is never broadcast
    other.disconnect()
    events = _events(sio)
    errors = [p for n, p in events if n == "training_error"]
    assert errors == [{"job_id": job_id, "message": "RuntimeError: kaput", "error_type": "error"}]
    assert [p["phase"] for n, p in events if n == "training_status"][-1] == "failed"
    sio.disconnect()

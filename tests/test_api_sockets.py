"""Socket.IO: every client gets every job's events once; a client that joined a job's room gets only that job's."""
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


def test_rooms_and_broadcast(sock_app):
    http = sock_app.test_client()
    everyone = socketio.test_client(sock_app, flask_test_client=http)
    follower = socketio.test_client(sock_app, flask_test_client=http)
    assert everyone.is_connected() and follower.is_connected()
    x = http.post("/train", json={"model_name": "resnet18"}).get_json()["job_id"]
    ack = follower.emit("join", {"job_id": x}, callback=True)
    assert ack["ok"] and ack["status"] == "queued"
    everyone.get_received()
    follower.get_received()
    y = http.post("/train", json={"model_name": "resnet18"}).get_json()["job_id"]
    manager = sock_app.extensions["jobs"]
    manager.run_next()
    manager.run_next()

    seen_all = _events(everyone)
    seen_x = _events(follower)
    assert {p["job_id"] for _, p in seen_all} == {x, y}
    assert {p["job_id"] for _, p in seen_x} == {x}
    statuses = [p["phase"] for name, p in seen_x if name == "training_status"]
    assert statuses == ["data", "teacher", "done"]  # once each: no duplicates from room + broadcast
    assert [p["phase"] for n, p in seen_all if n == "training_status" and p["job_id"] == x] == statuses
    names = {name for name, _ in seen_all}
    assert {"training_status", "training_progress", "training_metrics"} <= names
    progress = next(p for n, p in seen_x if n == "training_progress")
    assert {"job_id", "phase", "step", "total", "percent", "losses", "eta_s"} <= set(progress)

    assert follower.emit("leave", {"job_id": x}, callback=True)["ok"]
    z = http.post("/train", json={"model_name": "resnet18"}).get_json()["job_id"]
    assert any(p["job_id"] == z for _, p in _events(follower))  # back to every event
    everyone.disconnect()
    follower.disconnect()


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
    job_id = http.post("/train", json={"model_name": "resnet18"}).get_json()["job_id"]
    sock_app.extensions["jobs"].run_next()
    events = _events(sio)
    errors = [p for n, p in events if n == "training_error"]
    assert errors == [{"job_id": job_id, "message": "RuntimeError: kaput", "error_type": "error"}]
    assert [p["phase"] for n, p in events if n == "training_status"][-1] == "failed"
    sio.disconnect()

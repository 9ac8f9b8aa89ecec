"""Socket.IO: who receives a job's and a study's events, each once; the token guards connect.

A client that joined nothing hears every job and study; join narrows it to what it joined (the union when
several); leaving everything brings it back to hearing everything. The Celery workers' emitter targets the
same rooms through the message queue.
"""

from __future__ import annotations

import pytest

from backend.app import create_app, socketio
from tests.test_jobs_manager import scripted

STATUSES = ["queued", "data", "teacher", "done"]  # what scripted(steps=2) announces, in order


@pytest.fixture()
def sock_app(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "START_WORKERS": False})
    app.extensions["jobs"]._runner = scripted(steps=2)
    yield app
    app.extensions["jobs"].shutdown()


def _events(sio) -> list[tuple[str, dict]]:
    return [(m["name"], m["args"][0]) for m in sio.get_received()]


def _submit(http) -> str:
    return http.post("/train", json={"model_name": "resnet18"}).get_json()["job_id"]


def _statuses(events, job_id: str) -> list[str]:
    return [p["phase"] for n, p in events if n == "training_status" and p["job_id"] == job_id]


def _join(sio, **what) -> dict:
    ack = sio.emit("join", what, callback=True)
    assert ack["ok"], ack
    return ack


def test_a_client_that_never_joins_hears_every_job_to_the_end(sock_app):
    http = sock_app.test_client()
    listener = socketio.test_client(sock_app, flask_test_client=http)
    assert listener.is_connected()
    x, y = _submit(http), _submit(http)
    manager = sock_app.extensions["jobs"]
    manager.run_next()
    manager.run_next()

    events = _events(listener)
    assert {p["job_id"] for _, p in events} == {x, y}
    for job_id in (x, y):
        mine = [(n, p) for n, p in events if p["job_id"] == job_id]
        assert _statuses(mine, job_id) == STATUSES  # from queued to done, once each
        assert {"training_status", "training_progress", "training_metrics"} <= {n for n, _ in mine}
        assert mine[-1][0] == "training_status" and mine[-1][1]["phase"] == "done"  # nothing after done
    progress = next(p for n, p in events if n == "training_progress")
    assert {"job_id", "phase", "step", "total", "percent", "losses", "eta_s"} <= set(progress)
    listener.disconnect()


def test_each_event_reaches_each_client_once_however_it_joined(sock_app):
    http = sock_app.test_client()
    clients = {
        name: socketio.test_client(sock_app, flask_test_client=http)
        for name in ("listener", "job", "job_twice", "job_and_study", "study")
    }
    res = http.post("/studies", json={"model_name": "resnet18", "grid": {"sparsity": [0.3], "structural_ratio": [0.5]}})
    assert res.status_code == 202, res.get_json()
    study_id, (x,) = res.get_json()["study_id"], res.get_json()["job_ids"]
    _join(clients["job"], job_id=x)
    _join(clients["job_twice"], job_id=x)
    _join(clients["job_twice"], job_id=x)
    _join(clients["job_and_study"], job_id=x)
    assert _join(clients["job_and_study"], study_id=study_id)["job_ids"] == [x]
    _join(clients["study"], study_id=study_id)
    sock_app.extensions["jobs"].run_next()
    for emit in sock_app.extensions["studies"]._listeners:  # what the study watcher emits as the point ends
        emit({"study_id": study_id, "points_done": 1, "points_total": 1, "state": "succeeded"})

    seen = {name: _events(sio) for name, sio in clients.items()}
    everything = [e for e in seen["listener"] if e[0] != "study_progress"]
    assert _statuses(everything, x) == STATUSES
    assert {"training_progress", "training_metrics"} <= {n for n, _ in everything}
    for name, events in seen.items():
        assert [e for e in events if e[0] != "study_progress"] == everything, name  # the same events, once each
        progress = [p for n, p in events if n == "study_progress"]
        assert len(progress) == (1 if "study" in name or name == "listener" else 0), name
    for sio in clients.values():
        sio.disconnect()


def test_a_client_that_joined_a_job_hears_nothing_of_another_until_it_leaves(sock_app):
    http = sock_app.test_client()
    follower = socketio.test_client(sock_app, flask_test_client=http)
    a = _submit(http)
    ack = _join(follower, job_id=a)
    assert ack["status"] == "queued"
    follower.get_received()  # a's queued, heard before the join
    b = _submit(http)
    manager = sock_app.extensions["jobs"]
    manager.run_next()
    manager.run_next()
    events = _events(follower)
    assert {p["job_id"] for _, p in events} == {a} and a != b
    assert _statuses(events, a) == STATUSES[1:]

    assert follower.emit("leave", {"job_id": a}, callback=True)["ok"]  # left everything: hears every job again
    c = _submit(http)
    manager.run_next()
    assert _statuses(_events(follower), c) == STATUSES
    follower.disconnect()


def test_a_study_join_narrows_to_its_jobs_and_leaving_it_widens_again(sock_app):
    http = sock_app.test_client()
    sio = socketio.test_client(sock_app, flask_test_client=http)
    res = http.post(
        "/studies", json={"model_name": "resnet18", "grid": {"sparsity": [0.3, 0.5], "structural_ratio": [0.5]}}
    )
    study_id, job_ids = res.get_json()["study_id"], res.get_json()["job_ids"]
    _join(sio, study_id=study_id)
    sio.get_received()
    outsider = _submit(http)
    manager = sock_app.extensions["jobs"]
    for _ in range(3):
        manager.run_next()
    events = _events(sio)
    assert {p["job_id"] for _, p in events} == set(job_ids)  # joined no job room by name: through the study
    assert all(_statuses(events, j) == STATUSES[1:] for j in job_ids)
    assert outsider not in {p["job_id"] for _, p in events}

    later = _submit(http)
    _join(sio, job_id=later)
    assert sio.emit("leave", {"study_id": study_id}, callback=True)["ok"]  # still follows `later`
    for emit in sock_app.extensions["studies"]._listeners:
        emit({"study_id": study_id, "points_done": 2, "points_total": 2, "state": "succeeded"})
    other = _submit(http)
    manager.run_next()
    manager.run_next()
    events = _events(sio)
    assert {p["job_id"] for _, p in events} == {later} and other != later
    assert sio.emit("leave", {"job_id": later}, callback=True)["ok"]
    for emit in sock_app.extensions["studies"]._listeners:
        emit({"study_id": study_id, "points_done": 2, "points_total": 2, "state": "succeeded"})
    assert [n for n, _ in _events(sio)] == ["study_progress"]  # nothing joined: every study's events again
    sio.disconnect()


def test_the_message_queue_emitter_targets_the_same_rooms(sock_app, monkeypatch):
    """backend/worker.py's emitter (Celery workers) publishes to ["all", "job:<id>"], like the API's own; the
    API's Socket.IO server delivers such a message with its manager's emit, once per client."""
    import socketio as python_socketio

    from backend.worker import socketio_emitter

    published: list[dict] = []
    monkeypatch.setattr(python_socketio.RedisManager, "_publish", lambda self, message: published.append(message))
    emit = socketio_emitter("redis://127.0.0.1:1/0")  # write-only: nothing connects until a publish
    emit("training_status", {"job_id": "job_a", "phase": "data"}, room="job_a")
    assert [(m["event"], m["room"], m["namespace"]) for m in published] == [
        ("training_status", ["all", "job:job_a"], "/")
    ]

    http = sock_app.test_client()
    listener, follower, elsewhere = (socketio.test_client(sock_app, flask_test_client=http) for _ in range(3))
    a, b = _submit(http), _submit(http)
    _join(follower, job_id=a)
    _join(elsewhere, job_id=b)
    for sio in (listener, follower, elsewhere):
        sio.get_received()
    message = dict(published[0], data=[{"job_id": a, "phase": "data"}], room=["all", f"job:{a}"])
    # What python-socketio's PubSubManager._handle_emit does with a message from the queue:
    server = socketio.server
    server.manager.emit(message["event"], message["data"][0], namespace=message["namespace"], room=message["room"])
    assert _events(listener) == _events(follower) == [("training_status", {"job_id": a, "phase": "data"})]
    assert _events(elsewhere) == []
    for sio in (listener, follower, elsewhere):
        sio.disconnect()


def test_connect_needs_the_token_when_one_is_set(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "d"), "START_WORKERS": False, "API_TOKEN": "s3cret"})
    try:
        http = app.test_client()
        refused = socketio.test_client(app, flask_test_client=http)
        assert not refused.is_connected()
        assert not socketio.test_client(app, flask_test_client=http, auth={"token": "wrong"}).is_connected()
        ok = socketio.test_client(app, flask_test_client=http, auth={"token": "s3cret"})
        assert ok.is_connected()
        by_header = socketio.test_client(app, flask_test_client=http, headers={"Authorization": "Bearer s3cret"})
        assert by_header.is_connected()
        job_id = http.post(
            "/train", json={"model_name": "resnet18"}, headers={"Authorization": "Bearer s3cret"}
        ).get_json()["job_id"]
        assert _statuses(_events(ok), job_id) == ["queued"]  # a listener with the token hears the job
        listeners = list(socketio.server.manager.get_participants("/", "all"))
        assert len(listeners) == 2  # the two with the token: the refused ones are in no room, so hear nothing
        ok.disconnect()
        by_header.disconnect()
    finally:
        app.extensions["jobs"].shutdown()


def test_join_unknown_job_is_refused(sock_app):
    sio = socketio.test_client(sock_app)
    assert sio.emit("join", {"job_id": "job_nope"}, callback=True)["ok"] is False
    assert sio.emit("join", "nonsense", callback=True)["ok"] is False
    assert sio.emit("join", {"study_id": "study_nope"}, callback=True)["ok"] is False
    sio.disconnect()


def test_failed_job_emits_training_error(sock_app):
    from tests.test_jobs_manager import scripted as make

    sock_app.extensions["jobs"]._runner = make(fail=RuntimeError("kaput"))
    http = sock_app.test_client()
    sio = socketio.test_client(sock_app, flask_test_client=http)
    listener = socketio.test_client(sock_app, flask_test_client=http)
    job_id = http.post("/train", json={"model_name": "resnet18"}).get_json()["job_id"]
    assert sio.emit("join", {"job_id": job_id}, callback=True)["ok"]
    sio.get_received()
    listener.get_received()
    sock_app.extensions["jobs"].run_next()
    error = {"job_id": job_id, "message": "RuntimeError: kaput", "error_type": "error"}
    for events in (_events(sio), _events(listener)):  # joined or only listening: the same error, once
        assert [p for n, p in events if n == "training_error"] == [error]
        assert _statuses(events, job_id)[-1] == "failed"
    sio.disconnect()
    listener.disconnect()

"""One tiny real job through the service: events over Socket.IO, then every results endpoint; restart; cancel."""

from __future__ import annotations

import io
import itertools
import json
import time
import zipfile

import pytest

from backend.app import create_app, socketio
from tests.engine_helpers import REPORT_SECTIONS, SERVER_JOB

pytestmark = pytest.mark.slow  # real jobs through a real server (about 40 s)

TINY = {**SERVER_JOB, "max_samples": 300}


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A service that ran one real job to the end, with every event it emitted (and when)."""
    data_dir = tmp_path_factory.mktemp("real") / "data"
    app = create_app({"TESTING": True, "DATA_DIR": str(data_dir), "START_WORKERS": False})
    manager = app.extensions["jobs"]
    timed: list[tuple[float, str, dict]] = []
    emit = manager._emit
    manager._emit = lambda event, payload, room=None: (
        timed.append((time.monotonic(), event, payload)),
        emit(event, payload, room=room),
    )
    http = app.test_client()
    sio = socketio.test_client(app, flask_test_client=http)
    res = http.post("/train", json=TINY)
    assert res.status_code == 202
    job_id = res.get_json()["job_id"]
    # Connected before the job was queued, the client heard "queued" as a listener; joining narrows it to the
    # job (before the worker starts), and from then on each event still arrives once.
    assert sio.emit("join", {"job_id": job_id}, callback=True)["status"] == "queued"
    manager.start()
    record = manager.wait(job_id, timeout=400)
    assert record.state == "succeeded", record.error
    received = [(m["name"], m["args"][0]) for m in sio.get_received()]
    sio.disconnect()
    yield {"app": app, "http": http, "job_id": job_id, "events": received, "timed": timed, "data_dir": data_dir}
    manager.shutdown()


def test_event_sequence_of_a_job(done):
    events, job_id = done["events"], done["job_id"]
    assert all(p["job_id"] == job_id for _, p in events)
    emitted = [p["phase"] for _, name, p in done["timed"] if name == "training_status"]
    assert emitted == ["queued", "data", "teacher", "student", "distill", "prune", "evaluate", "done"]
    phases = [p["phase"] for name, p in events if name == "training_status"]
    assert phases == emitted  # every status, "queued" included, once each
    progress = [p for name, p in events if name == "training_progress"]
    assert progress and all({"phase", "step", "total", "percent", "eta_s", "losses"} <= set(p) for p in progress)
    assert any(p["losses"] for p in progress)
    assert [name for name, _ in events].count("training_metrics") >= 1
    assert not [p for name, p in events if name == "training_error"]
    assert events[-1][0] == "training_status" and events[-1][1]["phase"] == "done"  # nothing after done


def test_progress_rate_while_running(done):
    timed = done["timed"]
    start = next(t for t, e, p in timed if e == "training_status" and p["phase"] == "data")
    end = next(t for t, e, p in timed if e == "training_status" and p["phase"] == "done")
    progress = [t for t, e, _ in timed if e == "training_progress" and start <= t <= end]
    gaps = [b - a for a, b in itertools.pairwise([start, *progress, end])]
    assert max(gaps) <= 2.5, max(gaps)  # at least every 2 s (a little slack for a busy CI machine)
    per_second = len(progress) / max(end - start, 1e-9)
    assert per_second <= 12, per_second  # at most about 10 a second


def test_jobs_show_the_result(done):
    http, job_id = done["http"], done["job_id"]
    job = http.get(f"/jobs/{job_id}").get_json()
    assert job["state"] == "succeeded" and job["phase"] == "done" and job["progress"]["percent"] == 100.0
    assert {"report", "bundle", "matlab"} <= set(job["artifacts"])
    assert set(job["phase_timings"]) == {"data", "teacher", "student", "distill", "prune", "evaluate"}
    assert 0.0 <= job["summary"]["student_accuracy"] <= 1.0
    assert http.get("/jobs?state=succeeded").get_json()["jobs"][0]["id"] == job_id


def test_evaluate_default_and_by_id(done):
    http, job_id = done["http"], done["job_id"]
    latest = http.get("/evaluate")
    assert latest.status_code == 200
    report = latest.get_json()
    assert all(section in report for section in REPORT_SECTIONS)
    assert report["metadata"]["job_id"] == job_id
    assert http.get(f"/evaluate?job_id={job_id}").get_json() == report
    assert http.get("/evaluate?model_name=distil-bert").get_json()["metadata"]["job_id"] == job_id  # an alias
    assert http.get("/evaluate?model_name=resnet18").status_code == 404
    json.loads(latest.get_data(as_text=True), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def test_matlab_metrics(done):
    http, job_id = done["http"], done["job_id"]
    body = http.get(f"/matlab_metrics?job_id={job_id}").get_json()
    data = body["matlab_data"]
    assert data["labels"] == ["teacher", "student"]
    assert {"effectiveness", "efficiency", "compression", "complexity", "training", "pruning"} <= set(data)
    assert http.get("/matlab_metrics").get_json() == body
    every = http.get("/matlab_metrics?all=1")
    assert every.status_code == 200 and "matlab_data" in every.get_json()
    assert TINY["model_name"] in json.dumps(every.get_json())


def test_visualize_png(done):
    from backend.metrics.plots import PLOT_KINDS

    http, job_id = done["http"], done["job_id"]
    res = http.post("/visualize", json={"job_id": job_id, "kind": PLOT_KINDS[0]})
    assert res.status_code == 200 and res.mimetype == "image/png" and res.data[:8] == b"\x89PNG\r\n\x1a\n"
    res = http.get(f"/visualize?kind={PLOT_KINDS[-1]}")
    assert res.status_code == 200 and res.data[:4] == b"\x89PNG"


def test_download_bundle(done):
    http, job_id = done["http"], done["job_id"]
    res = http.get(f"/download?job_id={job_id}")
    assert res.status_code == 200 and res.mimetype == "application/zip"
    assert f"filename={TINY['model_name']}_{job_id}.zip" in res.headers["Content-Disposition"]
    names = zipfile.ZipFile(io.BytesIO(res.data)).namelist()
    assert {"report.json", "matlab_metrics.json", "metrics.csv"} <= set(names)
    assert any(n.startswith("plots/") and n.endswith(".png") for n in names)


def test_cancel_finished_job_is_409(done):
    res = done["http"].post("/cancel_training", json={"job_id": done["job_id"]})
    assert res.status_code == 409 and res.get_json()["error"]["state"] == "succeeded"


def test_results_survive_a_restart(done):
    again = create_app({"TESTING": True, "DATA_DIR": str(done["data_dir"]), "START_WORKERS": False})
    try:
        http = again.test_client()
        assert http.get("/evaluate").get_json()["metadata"]["job_id"] == done["job_id"]
        assert http.get(f"/download?job_id={done['job_id']}").status_code == 200
    finally:
        again.extensions["jobs"].shutdown()


def test_cancel_running_and_queued_real_jobs(done):
    http, manager = done["http"], done["app"].extensions["jobs"]
    running = http.post("/train", json={**TINY, "epochs": 50, "seed": 1}).get_json()["job_id"]
    queued = http.post("/train", json=TINY).get_json()["job_id"]
    deadline = time.monotonic() + 120
    while manager.get(running).phase not in ("teacher", "student", "distill") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert manager.get(running).phase in ("teacher", "student", "distill")
    res = http.post("/cancel_training", json={"job_id": queued})
    assert res.status_code == 200 and res.get_json()["status"] == "cancelled"
    started = time.monotonic()
    res = http.post("/cancel_training")  # the running job
    assert res.status_code == 200 and res.get_json()["job_id"] == running
    assert manager.wait(running, 10).state == "cancelled" and time.monotonic() - started < 10
    assert manager.get(queued).state == "cancelled" and manager.queue_length() == 0
    assert http.get("/evaluate").get_json()["metadata"]["job_id"] == done["job_id"]  # untouched

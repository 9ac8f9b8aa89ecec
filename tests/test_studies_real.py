"""A 2x2 compression study end to end through a real server process, then a second study cancelled midway."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import zipfile

import pytest
import requests
import socketio

from backend.metrics.matlab import matlab_problems
from tests.engine_helpers import SERVER_JOB
from tests.servers import free_port, start_app, stop, wait_for

TINY = SERVER_JOB
GRID = {"sparsity": [0.3, 0.6], "structural_ratio": [0.25, 0.5]}


def _pareto_by_hand(rows: list[dict], cost: str) -> list[bool]:
    """Written out again here, independently of the service: on the frontier unless another point dominates."""
    flags = []
    for r in rows:
        better = [
            o
            for o in rows
            if o is not r
            and o["accuracy"] >= r["accuracy"]
            and o[cost] <= r[cost]
            and (o["accuracy"] > r["accuracy"] or o[cost] < r[cost])
        ]
        flags.append(not better)
    return flags


def _wait_study(url: str, study_id: str, until, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = requests.get(f"{url}/studies/{study_id}", timeout=10).json()
        if until(detail):
            return detail
        time.sleep(0.5)
    raise AssertionError(f"study {study_id} did not get there in {timeout} s: {detail['state']}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("studies")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # two worker processes of one thread each: points run side by side, and the cache locks make them share
    proc, url = start_app(tmp / "data", tmp / "server.log", env={"KD_TORCH_THREADS": "1", "KD_WORKERS": "2"})
    try:
        wait_for(f"{url}/test", proc, 90)
        yield {"url": url, "data": tmp / "data"}
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def study(server):
    """The 2x2 study, run to the end, with the study_progress events a client in its room received."""
    url = server["url"]
    res = requests.post(f"{url}/studies", json={**TINY, "grid": GRID}, timeout=30)
    assert res.status_code == 202, res.text
    study_id = res.json()["study_id"]
    events: list[dict] = []
    got = threading.Event()
    sio = socketio.Client()

    @sio.on("study_progress")
    def _progress(payload):
        events.append(payload)
        got.set()

    sio.connect(url, transports=["polling"])
    ack = sio.call("join", {"study_id": study_id}, timeout=10)
    assert ack["ok"] and ack["points_total"] == 4
    detail = _wait_study(url, study_id, lambda d: d["points_done"] == d["points_total"])
    deadline = time.monotonic() + 10
    while (not events or events[-1]["points_done"] < 4) and time.monotonic() < deadline:
        time.sleep(0.2)
    sio.disconnect()
    return {"url": url, "id": study_id, "detail": detail, "events": events, "job_ids": res.json()["job_ids"]}


@pytest.mark.slow
def test_every_point_measured_and_pareto_flags_by_hand(study):
    detail = study["detail"]
    assert detail["state"] == "succeeded", detail
    rows = detail["rows"]
    assert [r["job_id"] for r in rows] == study["job_ids"]
    assert sorted((r["structural_ratio"], r["sparsity"]) for r in rows) == [
        (0.25, 0.3),
        (0.25, 0.6),
        (0.5, 0.3),
        (0.5, 0.6),
    ]
    for r in rows:
        assert 0 <= r["accuracy"] <= 1 and r["latency_batch_1_ms"] > 0 and r["latency_batch_32_ms"] > 0
        assert r["model_size_mb"] > 0 and r["parameters"] > 0 and r["flops_per_sample"] > 0
        assert r["speedup_batch_1"] > 0 and r["compressed_size_mb"] > 0
    assert [r["pareto_latency"] for r in rows] == _pareto_by_hand(rows, "latency_batch_1_ms")
    assert [r["pareto_size"] for r in rows] == _pareto_by_hand(rows, "model_size_mb")
    assert any(r["pareto_latency"] for r in rows)
    small = [r["parameters"] for r in rows if r["structural_ratio"] == 0.5]
    large = [r["parameters"] for r in rows if r["structural_ratio"] == 0.25]
    assert max(small) < min(large)  # a larger structural ratio removes more channels
    assert len({r["parameters"] for r in rows if r["structural_ratio"] == 0.5}) == 1  # sparsity: zeros, not shape


@pytest.mark.slow
def test_teacher_once_and_students_shared(study):
    url, rows = study["url"], study["detail"]["rows"]
    metas = [requests.get(f"{url}/evaluate?job_id={r['job_id']}", timeout=10).json()["metadata"] for r in rows]
    teachers = sorted(m["teacher_source"]["kind"] for m in metas)
    assert teachers == ["cache", "cache", "cache", "trained"]  # trained once, whichever point got the lock first
    assert len({m["student_source"]["teacher_cache_key"] for m in metas}) == 1
    students = {(r["structural_ratio"], r["sparsity"]): m["student_source"] for r, m in zip(rows, metas, strict=True)}
    for ratio in (0.25, 0.5):
        pair = [students[(ratio, 0.3)], students[(ratio, 0.6)]]
        assert sorted(s["kind"] for s in pair) == ["cache", "distilled"]  # distilled once per structural ratio
        assert pair[0]["cache_key"] == pair[1]["cache_key"]
    assert students[(0.25, 0.3)]["cache_key"] != students[(0.5, 0.3)]["cache_key"]
    assert sorted(r["student_source"] for r in rows) == ["cache", "cache", "distilled", "distilled"]
    jobs = {j["id"] for j in requests.get(f"{url}/jobs", timeout=10).json()["jobs"]}
    assert set(study["job_ids"]) <= jobs  # ordinary jobs


@pytest.mark.slow
def test_study_progress_events(study):
    events = study["events"]
    assert events and all(e["study_id"] == study["id"] and e["points_total"] == 4 for e in events)
    assert [e["points_done"] for e in events] == sorted(e["points_done"] for e in events)
    last = events[-1]
    assert last["points_done"] == 4 and last["state"] == "succeeded"
    assert last["latest"]["job_id"] in study["job_ids"] and 0 <= last["latest"]["accuracy"] <= 1


@pytest.mark.slow
def test_matlab_csv_plots_bundle(study):
    url, sid = study["url"], study["id"]
    data = requests.get(f"{url}/matlab_metrics?study_id={sid}", timeout=10).json()["matlab_data"]
    assert matlab_problems({"matlab_data": data}) == []
    assert data["grid_axes"] == GRID
    assert len(data["points"]) == 4 and all(len(row) == len(data["columns"]) for row in data["points"])
    for name in ("accuracy", "latency_batch_1_ms", "model_size_mb", "pareto_latency", "sparsity"):
        assert len(data[name]) == 4 and all(isinstance(v, (int, float)) for v in data[name])
    assert data["pareto_latency"] == [int(r["pareto_latency"]) for r in study["detail"]["rows"]]
    text = requests.get(f"{url}/studies/{sid}?format=csv", timeout=10).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 4 and float(rows[0]["accuracy"]) == study["detail"]["rows"][0]["accuracy"]
    for kind in ("pareto", "study_sparsity"):
        png = requests.get(f"{url}/visualize?kind={kind}&study_id={sid}", timeout=30)
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    bundle = zipfile.ZipFile(io.BytesIO(requests.get(f"{url}/download?study_id={sid}", timeout=30).content))
    assert {
        "study.csv",
        "study.json",
        "matlab_study.json",
        "plots/pareto.png",
        "plots/study_sparsity.png",
        "README.txt",
    } <= set(bundle.namelist())
    assert json.loads(bundle.read("study.json"))["points_total"] == 4


@pytest.mark.slow
def test_cancel_a_study_midway(study):
    url = study["url"]
    res = requests.post(
        f"{url}/studies",
        json={**TINY, "grid": {"sparsity": [0.2, 0.4, 0.5], "structural_ratio": [0.25, 0.5]}},
        timeout=30,
    )
    sid = res.json()["study_id"]
    _wait_study(url, sid, lambda d: d["points_done"] >= 1)
    assert requests.delete(f"{url}/studies/{sid}", timeout=10).status_code == 409  # points still run
    cancelled = requests.post(f"{url}/studies/{sid}/cancel", timeout=30).json()
    detail = _wait_study(url, sid, lambda d: d["state"] in ("cancelled",), timeout=30)
    states = [r["state"] for r in detail["rows"]]
    assert cancelled["points_total"] == 6 and states.count("succeeded") >= 1 and states.count("cancelled") >= 1
    assert set(states) <= {"succeeded", "cancelled"}
    kept = [r for r in detail["rows"] if r["state"] == "succeeded"]
    assert all(r["accuracy"] is not None for r in kept)  # finished points keep their results
    for r in kept:
        assert requests.get(f"{url}/evaluate?job_id={r['job_id']}", timeout=10).status_code == 200
    assert requests.delete(f"{url}/studies/{sid}", timeout=10).status_code == 200
    assert requests.get(f"{url}/studies/{sid}", timeout=10).status_code == 404

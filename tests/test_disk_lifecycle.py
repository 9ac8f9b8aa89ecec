"""Disk lifecycle: DELETE /jobs/<id> and /uploads/<id> remove every file and row (409 while in use), retention
keeps exactly what it says, the teacher cache is bounded (LRU, in-use spared), leftovers of a kill go at start.

A writer runner stands in for the pipeline: it writes the same kind of files a job leaves (report, bundle,
plots), so deletion can be checked file by file without training a model.
"""

from __future__ import annotations

import ast
import io
import json
import os
import threading
import time
from pathlib import Path

import pytest

from backend.app import create_app
from backend.data import uploads
from backend.jobs import CANCELLED, RUNNING, SUCCEEDED, JobManager, disk
from tests.fake_jobs import finished

ROOT = Path(__file__).resolve().parent.parent


def writer(gate: threading.Event | None = None, started: threading.Event | None = None):
    """A runner that writes a job's usual files (and can be held running until gate is set)."""

    def run(config, callbacks, *, job_id, out_dir, cache_dir, upload_dir):
        if started is not None:
            started.set()
        if gate is not None:
            gate.wait(30)
        return finished(
            out_dir,
            {"metadata": {"job_id": job_id}},
            {
                "bundle": ("bundle.zip", b"PK"),
                "plots/accuracy": ("plots/accuracy.png", b"\x89PNG fake"),
                "matlab": ("matlab_metrics.json", b"{}"),
            },
        )

    return run


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "jobs.sqlite3" not in p.name}


@pytest.fixture()
def app(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "START_WORKERS": False})
    app.extensions["jobs"].shutdown()
    app.extensions["jobs"] = JobManager(app.config["DATA_DIR"], app.config["UPLOAD_DIR"], runner=writer(), start=False)
    yield app
    app.extensions["jobs"].shutdown()


def train(client, **extra) -> str:
    res = client.post("/train", json={"model_name": "resnet18", "dataset": "digits", **extra})
    assert res.status_code == 202, res.get_json()
    return res.get_json()["job_id"]


def csv_upload(client) -> str:
    data = b"text,label\ngood,pos\nbad,neg\nfine,pos\n"
    res = client.post("/upload", data={"file": (io.BytesIO(data), "r.csv")}, content_type="multipart/form-data")
    assert res.status_code == 201
    return res.get_json()["upload_id"]


# ---------------------------------------------------------------- DELETE /jobs/<id>


def test_delete_job_removes_row_and_every_file(app):
    client, manager, data = app.test_client(), app.extensions["jobs"], Path(app.config["DATA_DIR"])
    keep, gone = train(client), train(client)
    manager.run_next(), manager.run_next()
    before = files_under(data)
    assert {f"jobs/{gone}/bundle.zip", f"jobs/{gone}/plots/accuracy.png", f"jobs/{gone}/report.json"} <= before
    res = client.delete(f"/jobs/{gone}")
    assert res.status_code == 204 and res.data == b""
    assert files_under(data) == {f for f in before if not f.startswith(f"jobs/{gone}/")}
    assert not (data / "jobs" / gone).exists() and not list((data / "jobs").glob(".trash-*"))
    assert client.get(f"/jobs/{gone}").status_code == 404
    assert [j["job_id"] if "job_id" in j else j["id"] for j in client.get("/jobs").get_json()["jobs"]] == [keep]
    assert client.delete(f"/jobs/{gone}").status_code == 404
    assert client.delete("/jobs/job_unknown").get_json()["error"]["code"] == "job_not_found"
    assert client.get(f"/download?job_id={keep}").status_code == 200  # the other job is untouched


def test_delete_queued_or_running_job_is_409(app):
    client = app.test_client()
    gate, started = threading.Event(), threading.Event()
    manager = app.extensions["jobs"]
    manager._runner = writer(gate, started)
    running, queued = train(client), train(client)
    worker = threading.Thread(target=manager.run_next)
    worker.start()
    try:
        assert started.wait(10) and manager.get(running).state == RUNNING
        for job_id, state in ((running, "running"), (queued, "queued")):
            res = client.delete(f"/jobs/{job_id}")
            assert res.status_code == 409, res.get_json()
            assert "cancel it first" in res.get_json()["error"]["message"] and res.get_json()["error"]["state"] == state
        assert client.post("/cancel_training", json={"job_id": queued}).get_json()["state"] == CANCELLED
        assert client.delete(f"/jobs/{queued}").status_code == 204
    finally:
        gate.set()
        worker.join(10)
    assert manager.get(running).state == SUCCEEDED
    assert client.delete(f"/jobs/{running}").status_code == 204


# ---------------------------------------------------------------- DELETE /uploads/<id>


def test_delete_upload_removes_every_file_and_refuses_while_used(app, tmp_path):
    client, manager = app.test_client(), app.extensions["jobs"]
    upload_dir, data = Path(app.config["UPLOAD_DIR"]), Path(app.config["DATA_DIR"])
    dataset = csv_upload(client)
    # Files keyed by it: a teacher ZIP extracted beside it, a cached teacher trained on it.
    (upload_dir / dataset / "model").mkdir()
    (upload_dir / dataset / "model" / "config.json").write_text("{}")
    teacher = manager.cache_dir / "teachers" / "distilbert-abc"
    teacher.mkdir(parents=True)
    (teacher / "meta.json").write_text(json.dumps({"dataset": dataset}))
    other = manager.cache_dir / "teachers" / "distilbert-def"
    other.mkdir()
    (other / "meta.json").write_text(json.dumps({"dataset": "synthetic_sentiment"}))
    student = manager.cache_dir / "students" / "s-abc"  # a distilled student of that teacher (studies share it)
    student.mkdir(parents=True)
    (student / "meta.json").write_text(json.dumps({"dataset": dataset}))
    before = files_under(data)

    job = train(client, model_name="distilbert", dataset=dataset)
    res = client.delete(f"/uploads/{dataset}")
    assert res.status_code == 409 and job in res.get_json()["error"]["message"]
    assert res.get_json()["error"]["code"] == "upload_in_use" and files_under(data) == before
    client.post("/cancel_training", json={"job_id": job})

    assert client.delete(f"/uploads/{dataset}").status_code == 204
    assert files_under(data) == {
        f
        for f in before
        if not f.startswith((f"uploads/{dataset}/", "cache/teachers/distilbert-abc/", "cache/students/s-abc/"))
    }
    assert client.get(f"/uploads/{dataset}").status_code == 404 and client.get("/uploads").get_json()["count"] == 0
    assert not list(upload_dir.glob(".trash-*")) and other.is_dir()
    assert client.delete(f"/uploads/{dataset}").status_code == 404
    assert client.delete("/uploads/..%2F..%2Fetc").status_code == 404


def test_delete_upload_used_as_teacher_is_409(tmp_path):
    upload_dir = tmp_path / "uploads"
    (upload_dir / ("upl_" + "a" * 32)).mkdir(parents=True)
    upload_id = "upl_" + "a" * 32
    (upload_dir / upload_id / "upload.pt").write_bytes(b"PK")
    (upload_dir / upload_id / "meta.json").write_text(json.dumps({"upload_id": upload_id, "stored_name": "upload.pt"}))
    calls = []

    def users(uid):  # free at the first look, taken by a job at the second (after the rename)
        calls.append(uid)
        return [] if len(calls) == 1 else ["job_0123456789abcdef"]

    with pytest.raises(uploads.UploadInUse):
        uploads.delete_upload(upload_dir, upload_id, users)
    assert (upload_dir / upload_id / "upload.pt").is_file(), "the folder must come back when a job took it"
    assert sorted(p.name for p in upload_dir.iterdir()) == [upload_id]


def test_jobs_using_upload_sees_dataset_and_teacher(app):
    client, manager = app.test_client(), app.extensions["jobs"]
    dataset = csv_upload(client)
    job = train(client, model_name="distilbert", dataset=dataset)
    assert manager.jobs_using_upload(dataset) == [job]
    record = manager.get(job)
    manager.store.update(job, config={**record.config, "dataset": "digits", "teacher_upload_id": dataset})
    assert manager.jobs_using_upload(dataset) == [job]
    manager.cancel(job)
    assert manager.jobs_using_upload(dataset) == []


# ---------------------------------------------------------------- retention


def test_retention_keeps_exactly_the_newest_n(tmp_path):
    manager = JobManager(tmp_path / "data", tmp_path / "up", runner=writer(), start=False)
    try:
        manager.set_retention(disk.Retention(retain_jobs=2))
        from backend.jobconfig import JobConfig

        ids = []
        for _ in range(4):
            ids.append(manager.submit(JobConfig.from_dict({"model_name": "resnet18"})).id)
            manager.run_next()
            kept = [r.id for r in manager.list_jobs()]
            assert kept == list(reversed(ids))[:2]
            assert sorted(p.name for p in manager.jobs_dir.iterdir()) == sorted(kept)
        # Days: a job finished long ago goes, a fresh one stays.
        manager.store.update(ids[-2], finished_at=time.time() - 3 * 86400)
        assert manager.set_retention(disk.Retention(retain_days=1)) == [ids[-2]]
        assert [r.id for r in manager.list_jobs()] == [ids[-1]]
        assert sorted(p.name for p in manager.jobs_dir.iterdir()) == [ids[-1]]
    finally:
        manager.shutdown()


def test_cache_bound_applies_to_teachers_and_students(tmp_path):
    """Studies fill cache/students as jobs fill cache/teachers: the same bound keeps both in check."""
    manager = JobManager(tmp_path / "data", tmp_path / "up", runner=writer(), start=False)
    try:
        old = time.time() - 3600
        for kind in ("teachers", "students"):
            for i in range(3):
                entry = manager.cache_dir / kind / f"{kind}-{i}"
                entry.mkdir(parents=True)
                (entry / "meta.json").write_text("{}")
                os.utime(entry / "meta.json", (old + i, old + i))
        manager.set_retention(disk.Retention(cache_max_entries=1))
        for kind in ("teachers", "students"):
            assert [p.name for p in (manager.cache_dir / kind).iterdir()] == [f"{kind}-2"]  # the most recent
    finally:
        manager.shutdown()


def test_retention_from_config_applies_at_start(tmp_path):
    data = tmp_path / "data"
    manager = JobManager(data, data / "uploads", runner=writer(), start=False)
    from backend.jobconfig import JobConfig

    for _ in range(3):
        manager.submit(JobConfig.from_dict({"model_name": "resnet18"}))
        manager.run_next()
    newest = manager.list_jobs()[0].id
    manager.shutdown()
    app = create_app({"TESTING": True, "DATA_DIR": str(data), "START_WORKERS": False, "RETAIN_JOBS": 1})
    try:
        assert [r.id for r in app.extensions["jobs"].list_jobs()] == [newest]
        assert sorted(p.name for p in (data / "jobs").iterdir()) == [newest]
    finally:
        app.extensions["jobs"].shutdown()


def test_model_caches_evict_least_recently_used_but_not_in_use(tmp_path):
    teachers = tmp_path / "teachers"
    now = time.time()
    for name, age_s, size in (("old", 5000, 3000), ("middle", 3000, 3000), ("recent", 2000, 3000), ("in-use", 5, 3000)):
        (teachers / name).mkdir(parents=True)
        (teachers / name / "model.safetensors").write_bytes(b"x" * size)
        (teachers / name / "meta.json").write_text("{}")
        os.utime(teachers / name / "meta.json", (now - age_s, now - age_s))
    disk.touch_cached(teachers / "old")  # used again just now: no longer the least recently used
    os.utime(teachers / "old" / "meta.json", (now - 1000, now - 1000))
    assert disk.prune_model_cache(teachers, max_entries=2, now=now) == ["middle", "recent"]
    assert sorted(p.name for p in teachers.iterdir()) == ["in-use", "old"]
    # Size bound; the entry in use stays even though the cache is still over it.
    assert disk.prune_model_cache(teachers, max_mb=1000 / 2**20, now=now) == ["old"]
    assert sorted(p.name for p in teachers.iterdir()) == ["in-use"]
    assert disk.prune_model_cache(teachers, max_entries=0, max_mb=0, now=now) == []


# ---------------------------------------------------------------- leftovers


def test_leftovers_of_a_kill_are_removed_at_start(tmp_path):
    data = tmp_path / "data"
    first = JobManager(data, data / "uploads", runner=writer(), start=False)
    from backend.jobconfig import JobConfig

    done = first.submit(JobConfig.from_dict({"model_name": "resnet18"})).id
    first.run_next()
    killed = first.submit(JobConfig.from_dict({"model_name": "resnet18"})).id
    first.store.update(killed, state=RUNNING)  # as if the server died mid-job
    first.shutdown()
    up, jobs, cache = data / "uploads", data / "jobs", data / "cache"
    good = uploads.save_upload(up, "r.csv", io.BytesIO(b"text,label\na,x\nb,y\n"))["upload_id"]
    leftovers = [
        up / ".staging" / ("upl_" + "1" * 32) / "upload.csv",  # an upload mid-check
        up / ".incoming" / "tmpk2j4abcd",  # a spooled request body
        up / ".trash-upl_x-1234abcd" / "upload.zip",  # a deletion cut short
        up / good / "model.1234abcd.tmp" / "config.json",  # a teacher ZIP mid-extraction
        up / ("upl_" + "2" * 32) / "upload.csv",  # a folder without meta.json
        jobs / done / "bundle.zip.tmp",  # a bundle mid-write
        jobs / done / "plots" / "x.png.tmp",
        jobs / killed / "plots" / "accuracy.png",  # the partial folder of the interrupted job
        jobs / "job_00000000deadbeef" / "report.json",  # a folder with no row
        jobs / ".trash-job_1-1234abcd" / "report.json",
        cache / "teachers" / "resnet18-abc.1234abcd.tmp" / "model.safetensors",  # a teacher mid-save
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    kept = {f for f in files_under(data) if not any(str(p).endswith(f) for p in leftovers)}
    second = JobManager(data, up, runner=writer(), start=False)
    try:
        assert files_under(data) == kept
        assert {f"jobs/{done}/bundle.zip", f"jobs/{done}/report.json", f"uploads/{good}/upload.csv"} <= kept
        assert not any(p.exists() for p in leftovers)
        assert second.get(killed).error_type == "interrupted"
        assert not (up / good / "model.1234abcd.tmp").exists() and not (jobs / killed).exists()
    finally:
        second.shutdown()


# ---------------------------------------------------------------- no code from callers runs


def _calls(name: str):
    for path in (ROOT / "backend").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name:
                yield path.relative_to(ROOT), node


def _keyword(node: ast.Call, key: str):
    return next((k.value.value for k in node.keywords if k.arg == key and isinstance(k.value, ast.Constant)), "unset")


def test_every_loader_refuses_code():
    loads = [
        (p, n) for p, n in _calls("load") if isinstance(n.func.value, ast.Name) and n.func.value.id in ("torch", "np")
    ]
    assert any(n.func.value.id == "torch" for _, n in loads) and any(n.func.value.id == "np" for _, n in loads)
    found = {(path.as_posix(), n.func.value.id) for path, n in loads}  # the uploads package is among what is scanned
    assert {("backend/data/uploads/checkpoints.py", "torch"), ("backend/data/uploads/npz.py", "np")} <= found
    for path, node in loads:
        key, wanted = ("weights_only", True) if node.func.value.id == "torch" else ("allow_pickle", False)
        assert _keyword(node, key) is wanted, (
            f"{path}:{node.lineno} calls {node.func.value.id}.load without {key}={wanted}"
        )
    pretrained = list(_calls("from_pretrained"))
    assert pretrained
    for path, node in pretrained:
        assert _keyword(node, "trust_remote_code") is False, (
            f"{path}:{node.lineno} from_pretrained without trust_remote_code=False"
        )

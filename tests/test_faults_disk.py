"""A full disk (issue #25, part 1), for real: the data dir is a small tmpfs, filled with a file.

An upload that fills it is a 507 and leaves nothing; a job that fills it (writing the teacher cache, or its own
files) ends `failed` with error_type `disk_full`, a message naming the folder and the free space, and its
partial files removed; earlier jobs, uploads and the jobs database stay readable; the API keeps answering.
Below the free-space floor (MIN_FREE_DISK_MB) POST /train, POST /studies and POST /upload are refused with 507,
and GET /test reports the free space and the floor.

Mounting a tmpfs needs root (CI runs as root); elsewhere these tests skip and say why.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from backend import cachefiles
from backend.app import create_app
from backend.jobs import JobManager
from backend.jobs.execute import default_runner
from tests.engine_helpers import SERVER_JOB
from tests.fake_jobs import finished

pytestmark = pytest.mark.root
DISK_MB = 24


@pytest.fixture()
def small_disk(tmp_path):
    """A DISK_MB MiB tmpfs mounted for this test, unmounted after it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Grow disk/filler until about `leave` bytes are free."""
    filler = disk / "filler"
    with open(filler, "ab") as fh:
        missing = shutil.disk_usage(disk).free - leave
        while missing > 0:
            chunk = min(missing, 2**20)
            fh.write(b"\0" * chunk)
            missing -= chunk
    return filler


def make_app(disk: Path, runner, floor_mb: float = 0):
    app = create_app(
        {"TESTING": True, "DATA_DIR": str(disk / "data"), "START_WORKERS": False, "MIN_FREE_DISK_MB": floor_mb}
    )
    app.extensions["jobs"].shutdown()
    app.extensions["jobs"] = JobManager(app.config["DATA_DIR"], app.config["UPLOAD_DIR"], runner=runner, start=False)
    return app


def sealed_writer(config, callbacks, *, job_id, out_dir, cache_dir, upload_dir):
    """A job's usual small files, sealed like backend/outputs.py seals them."""
    result = finished(out_dir, {"metadata": {"job_id": job_id}}, {"bundle": ("bundle.zip", b"PK" * 1000)})
    cachefiles.seal(Path(out_dir))
    return result


def upload(client, data: bytes, name: str = "r.csv"):
    return client.post("/upload", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def csv_bytes(rows: int) -> bytes:
    return b"text,label\n" + b"".join(b"a fine sentence number %d,pos\nbad one %d,neg\n" % (i, i) for i in range(rows))


def earlier_work(app) -> dict:
    """A succeeded job and an upload made while there was room: what must survive the full disk."""
    client = app.test_client()
    up = upload(client, csv_bytes(50))
    assert up.status_code == 201, up.get_json()
    job_id = client.post("/train", json={"model_name": "resnet18", "dataset": "digits"}).get_json()["job_id"]
    app.extensions["jobs"].run_next()
    record = app.extensions["jobs"].get(job_id)
    assert record.state == "succeeded"
    stored = Path(app.config["UPLOAD_DIR"]) / up.get_json()["upload_id"]
    return {
        "job_id": job_id,
        "upload_id": up.get_json()["upload_id"],
        "report": client.get(f"/evaluate?job_id={job_id}").get_json(),
        "files": {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in [*stored.iterdir(), *Path(record.out_dir).rglob("*")] if p.is_file()},
    }  # fmt: skip


def assert_intact(app, before: dict) -> None:
    """Earlier job and upload readable and unchanged; the API and the jobs database answer."""
    client = app.test_client()
    assert client.get(f"/evaluate?job_id={before['job_id']}").get_json() == before["report"]
    assert client.get(f"/download?job_id={before['job_id']}").status_code == 200
    assert client.get(f"/uploads/{before['upload_id']}").status_code == 200
    for path, digest in before["files"].items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path
    assert client.get("/jobs").status_code == 200
    health = client.get("/test")
    assert health.status_code == 200 and isinstance(health.get_json()["disk_free_bytes"], int)


def no_partial_files(data_dir: Path) -> list[str]:
    """Half-written leftovers anywhere under the data dir."""
    return [
        str(p.relative_to(data_dir))
        for p in data_dir.rglob("*")
        if p.name.endswith(".tmp") or p.name.startswith(".trash-") or (p.parent.name in (".staging", ".incoming"))
    ]


def test_an_upload_that_fills_the_disk_is_507_and_leaves_nothing(small_disk):
    app = make_app(small_disk, sealed_writer)
    try:
        client = app.test_client()
        before = earlier_work(app)
        uploads_before = client.get("/uploads").get_json()["count"]
        fill(small_disk, leave=256 * 1024)
        res = upload(client, csv_bytes(60_000))  # about 2 MiB: more than is left
        assert res.status_code == 507, res.get_data(as_text=True)
        assert res.get_json()["error"]["code"] == "insufficient_storage"
        assert client.get("/uploads").get_json()["count"] == uploads_before
        assert no_partial_files(small_disk / "data") == []
        assert_intact(app, before)
    finally:
        app.extensions["jobs"].shutdown()


def test_below_the_floor_jobs_studies_and_uploads_are_refused_with_507(small_disk):
    app = make_app(small_disk, sealed_writer, floor_mb=4)
    try:
        client = app.test_client()
        health = client.get("/test").get_json()
        assert health["min_free_disk_bytes"] == 4 * 2**20
        assert health["disk_free_bytes"] > health["min_free_disk_bytes"]  # a fresh disk: admitted
        before = earlier_work(app)
        filler = fill(small_disk, leave=3 * 2**20)
        health = client.get("/test").get_json()
        assert health["disk_free_bytes"] < health["min_free_disk_bytes"]
        jobs_before = len(client.get("/jobs").get_json()["jobs"])
        refused = [
            client.post("/train", json={"model_name": "resnet18", "dataset": "digits"}),
            client.post("/studies", json={"model_name": "resnet18", "grid": {"sparsity": [0.3], "structural_ratio": [0.5]}}),
            upload(client, csv_bytes(10)),
        ]  # fmt: skip
        for res in refused:
            assert res.status_code == 507, res.get_data(as_text=True)
            error = res.get_json()["error"]
            assert error["code"] == "insufficient_storage" and "MIN_FREE_DISK_MB" in error["message"]
            assert error["disk_free_bytes"] < error["min_free_disk_bytes"] == 4 * 2**20
            assert str(small_disk) not in error["message"]  # no server path in an HTTP answer
        assert len(client.get("/jobs").get_json()["jobs"]) == jobs_before  # nothing stored
        assert client.get("/uploads").get_json()["count"] == 1
        assert_intact(app, before)
        filler.unlink()  # room again: admitted again
        assert client.post("/train", json={"model_name": "resnet18", "dataset": "digits"}).status_code == 202
    finally:
        app.extensions["jobs"].shutdown()


def test_a_job_that_fills_the_disk_with_its_files_fails_disk_full_and_leaves_nothing(small_disk):
    """Its own files (here a large artifact, then torch.save's obscure 'unexpected pos' error) fill the disk."""

    def big_artifact(config, callbacks, *, job_id, out_dir, cache_dir, upload_dir):
        Path(out_dir).mkdir(parents=True)
        (Path(out_dir) / "report.json").write_text("{}")
        (Path(out_dir) / "bundle.zip").write_bytes(b"\0" * (8 * 2**20))  # more than is left

    def torch_save(config, callbacks, *, job_id, out_dir, cache_dir, upload_dir):
        Path(out_dir).mkdir(parents=True)
        torch.save({"w": torch.zeros(2**21)}, Path(out_dir) / "model.pt")  # 8 MiB

    app = make_app(small_disk, sealed_writer)
    manager = app.extensions["jobs"]
    try:
        client = app.test_client()
        before = earlier_work(app)
        fill(small_disk, leave=2 * 2**20)
        for runner in (big_artifact, torch_save):
            manager._runner = runner
            job_id = client.post("/train", json={"model_name": "resnet18", "dataset": "digits"}).get_json()["job_id"]
            manager.run_next()
            job = client.get(f"/jobs/{job_id}").get_json()
            assert job["state"] == "failed" and job["error_type"] == "disk_full", job
            assert job["error"].startswith(f"disk full: the filesystem of {small_disk / 'data'} has ")
            assert " free; " in job["error"]
            assert not (small_disk / "data" / "jobs" / job_id).exists()  # its partial files are gone
            assert no_partial_files(small_disk / "data") == []
        assert_intact(app, before)
    finally:
        manager.shutdown()


@pytest.mark.slow
def test_a_real_job_that_fills_the_disk_writing_its_teacher_cache_fails_disk_full(small_disk):
    """A real job (the pipeline, in this process) trains its teacher, then finds no room to cache it."""
    app = make_app(small_disk, sealed_writer)
    manager = app.extensions["jobs"]
    try:
        client = app.test_client()
        before = earlier_work(app)
        manager._runner = default_runner
        fill(small_disk, leave=1536 * 1024)  # the teacher's cache entry takes about 3.4 MB
        job_id = client.post("/train", json=SERVER_JOB).get_json()["job_id"]
        manager.run_next()
        job = client.get(f"/jobs/{job_id}").get_json()
        assert job["state"] == "failed" and job["error_type"] == "disk_full", job
        assert job["error"].startswith(f"disk full: the filesystem of {small_disk / 'data'} has ")
        assert not (small_disk / "data" / "jobs" / job_id).exists()
        assert [p.name for p in (small_disk / "data" / "cache" / "teachers").iterdir() if p.is_dir()] == []
        assert no_partial_files(small_disk / "data") == []
        assert_intact(app, before)
    finally:
        manager.shutdown()

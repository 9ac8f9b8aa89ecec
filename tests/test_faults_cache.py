"""A corrupt cache or artifact (issue #25, part 3): every teacher and student cache entry carries the sha256 of its
files, written last; a truncated or altered file is found on load, the entry discarded and rebuilt, and the job's
report says so (metadata.teacher_source / student_source). A job's own files carry digests too: an altered report
is a 409, a missing one a 404, never a 500.

The cache tests run the pipeline's own stages (data, teacher, student, distillation) on the cheapest real job;
one slow test runs a whole job through the manager to show the note in the report and the 409 on its files.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from pathlib import Path

import pytest

from backend import cachefiles, pipeline
from backend.app import create_app
from backend.jobconfig import JobConfig
from backend.jobs import JobManager
from backend.jobs.execute import default_runner
from backend.kd.callbacks import CallbackList
from backend.models.registry import get_model_spec
from tests.engine_helpers import SERVER_JOB
from tests.fake_jobs import finished

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def alter_json(path: Path) -> None:
    data = json.loads(path.read_text())
    data["history"] = [{"epoch": 99, "loss": 0.0}]  # still valid JSON: only the digest can tell
    path.write_text(json.dumps(data))


def stages(tmp: Path, **options) -> pipeline.JobState:
    """The real pipeline up to the distilled student (teacher and student through their caches), no measuring."""
    config = JobConfig.from_dict({**SERVER_JOB, **options})
    spec = get_model_spec(config.model_name)
    state = pipeline.JobState(
        config=config, spec=spec, hp=pipeline.resolved_hyperparameters(config, spec), onnx_dir=tmp / "onnx"
    )
    pipeline.place(state)
    pipeline.seed_everything(config.seed)
    cb = CallbackList(None)
    pipeline.load_data(state, tmp / "uploads", tmp / "cache")
    pipeline.obtain_teacher(state, cb, tmp / "cache", tmp / "uploads")
    pipeline.build_student(state, cb)
    pipeline.distill(state, cb, tmp / "cache")
    return state


def entry(tmp: Path, kind: str) -> Path:
    (found,) = [p for p in (tmp / "cache" / kind).iterdir() if p.is_dir()]
    return found


# ---------------------------------------------------------------- digests


def test_a_sealed_folder_reports_truncated_altered_missing_and_unlisted_files(tmp_path):
    folder = tmp_path / "entry"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\x00" * 1000)
    (folder / "meta.json").write_text('{"a": 1}')
    (folder / "sub" / "x.txt").write_text("x")
    assert "digests.json is missing" in cachefiles.check(folder)  # an entry from before digests: not trusted
    sealed = cachefiles.seal(folder)
    assert set(sealed) == {"model.safetensors", "meta.json", "sub/x.txt"}
    assert cachefiles.check(folder) is None
    cachefiles.touch_cached(folder)  # marking it used changes no byte
    assert cachefiles.check(folder) is None

    truncate(folder / "model.safetensors")
    assert cachefiles.check(folder) == "model.safetensors does not match its sha256 digest (truncated or altered)"
    assert cachefiles.check_file(folder, "meta.json") is None
    assert "model.safetensors" in cachefiles.check_file(folder, "model.safetensors")
    cachefiles.seal(folder)
    (folder / "meta.json").write_text('{"a": 2}')
    assert "meta.json does not match" in cachefiles.check(folder)
    cachefiles.seal(folder)
    (folder / "sub" / "x.txt").unlink()
    assert cachefiles.check(folder) == "sub/x.txt is missing"
    cachefiles.seal(folder)
    (folder / "new.bin").write_bytes(b"1")
    assert cachefiles.check(folder) == "new.bin is not in the digest"
    (folder / "digests.json").write_text("{not json")
    assert "unreadable" in cachefiles.check(folder)
    assert cachefiles.check_file(folder, "new.bin") is None  # no digest: served as before digests were kept


# ---------------------------------------------------------------- teacher and student caches


def _damage_and_rebuild(tmp: Path, caplog, teacher_damage: str, student_damage: str) -> None:
    """Damage one file of each cached entry; the next run finds both, discards them, rebuilds and says so."""
    teacher, student = entry(tmp, "teachers"), entry(tmp, "students")
    for path in (teacher / teacher_damage, student / student_damage):
        truncate(path) if path.suffix == ".safetensors" else alter_json(path)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="backend.pipeline"):
        rebuilt = stages(tmp)
    for source, what, damaged in (
        (rebuilt.teacher_source, "teacher", teacher_damage),
        (rebuilt.student_source, "student", student_damage),
    ):
        assert source["kind"] != "cache", source  # trained / distilled again, not loaded
        assert source["cache_rebuilt"] is True
        assert source["cache_rebuilt_reason"] == f"{damaged} does not match its sha256 digest (truncated or altered)"
        assert f"the cached {what} was corrupt" in source["detail"]
        assert any(f"cached {what}" in r.getMessage() and "corrupt" in r.getMessage() for r in caplog.records)
    for kind in ("teachers", "students"):  # rebuilt whole and sealed again; nothing of the old entry left
        assert cachefiles.check(entry(tmp, kind)) is None
        assert not [p for p in (tmp / "cache" / kind).iterdir() if p.name.startswith(".trash-")]


@pytest.mark.slow
def test_a_corrupt_cache_entry_is_discarded_rebuilt_and_noted(tmp_path, caplog):
    """The weights and the record of a cached teacher and student, each truncated or altered."""
    first = stages(tmp_path)
    assert first.teacher_source["kind"] != "cache" and "cache_rebuilt" not in first.teacher_source
    for kind in ("teachers", "students"):
        assert cachefiles.check(entry(tmp_path, kind)) is None  # written sealed
    _damage_and_rebuild(tmp_path, caplog, "model.safetensors", "meta.json")
    _damage_and_rebuild(tmp_path, caplog, "meta.json", "student.safetensors")
    reused = stages(tmp_path)  # intact again: both loaded, nothing rebuilt
    assert reused.teacher_source["kind"] == "cache" and reused.student_source["kind"] == "cache"
    assert "cache_rebuilt" not in reused.teacher_source and "cache_rebuilt" not in reused.student_source


# ---------------------------------------------------------------- a job's own files


@pytest.fixture()
def sealed_app(tmp_path):
    """An app whose jobs write a report and a bundle and seal them as backend/outputs.py does."""

    def run(config, callbacks, *, job_id, out_dir, cache_dir, upload_dir):
        result = finished(out_dir, {"metadata": {"job_id": job_id}}, {"bundle": ("bundle.zip", _zip())})
        cachefiles.seal(Path(out_dir))
        return result

    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "START_WORKERS": False})
    app.extensions["jobs"].shutdown()
    app.extensions["jobs"] = JobManager(app.config["DATA_DIR"], app.config["UPLOAD_DIR"], runner=run, start=False)
    yield app
    app.extensions["jobs"].shutdown()


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("report.json", "{}")
    return buf.getvalue()


def _job(app) -> tuple[str, Path]:
    client = app.test_client()
    res = client.post("/train", json={"model_name": "resnet18", "dataset": "digits"})
    assert res.status_code == 202, res.get_json()
    app.extensions["jobs"].run_next()
    record = app.extensions["jobs"].get(res.get_json()["job_id"])
    assert record.state == "succeeded", record.error
    return record.id, Path(record.out_dir)


def test_an_altered_report_is_409_and_a_missing_one_404(sealed_app):
    client = sealed_app.test_client()
    job_id, out = _job(sealed_app)
    assert client.get(f"/evaluate?job_id={job_id}").status_code == 200
    assert client.get(f"/download?job_id={job_id}").status_code == 200

    (out / "report.json").write_text(json.dumps({"metadata": {"job_id": job_id, "forged": True}}))
    res = client.get(f"/evaluate?job_id={job_id}")
    assert res.status_code == 409, res.get_json()
    assert res.get_json()["error"]["code"] == "artifact_altered"
    assert "report.json does not match its sha256 digest" in res.get_json()["error"]["message"]
    assert str(out) not in res.get_data(as_text=True)  # no server path in the answer

    truncate(out / "bundle.zip")
    res = client.get(f"/download?job_id={job_id}")
    assert res.status_code == 409 and res.get_json()["error"]["code"] == "artifact_altered"

    (out / "report.json").unlink()
    res = client.get(f"/evaluate?job_id={job_id}")
    assert res.status_code == 404 and res.get_json()["error"]["code"] == "artifact_missing"


def test_files_of_a_job_from_before_digests_are_served(sealed_app):
    client = sealed_app.test_client()
    job_id, out = _job(sealed_app)
    (out / "digests.json").unlink()
    (out / "report.json").write_text(json.dumps({"metadata": {"job_id": job_id}, "note": "edited"}))
    assert client.get(f"/evaluate?job_id={job_id}").get_json()["note"] == "edited"


@pytest.mark.slow
def test_a_whole_job_notes_the_rebuilt_caches_in_its_report_and_guards_its_files(tmp_path):
    """A real job (through the manager, the pipeline in this process) after its cached teacher's weights were
    truncated and its cached student's meta altered: the report says both were rebuilt; then its report is
    altered (409) and removed (404)."""
    stages(tmp_path / "data")  # fills the teacher and student caches of the same options
    truncate(entry(tmp_path / "data", "teachers") / "model.safetensors")
    alter_json(entry(tmp_path / "data", "students") / "meta.json")
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "START_WORKERS": False})
    app.extensions["jobs"].shutdown()
    manager = JobManager(app.config["DATA_DIR"], app.config["UPLOAD_DIR"], runner=default_runner, start=False)
    app.extensions["jobs"] = manager
    try:
        client = app.test_client()
        job_id = client.post("/train", json=SERVER_JOB).get_json()["job_id"]
        manager.run_next()
        assert manager.get(job_id).state == "succeeded", manager.get(job_id).error
        meta = client.get(f"/evaluate?job_id={job_id}").get_json()["metadata"]
        assert meta["teacher_source"]["cache_rebuilt"] is True
        assert "model.safetensors does not match" in meta["teacher_source"]["cache_rebuilt_reason"]
        assert meta["student_source"]["cache_rebuilt"] is True
        assert "meta.json does not match" in meta["student_source"]["cache_rebuilt_reason"]

        out = Path(manager.get(job_id).out_dir)
        assert cachefiles.check(out) is None  # every file the job wrote is in its digest
        (out / "report.json").write_text((out / "report.json").read_text().replace("teacher_source", "teacher_sourcE"))
        assert client.get(f"/evaluate?job_id={job_id}").status_code == 409
        assert client.get(f"/visualize?job_id={job_id}").status_code == 200  # the untouched plot is still served
        (out / "report.json").unlink()
        assert client.get(f"/evaluate?job_id={job_id}").status_code == 404
    finally:
        manager.shutdown()

"""POST /train, /cancel_training, GET /jobs, /jobs/<id>: answers and errors (no job runs here)."""

from __future__ import annotations

import io

import pytest

from backend.app import create_app
from backend.jobs import RUNNING


@pytest.fixture()
def idle_app(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "START_WORKERS": False})
    yield app
    app.extensions["jobs"].shutdown()


@pytest.fixture()
def client(idle_app):
    return idle_app.test_client()


def test_train_queues_a_job(client):
    res = client.post("/train", json={"model_name": "ResNet-18", "epochs": 1, "max_samples": 100})
    assert res.status_code == 202
    body = res.get_json()
    assert body["status"] == "queued" and body["job_id"].startswith("job_") and body["model_name"] == "resnet18"
    assert body["queue_position"] == 1 and res.headers["Location"] == f"/jobs/{body['job_id']}"
    second = client.post("/train", json={"model_name": "distillBert"}).get_json()
    assert second["queue_position"] == 2 and second["config"]["dataset"] == "synthetic_sentiment"
    job = client.get(f"/jobs/{body['job_id']}").get_json()
    assert job["state"] == "queued" and job["config"]["epochs"] == 1 and job["queue_position"] == 1
    listing = client.get("/jobs").get_json()
    assert [j["id"] for j in listing["jobs"]] == [second["job_id"], body["job_id"]]
    assert listing["queue_length"] == 2 and listing["running_job_id"] is None
    assert client.get("/jobs?model_name=resnet-18").get_json()["count"] == 1
    assert client.get("/jobs?state=succeeded").get_json()["count"] == 0
    assert client.get("/test").get_json()["queue_length"] == 2


@pytest.mark.parametrize(
    "body, field, phrase",
    [
        ({"model_name": "gpt2"}, "model_name", "distilbert"),
        ({}, "model_name", "required"),
        ({"model_name": "resnet18", "bogus": 1}, "bogus", "valid options"),
        ({"model_name": "resnet18", "preset": "huge"}, "preset", "quick"),
        ({"model_name": "resnet18", "epochs": -1}, "epochs", "[0, 200]"),
        ({"model_name": "resnet18", "alpha": 2}, "alpha", "[0, 1]"),
        ({"model_name": "resnet18", "sparsity": "lots"}, "sparsity", "number"),
        ({"model_name": "resnet18", "dataset": "synthetic_sentiment"}, "dataset", "digits"),
        ({"model_name": "resnet18", "pretrained": "maybe"}, "pretrained", "auto"),
        ({"model_name": "resnet18", "teacher_upload_id": "../x"}, "teacher_upload_id", "upload_id"),
    ],
)
def test_train_rejects_bad_options_naming_them(client, body, field, phrase):
    res = client.post("/train", json=body)
    assert res.status_code == 400
    error = res.get_json()["error"]
    assert error["code"] == "invalid_option" and error["field"] == field and phrase in error["message"]


def test_train_rejects_bad_bodies_and_methods(client):
    assert client.post("/train", data="not json", content_type="application/json").status_code == 400
    assert client.post("/train", json=[1, 2]).status_code == 400
    assert client.post("/train").status_code == 400
    res = client.get("/train")
    assert res.status_code == 405 and res.is_json


def test_train_checks_uploads(client):
    res = client.post("/train", json={"model_name": "resnet18", "dataset": "upl_" + "a" * 32})
    assert res.status_code == 404 and res.get_json()["error"]["field"] == "dataset"
    csv = client.post(
        "/upload", data={"file": (io.BytesIO(b"text,label\na,x\nb,y\n"), "d.csv")}, content_type="multipart/form-data"
    ).get_json()["upload_id"]
    res = client.post("/train", json={"model_name": "resnet18", "dataset": csv})
    assert res.status_code == 400 and "csv" in res.get_json()["error"]["message"]
    assert client.post("/train", json={"model_name": "distilbert", "dataset": csv}).status_code == 202
    res = client.post("/train", json={"model_name": "distilbert", "teacher_upload_id": csv})
    assert res.status_code == 400 and res.get_json()["error"]["field"] == "teacher_upload_id"


def test_jobs_errors(client):
    res = client.get("/jobs/job_nope")
    assert res.status_code == 404 and res.get_json()["error"]["code"] == "job_not_found"
    assert client.get("/jobs?state=bogus").status_code == 400
    assert client.get("/jobs?limit=0").status_code == 400
    assert client.get("/jobs?limit=abc").status_code == 400
    assert client.get("/jobs?model_name=gpt2").status_code == 400


def test_cancel_queued_then_conflicts(client, idle_app):
    job_id = client.post("/train", json={"model_name": "resnet18"}).get_json()["job_id"]
    res = client.post("/cancel_training", json={"job_id": job_id})
    assert res.status_code == 200 and res.get_json() == {
        "job_id": job_id,
        "status": "cancelled",
        "state": "cancelled",
        "phase": "cancelled",
    }
    assert client.get(f"/jobs/{job_id}").get_json()["state"] == "cancelled"
    again = client.post("/cancel_training", json={"job_id": job_id})
    assert again.status_code == 409 and again.get_json()["error"]["state"] == "cancelled"
    assert client.post("/cancel_training").status_code == 409  # nothing running
    assert client.post("/cancel_training", json={"job_id": "job_nope"}).status_code == 404
    assert client.post("/cancel_training", json={"job_id": 5}).status_code == 400
    assert client.post("/cancel_training?job_id=" + job_id).status_code == 409  # query parameter works too


def test_restart_marks_running_job_interrupted(tmp_path):
    config = {"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "START_WORKERS": False}
    first = create_app(config)
    job_id = first.test_client().post("/train", json={"model_name": "resnet18"}).get_json()["job_id"]
    first.extensions["jobs"].store.update(job_id, state=RUNNING, phase="teacher")
    first.extensions["jobs"].shutdown()
    second = create_app(config)
    try:
        job = second.test_client().get(f"/jobs/{job_id}").get_json()
        assert job["state"] == "failed" and job["error_type"] == "interrupted" and "interrupted" in job["error"]
    finally:
        second.extensions["jobs"].shutdown()

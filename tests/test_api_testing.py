"""GET /models, POST /test_model, GET /test_metrics."""

from __future__ import annotations

import pytest

from backend.app import create_app

# one intra-op thread, as a job gets on a 2-core machine (backend.runtime.set_torch_threads)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path_factory.mktemp("t") / "data"), "START_WORKERS": False})
    yield app.test_client()
    app.extensions["jobs"].shutdown()


def test_models_lists_every_registered_model(client):
    body = client.get("/models").get_json()
    models = {m["id"]: m for m in body["models"]}
    assert set(models) == {"distilbert", "t5-small", "mobilenetv2", "resnet18", "bert"}
    assert models["bert"]["task"] == "sequence_classifier" and models["bert"]["upload_kinds"] == ["csv"]
    assert models["t5-small"]["task"] == "encoder_decoder" and models["bert"]["preset_defaults"]["quick"]["epochs"]
    assert models["resnet18"]["family"] == "vision" and "digits" in models["resnet18"]["datasets"]
    assert "resnet-18" in models["resnet18"]["aliases"] and models["distilbert"]["upload_kinds"] == ["csv"]
    assert models["resnet18"]["preset_defaults"]["quick"]["epochs"] >= 1
    assert body["options"]["temperature"] == 3.0 and body["options"]["alpha"] == 0.7


def test_test_model_builds_and_runs(client):
    res = client.post("/test_model", json={"model_name": "MobileNetV2"})
    assert res.status_code == 200, res.get_json()
    body = res.get_json()
    assert body["model_name"] == "mobilenetv2" and body["forward_pass"]["ok"]
    assert body["forward_pass"]["output_shape"] == [1, 10]
    assert body["parameters"]["total"] > 2_000_000 and body["layers"]
    assert body["size"]["model_size_mb"] > 1


def test_test_model_errors(client):
    res = client.post("/test_model", json={"model_name": "gpt2"})
    assert res.status_code == 400 and "resnet18" in res.get_json()["error"]["message"]
    assert client.post("/test_model", json={}).status_code == 400
    assert client.post("/test_model").status_code == 400
    assert client.post("/test_model", json={"model_name": "resnet18", "preset": "xl"}).status_code == 400
    assert client.get("/test_model").status_code == 405


def test_test_metrics_matches_reference_figures(client):
    res = client.get("/test_metrics")
    assert res.status_code == 200
    body = res.get_json()
    assert body["status"] == "ok"
    ref = body["reference_checks"]["resnet18"]
    assert ref["parameters"] == 11_689_512 and ref["gmacs_match"]
    pair = body["small_pair"]
    assert pair["comparison"]["parameter_ratio"] > 1  # the narrower student is smaller
    assert "predictions" not in pair and pair["setup"]

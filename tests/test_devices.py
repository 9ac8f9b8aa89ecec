"""Device and precision options: validation (400 naming what exists), /test, and the bf16 autocast path on CPU."""

from __future__ import annotations

import pytest
import torch

from backend import devices
from backend.jobconfig import ConfigError, JobConfig
from backend.kd import loop
from backend.kd.callbacks import CallbackList
from backend.models.adapters import VisionAdapter

HAS_CUDA = torch.cuda.is_available()


def test_explicit_cpu_and_auto_resolve():
    config = JobConfig.from_dict({"model_name": "resnet18", "device": "CPU", "precision": "fp32"})
    assert config.device == "cpu" and devices.resolve_device(config.device) == torch.device("cpu")
    assert devices.resolve_device("auto").type == ("cuda" if HAS_CUDA else "cpu")
    assert devices.default_precision(torch.device("cpu")) == "fp32"


@pytest.mark.parametrize("device", ["tpu", "cuda:x", 3, "cpu;rm"])
def test_unknown_device_is_a_config_error(device):
    with pytest.raises(ConfigError) as exc:
        JobConfig.from_dict({"model_name": "resnet18", "device": device})
    assert exc.value.field == "device" and "'cpu'" in str(exc.value)


@pytest.mark.skipif(HAS_CUDA, reason="needs a machine without CUDA")
def test_cuda_on_a_machine_without_one_is_400_naming_what_exists(client):
    res = client.post("/train", json={"model_name": "resnet18", "device": "cuda"})
    assert res.status_code == 400
    error = res.get_json()["error"]
    assert error["code"] == "invalid_option" and "not available" in error["message"] and "'cpu'" in error["message"]
    assert client.get("/jobs").get_json()["count"] == 0  # nothing stored
    res = client.post("/train", json={"model_name": "resnet18", "precision": "fp16", "device": "cpu"})
    assert res.status_code == 400 and "CUDA" in res.get_json()["error"]["message"]


def test_health_reports_devices_truthfully(client):
    body = client.get("/test").get_json()
    cpu = body["devices"][0]
    assert cpu["device"] == "cpu" and cpu["name"] and cpu["memory_bytes"] > 0
    assert [d for d in body["devices"] if d["device"].startswith("cuda")] == (
        [] if not HAS_CUDA else [d for d in body["devices"] if d["device"].startswith("cuda")]
    )
    assert len(body["devices"]) == 1 + (torch.cuda.device_count() if HAS_CUDA else 0) + int(
        torch.backends.mps.is_available()
    )
    assert body["default_device"] == "auto" and body["device"] == ("cuda" if HAS_CUDA else "cpu")


def test_server_default_device_fills_requests_naming_none(tmp_path):
    from backend.app import create_app

    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "DEVICE": "cpu", "START_WORKERS": False})
    try:
        res = app.test_client().post("/train", json={"model_name": "resnet18"})
        assert res.status_code == 202 and res.get_json()["config"]["device"] == "cpu"
    finally:
        app.extensions["jobs"].shutdown()


def test_bf16_autocast_path_on_cpu(one_torch_thread):
    """Forward passes run in bf16 under the adapter's autocast; logits, loss and weights stay fp32."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
    )
    seen: list[torch.dtype] = []
    model[1].register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    adapter = VisionAdapter()
    adapter.amp = devices.autocast(torch.device("cpu"), "bf16")
    from backend.data.datasets import TensorSet

    data = TensorSet({"pixel_values": torch.randn(32, 3, 4, 4), "labels": torch.arange(32) % 2})
    before = model[1].weight.detach().clone()
    settings = loop.TrainSettings(epochs=2, learning_rate=1e-2, batch_size=8, precision="bf16")
    rows = loop.train(model, adapter, data, settings, phase="teacher", callbacks=CallbackList(None))
    assert len(rows) == 8 and all(r["loss"] == r["loss"] for r in rows)
    assert seen and set(seen) == {torch.bfloat16}
    assert model[1].weight.dtype == torch.float32 and not torch.equal(model[1].weight, before)
    logits, _ = adapter.logits_and_targets(model, next(data.batches(4)))
    assert logits.dtype == torch.float32


def test_precision_rules():
    cpu = torch.device("cpu")
    assert devices.check_precision("bf16", cpu) == "bf16"
    with pytest.raises(devices.DeviceError, match="CUDA"):
        devices.check_precision("fp16", cpu)
    with pytest.raises(devices.DeviceError, match="precision must be"):
        devices.check_precision("int8", cpu)


@pytest.mark.slow
def test_whole_job_on_cpu_with_augmentation_says_so(tmp_path, one_torch_thread):
    """The plumbing of a whole job: device, precision and augmentation resolved, used and reported."""
    from tests.engine_helpers import tiny_job

    result = tiny_job(tmp_path, "resnet18", device="cpu", augment=True, pruning_steps=1, max_samples=120)
    report = result.report
    env = report["metadata"]["environment"]
    assert env["device"] == "cpu" and env["precision"] == "fp32"  # fp32: the CPU default
    assert report["metadata"]["config"]["resolved"]["augment"] is True
    assert "random resized crop" in report["metadata"]["dataset"]["augmentation"]
    kd = report["knowledge_distillation_analysis"]["teacher_logits"]
    assert kd["teacher_logits"] == "computed at every step" and "augmented" in kd["reason"]
    eff = report["efficiency_improvements"]
    assert eff["latency_conditions"]["device"] == "cpu (fp32)"
    assert eff["latency_cpu"] is None and "CPU" in eff["latency_cpu_reason"]
    assert 0.0 <= report["student_model_performance"]["accuracy"] <= 1.0


def test_augment_defaults_on_at_standard_off_at_quick_and_vision_only():
    from backend.models.registry import get_model_spec
    from backend.pipeline import resolved_hyperparameters

    spec = get_model_spec("resnet18")
    for preset, expected in (("standard", True), ("quick", False)):
        config = JobConfig.from_dict({"model_name": "resnet18", "preset": preset})
        assert resolved_hyperparameters(config, spec)["augment"] is expected
    config = JobConfig.from_dict({"model_name": "resnet18", "preset": "standard", "augment": False})
    assert resolved_hyperparameters(config, spec)["augment"] is False
    with pytest.raises(ConfigError) as exc:
        JobConfig.from_dict({"model_name": "distilbert", "augment": True})
    assert exc.value.field == "augment"
    with pytest.raises(ConfigError):
        JobConfig.from_dict({"model_name": "resnet18", "augment": "yes"})

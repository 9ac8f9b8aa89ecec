"""Memory of the data phase is bounded by the source data, not by the model's input size (issue 13, item 1)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.data import datasets as ds

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter so that ru_maxrss is this data phase's peak alone.
_DATA_PHASE = textwrap.dedent("""
    import io, json, resource, sys
    import numpy as np, torch
    torch.set_num_threads(1)
    from backend.data.uploads import save_upload
    from backend.jobconfig import JobConfig
    from backend.models.registry import get_model_spec
    from backend.pipeline import JobState, load_data, resolved_hyperparameters
    from pathlib import Path

    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # interpreter, torch, transformers
    n, upload_dir = int(sys.argv[1]), Path(sys.argv[2])
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez_compressed(buf, x=rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), y=np.arange(n) % 10)
    buf.seek(0)
    meta = save_upload(upload_dir, "big.npz", buf)
    del buf
    config = JobConfig.from_dict({"model_name": "resnet18", "preset": "standard", "dataset": meta["upload_id"],
                                  "augment": False})
    spec = get_model_spec("resnet18")
    state = JobState(config=config, spec=spec, hp=resolved_hyperparameters(config, spec))
    load_data(state, upload_dir, upload_dir / "cache")
    shapes = [tuple(b["pixel_values"].shape) for _, b in zip(range(3), state.train.batches(64, shuffle=True))]
    aug = type(state.train)(state.train.tensors, image_size=state.image_size, augment=True)
    shapes += [tuple(next(aug.batches(64, shuffle=True))["pixel_values"].shape)]
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "baseline_mb": baseline_mb,
                      "train": len(state.train), "image_size": state.image_size, "shapes": shapes,
                      "stored_dtype": str(state.train.tensors["images"].dtype)}))
""")


@pytest.mark.slow
def test_big_upload_data_phase_stays_near_source_size(tmp_path):
    n = 6000
    out = subprocess.run(
        [sys.executable, "-c", _DATA_PHASE, str(n), str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    float32_at_224_mb = n * 3 * 224 * 224 * 4 / 2**20  # what materialising every image at model size took: 3.4 GiB
    assert facts["image_size"] == 224 and facts["stored_dtype"] == "torch.uint8" and 4100 < facts["train"] < 4300
    assert facts["shapes"] == [[64, 3, 224, 224]] * 4
    # the imports alone take ~1 GB; the data phase adds the uint8 source (18 MB, a few copies while loading and
    # splitting) and a few 224x224 float batches (38 MB each) with their resize intermediates: ~150-250 MB
    growth_mb = facts["peak_rss_mb"] - facts["baseline_mb"]
    assert growth_mb < 450 < float32_at_224_mb / 7, facts


def test_batches_are_made_per_batch_and_exact_without_augmentation():
    images = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
    raw = ds.RawDataset("t", "vision", ["a", "b"], np.arange(10) % 2, images=images.numpy())
    plain = ds.vision_tensors(raw, np.arange(10), 16)
    assert plain.tensors["images"].dtype == torch.uint8 and "pixel_values" not in plain.tensors
    first = torch.cat([b["pixel_values"] for b in plain.batches(4)])
    again = torch.cat([b["pixel_values"] for b in plain.batches(3)])
    assert first.shape == (10, 3, 16, 16) and torch.equal(first, again)  # same example, same input: logits cacheable
    expected = (images[:1].float() / 255 - torch.tensor(ds.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        ds.IMAGENET_STD
    ).view(1, 3, 1, 1)
    assert torch.allclose(ds.model_inputs(images[:1], 8), expected, atol=1e-6)
    augmented = ds.vision_tensors(raw, np.arange(10), 16, augment=True)
    torch.manual_seed(0)
    a = next(augmented.batches(10))["pixel_values"]
    b = next(augmented.batches(10))["pixel_values"]
    assert a.shape == (10, 3, 16, 16) and not torch.equal(a, b) and not torch.equal(a, first)
    assert torch.equal(augmented.head(10)["pixel_values"], first)  # head (examples for tracing) never augmented


def test_teacher_logits_cached_only_without_augmentation():
    from backend.kd.loop import TEACHER_LOGITS, with_teacher_logits
    from backend.models.adapters import VisionAdapter

    raw = ds.RawDataset(
        "t",
        "vision",
        ["a", "b"],
        np.arange(12) % 2,
        images=np.random.default_rng(0).integers(0, 256, (12, 3, 8, 8), dtype=np.uint8),
    )
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2))
    plain, info = with_teacher_logits(teacher, VisionAdapter(), ds.vision_tensors(raw, np.arange(12), 16), batch_size=5)
    assert info["teacher_logits"] == "computed once per job" and isinstance(plain, ds.ImageSet)
    batch = next(plain.batches(12))
    with torch.no_grad():
        assert torch.allclose(batch[TEACHER_LOGITS][:, 0], teacher(batch["pixel_values"]), atol=1e-6)
    augmented = ds.vision_tensors(raw, np.arange(12), 16, augment=True)
    same, info = with_teacher_logits(teacher, VisionAdapter(), augmented)
    assert same is augmented and info["teacher_logits"] == "computed at every step" and "augmented" in info["reason"]


def test_max_samples_applies_before_decoding(tmp_path, monkeypatch):
    import io

    from backend.data import uploads

    buf = io.BytesIO()
    np.savez_compressed(
        buf, x=np.zeros((200, 6, 6), np.uint8) + np.arange(200, dtype=np.uint8)[:, None, None], y=np.arange(200) % 4
    )
    buf.seek(0)
    meta = uploads.save_upload(tmp_path, "a.npz", buf)
    raw = ds.load_upload(
        "vision", tmp_path / meta["upload_id"] / meta["stored_name"], "a.npz", 224, max_samples=40, seed=0
    )
    assert raw.images.shape == (40, 3, 6, 6) and raw.images.dtype == np.uint8  # grey repeated to 3 channels
    assert np.bincount(raw.labels).tolist() == [10] * 4 and "before decoding" in raw.description
    assert ds.subsample(raw, 40, 0) is raw  # nothing left to drop afterwards

"""Public datasets by name from caches the tests build in each library's own format; nothing reaches the network."""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from backend.data import public
from backend.data.datasets import DataError


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("KD_OFFLINE", "1")  # a missing file must fail, never download
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (the MNIST format): magic 0x08 (uint8) + ndim, big-endian dims, then the bytes."""
    path.write_bytes(
        struct.pack(">HBB", 0, 0x08, array.ndim)
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.astype(np.uint8).tobytes()
    )


def fashion_mnist_cache(root: Path, n_train: int = 40, n_test: int = 20) -> None:
    """torchvision's FashionMNIST layout: FashionMNIST/raw/ with the four extracted idx files."""
    raw = root / "torchvision" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)


def cifar10_cache(root: Path, monkeypatch, per_batch: int = 10) -> Path:
    """cifar-10-batches-py with tiny pickled batches; torchvision's md5 list pointed at these files' digests."""
    from torchvision.datasets import CIFAR10

    folder = root / "torchvision" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    digests = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8), "labels": list(range(per_batch))}
        (folder / name).write_bytes(pickle.dumps(batch))
        digests[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    # torchvision checks every file's md5 against its list: the real digests would reject these tiny files
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", digests[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", digests["test_batch"]]])
    monkeypatch.setattr(
        CIFAR10, "meta", {**CIFAR10.meta, "md5": hashlib.md5((folder / "batches.meta").read_bytes()).hexdigest()}
    )
    return folder


def sst2_cache(root: Path, n_train: int = 24, n_val: int = 12) -> None:
    """A Hugging Face `datasets` builder cache of stanfordnlp/sst2 (what load_dataset writes online).

    The parquet builder prepares local parquet files into <cache>/stanfordnlp___sst2/default/0.0.0/<sha>/, the
    folder an online load_dataset('stanfordnlp/sst2') fills and an offline one reads back.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import ClassLabel, Features, Value
    from datasets.packaged_modules.parquet.parquet import Parquet

    src = root / "src"
    src.mkdir(parents=True)
    files = {}
    for split, n in (("train", n_train), ("validation", n_val), ("test", 6)):
        labels = [i % 2 for i in range(n)] if split != "test" else [-1] * n  # GLUE's test split is unlabelled
        pq.write_table(
            pa.table(
                {
                    "idx": list(range(n)),
                    "sentence": [f"film {i} was {'good' if i % 2 else 'bad'}" for i in range(n)],
                    "label": labels,
                }
            ),
            src / f"{split}.parquet",
        )
        files[split] = str(src / f"{split}.parquet")
    features = Features(
        {"idx": Value("int32"), "sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"])}
    )
    builder = Parquet(
        cache_dir=str(root / "work"), dataset_name="sst2", config_name="default", data_files=files, features=features
    )
    out = root / "huggingface" / "stanfordnlp___sst2" / "default" / "0.0.0" / ("0" * 40)
    builder.download_and_prepare(output_dir=str(out))


def test_fashion_mnist_from_torchvision_raw_files(tmp_path):
    fashion_mnist_cache(tmp_path)
    assert public.is_cached("fashion_mnist", tmp_path)
    raw = public.load("fashion_mnist", tmp_path, max_samples=30, seed=0)
    assert raw.images.shape == (30, 1, 28, 28) and raw.images.dtype == np.uint8  # one channel, as stored
    assert raw.class_names[0] == "T-shirt/top" and len(raw.class_names) == 10 and "MIT" in raw.description
    from backend.data.datasets import vision_tensors

    batch = vision_tensors(raw, np.arange(4), 32).head(4)
    assert batch["pixel_values"].shape == (4, 3, 32, 32)  # greyscale repeated to three channels per batch


def test_cifar10_checks_md5_and_loads(tmp_path, monkeypatch):
    folder = cifar10_cache(tmp_path, monkeypatch)
    raw = public.load("cifar10", tmp_path)
    assert raw.images.shape == (60, 3, 32, 32) and raw.images.dtype == np.uint8 and raw.class_names[0] == "c0"
    (folder / "test_batch").write_bytes(b"corrupt")  # md5 no longer matches: torchvision refuses it
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        public.load("cifar10", tmp_path)


def test_sst2_from_a_local_hugging_face_cache(tmp_path):
    sst2_cache(tmp_path)
    assert public.is_cached("sst2", tmp_path)
    raw = public.load("sst2", tmp_path)
    assert raw.class_names == ["negative", "positive"] and len(raw.texts) == 36  # train + validation, test unlabelled
    assert raw.texts[1] == "film 1 was good" and raw.labels[1] == 1
    capped = public.load("sst2", tmp_path, max_samples=20, seed=0)
    assert len(capped.texts) == 20 and np.bincount(capped.labels).tolist() == [10, 10]


def test_offline_without_a_cache_names_the_folder_and_the_upload_alternative(tmp_path, client):
    for name in ("imdb", "cifar100"):
        with pytest.raises(DataError) as exc:
            public.load(name, tmp_path)
        assert str(public.cache_folder(name, tmp_path)) in str(exc.value) and "POST /upload" in str(exc.value)
    res = client.post("/train", json={"model_name": "distilbert", "dataset": "ag_news"})
    assert res.status_code == 400
    error = res.get_json()["error"]
    assert error["code"] == "dataset_unavailable" and "fancyzhx___ag_news" in error["message"]
    assert "CSV" in error["message"] and client.get("/jobs").get_json()["count"] == 0


def test_models_lists_public_datasets_with_sizes_and_licences(client):
    body = client.get("/models").get_json()
    listed = {d["name"]: d for d in body["public_datasets"]}
    assert set(listed) == {"cifar10", "cifar100", "fashion_mnist", "sst2", "imdb", "ag_news"}
    assert listed["fashion_mnist"]["licence"] == "MIT" and listed["ag_news"]["examples"] == 127600
    vision = next(m for m in body["models"] if m["id"] == "resnet18")
    assert {"cifar100", "fashion_mnist"} <= set(vision["datasets"])

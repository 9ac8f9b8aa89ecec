"""POST /upload and backend.data.uploads: good files are described, hostile ones refused leaving nothing behind."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backend.app import create_app
from backend.data import uploads

# ---------------------------------------------------------------- file makers


def csv_bytes(rows: list[tuple[str, str]], header: str = "text,label") -> bytes:
    return (header + "\n" + "\n".join(f"{text},{label}" for text, label in rows) + "\n").encode()


def png_bytes(color: tuple[int, int, int], size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def zip_bytes(entries: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def image_zip(prefix: str = "") -> bytes:
    return zip_bytes(
        {f"{prefix}cat/{i}.png": png_bytes((200, 10, 10)) for i in range(3)}
        | {f"{prefix}dog/{i}.png": png_bytes((10, 10, 200)) for i in range(2)}
    )


def model_zip(extra: dict[str, bytes] | None = None, prefix: str = "tiny/") -> bytes:
    from safetensors.torch import save

    config = {"architectures": ["DistilBertForSequenceClassification"], "model_type": "distilbert"}
    weights = save(
        {"distilbert.embeddings.word_embeddings.weight": torch.zeros(10, 4), "classifier.weight": torch.zeros(2, 4)}
    )
    entries = {f"{prefix}config.json": json.dumps(config).encode(), f"{prefix}model.safetensors": weights}
    return zip_bytes(entries | (extra or {}))


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def tree(root: Path) -> set[str]:
    """Every file under root, relative, except the job database (written by the app itself)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "jobs.sqlite3" not in p.name}


@pytest.fixture()
def up_app(tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "DATA_DIR": str(tmp_path / "data"),
            "START_WORKERS": False,
            "MAX_UPLOAD_MB": 2,
            "MAX_ZIP_ENTRIES": 50,
            "MAX_UNCOMPRESSED_MB": 3,
        }
    )
    yield app
    app.extensions["jobs"].shutdown()


@pytest.fixture()
def post(up_app):
    client = up_app.test_client()

    def _post(name: str, data: bytes):
        return client.post("/upload", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")

    return _post


# ---------------------------------------------------------------- accepted files


def test_csv_upload_is_described(post, up_app):
    res = post("reviews.csv", csv_bytes([("good film", "pos"), ("bad film", "neg"), ("fine", "pos")]))
    assert res.status_code == 201, res.get_json()
    body = res.get_json()
    assert body["kind"] == "csv" and body["rows"] == 3 and body["classes"] == 2
    assert body["class_names"] == ["neg", "pos"] and body["upload_id"].startswith("upl_")
    assert res.headers["Location"] == f"/uploads/{body['upload_id']}"
    path, meta = uploads.resolve_upload(up_app.config["UPLOAD_DIR"], body["upload_id"])
    assert path.name == "upload.csv" and meta["filename"] == "reviews.csv"
    texts, labels, names = uploads.load_text_csv(path)
    assert texts[0] == "good film" and labels == [1, 0, 1] and names == ["neg", "pos"]


@pytest.mark.parametrize("prefix", ["", "data/"])
def test_image_zip_upload_counts_classes_and_images(post, up_app, prefix):
    res = post("pets.zip", image_zip(prefix))
    assert res.status_code == 201, res.get_json()
    body = res.get_json()
    assert body["kind"] == "image_zip" and body["classes"] == 2 and body["images"] == 5
    assert body["images_per_class"] == {"cat": 3, "dog": 2}
    path, _ = uploads.resolve_upload(up_app.config["UPLOAD_DIR"], body["upload_id"])
    images, labels, names = uploads.load_image_zip(path, 16)
    assert images.shape == (5, 3, 8, 8) and images.dtype == np.uint8  # source resolution, one byte a value
    assert labels.dtype == np.int64 and labels.tolist() == [0, 0, 0, 1, 1] and names == ["cat", "dog"]
    assert images[0, 0].mean() == 200 and images[3, 2].mean() == 200  # red cats, blue dogs
    small, _, _ = uploads.load_image_zip(path, 4)  # never stored larger than the model's input
    assert small.shape == (5, 3, 4, 4)


def test_model_zip_upload_reports_architecture_and_parameters(post, up_app, tmp_path):
    res = post("model.zip", model_zip())
    assert res.status_code == 201, res.get_json()
    body = res.get_json()
    assert body["kind"] == "model_zip" and body["use_as"] == "teacher"
    assert body["architecture"] == "DistilBertForSequenceClassification" and body["parameters"] == 48
    assert body["model_hint"] == "distilbert"  # the registry's recogniser, from config.json's model_type
    path, _ = uploads.resolve_upload(up_app.config["UPLOAD_DIR"], body["upload_id"])
    folder = uploads.extract_model_zip(path, tmp_path / "extracted")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


def test_checkpoint_uploads_count_parameters(post):
    buf = io.BytesIO()
    torch.save(torch.nn.Linear(4, 3).state_dict(), buf)
    res = post("teacher.pth", buf.getvalue())
    assert res.status_code == 201, res.get_json()
    assert res.get_json()["kind"] == "checkpoint" and res.get_json()["parameters"] == 15
    assert res.get_json()["model_hint"] is None  # no registered model has these tensor names
    from safetensors.torch import save

    res = post("teacher.safetensors", save({"w": torch.zeros(2, 5)}))
    assert res.status_code == 201 and res.get_json()["parameters"] == 10
    res = post("distil.safetensors", save({"distilbert.embeddings.word_embeddings.weight": torch.zeros(2, 5)}))
    assert res.status_code == 201 and res.get_json()["model_hint"] == "distilbert"  # from the tensor names


def test_npz_upload_and_loading(post, up_app):
    x = np.random.default_rng(0).integers(0, 255, size=(6, 10, 10, 3), dtype=np.uint8)
    res = post("arrays.npz", npz_bytes(x=x, y=np.array([0, 1, 0, 1, 2, 2])))
    assert res.status_code == 201, res.get_json()
    assert res.get_json()["images"] == 6 and res.get_json()["classes"] == 3
    path, _ = uploads.resolve_upload(up_app.config["UPLOAD_DIR"], res.get_json()["upload_id"])
    images, labels, names = uploads.load_image_zip(path, 8)  # the pipeline's loader takes .npz too
    assert images.shape == (6, 3, 10, 10) and labels.tolist() == [0, 1, 0, 1, 2, 2] and names == ["0", "1", "2"]
    assert images.dtype == np.uint8 and (images == x.transpose(0, 3, 1, 2)).all()  # kept as uploaded


def test_upload_listing_and_detail(post, up_app):
    upload_id = post("a.csv", csv_bytes([("x", "a"), ("y", "b")])).get_json()["upload_id"]
    client = up_app.test_client()
    assert client.get("/uploads").get_json()["uploads"][0]["upload_id"] == upload_id
    assert client.get(f"/uploads/{upload_id}").get_json()["rows"] == 2
    assert client.get("/uploads/upl_" + "0" * 32).status_code == 404
    res = client.get("/uploads/..%2F..%2Fetc")
    assert res.status_code == 404 and res.is_json


# ---------------------------------------------------------------- refused files


def _stored_symlink_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("cat/link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
        zf.writestr("dog/a.png", png_bytes((1, 2, 3)))
    return buf.getvalue()


def _encrypted_flag_zip() -> bytes:
    """A ZIP whose entries claim to be encrypted (bit 0 of the flags; zipfile cannot write one)."""
    data = bytearray(zip_bytes({"cat/a.png": png_bytes((1, 2, 3)), "dog/a.png": png_bytes((1, 2, 3))}))
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            data[start + offset] |= 0x1
            start += 4
    return bytes(data)


HOSTILE = {
    "absolute path": (
        "evil.zip",
        lambda: zip_bytes({"/tmp/evil.png": png_bytes((1, 1, 1)), "dog/a.png": png_bytes((1, 1, 1))}),
        "absolute",
    ),
    "windows drive": ("evil.zip", lambda: zip_bytes({"C:/evil.png": b"x", "dog/a.png": b"y"}), "absolute"),
    "dot dot": (
        "evil.zip",
        lambda: zip_bytes({"cat/../../evil.png": png_bytes((1, 1, 1)), "dog/a.png": png_bytes((1, 1, 1))}),
        "..",
    ),
    "backslash dot dot": ("evil.zip", lambda: zip_bytes({"cat\\..\\..\\evil.png": b"x", "dog/a.png": b"y"}), ".."),
    "symlink": ("evil.zip", _stored_symlink_zip, "symbolic link"),
    "encrypted": ("evil.zip", _encrypted_flag_zip, "encrypted"),
    "too many entries": ("many.zip", lambda: zip_bytes({f"c{i % 2}/{i}.png": b"x" for i in range(60)}), "entries"),
    "ratio bomb": ("bomb.zip", lambda: zip_bytes({"cat/a.png": bytes(2_500_000), "dog/b.png": b"x"}), "ratio"),
    "too many bytes": (
        "big.zip",
        lambda: zip_bytes({f"c{i}/a.png": _low_entropy(800_000) for i in range(5)}),
        "unpacks",
    ),
    "python in model zip": ("model.zip", lambda: model_zip({"tiny/modeling_evil.py": b"import os"}), "code"),
    "custom code config": (
        "model.zip",
        lambda: zip_bytes(
            {"config.json": json.dumps({"auto_map": {"AutoModel": "evil.Model"}}).encode(), "model.safetensors": b"x"}
        ),
        "custom code",
    ),
    "model zip without weights": ("model.zip", lambda: zip_bytes({"config.json": b"{}"}), "no weights"),
    "not a zip": ("fake.zip", lambda: b"PK but not really a zip", "ZIP"),
    "one class": ("one.zip", lambda: zip_bytes({"cat/a.png": png_bytes((1, 1, 1))}), "one class"),
    "images outside class folders": (
        "flat.zip",
        lambda: zip_bytes({"a.png": png_bytes((1, 1, 1)), "b.png": png_bytes((1, 1, 1))}),
        "class folder",
    ),
    "unreadable image": (
        "bad.zip",
        lambda: zip_bytes({"cat/a.png": png_bytes((1, 1, 1)), "dog/broken.png": b"not an image"}),
        "dog/broken.png",
    ),
    "csv missing column": ("x.csv", lambda: csv_bytes([("a", "b")], header="sentence,label"), "'text'"),
    "csv one class": ("x.csv", lambda: csv_bytes([("a", "pos"), ("b", "pos")]), "one class"),
    "csv not utf8": ("x.csv", lambda: "text,label\ncafé,a\nb,c\n".encode("latin-1"), "UTF-8"),
    "csv empty label": ("x.csv", lambda: b"text,label\nhello,\nworld,b\n", "empty label"),
    "pickled module": ("m.pt", lambda: _torch_save(torch.nn.Linear(2, 2)), "weights_only"),
    "pickle that runs code": ("evil.pt", lambda: _evil_pickle(), "weights_only"),
    "corrupt safetensors": ("x.safetensors", lambda: b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json", "safetensors"),
    "npz with pickled objects": (
        "x.npz",
        lambda: npz_bytes(x=np.array([object()] * 4, dtype=object), y=np.array([0, 1, 0, 1])),
        "pickle",
    ),
    "npz missing labels": ("x.npz", lambda: npz_bytes(x=np.zeros((4, 8, 8))), "'y'"),
    "npz one class": ("x.npz", lambda: npz_bytes(x=np.zeros((4, 8, 8)), y=np.zeros(4, dtype=int)), "one class"),
    "empty file": ("x.csv", lambda: b"", "empty"),
}


def _low_entropy(n: int) -> bytes:
    """Bytes that deflate about 4:1: under the ratio limit, so only the total size can refuse them."""
    return bytes(np.random.default_rng(0).integers(0, 4, n, dtype=np.uint8) + ord("a"))


def _torch_save(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/kd_upload_pwned",))


def _evil_pickle() -> bytes:
    return _torch_save({"weight": _Evil()})


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_upload_is_refused_and_leaves_nothing(case, post, up_app, tmp_path):
    name, make, phrase = HOSTILE[case]
    before = tree(tmp_path)
    res = post(name, make())
    assert res.status_code == 400, (case, res.get_json())
    message = res.get_json()["error"]["message"]
    assert phrase.lower() in message.lower(), message
    assert "Traceback" not in message
    assert tree(tmp_path) == before, "a refused upload left files behind"
    upload_dir = Path(up_app.config["UPLOAD_DIR"])
    assert not list(upload_dir.glob("upl_*")) and not any((upload_dir / ".staging").iterdir())
    assert not Path("/tmp/kd_upload_pwned").exists()
    assert not (tmp_path / "evil.png").exists() and not Path("/tmp/evil.png").exists()


def test_too_large_is_413_json(post, up_app):
    before = tree(Path(up_app.config["DATA_DIR"]))
    res = post("big.csv", b"text,label\n" + b"a,b\n" * 700_000)  # about 2.8 MB, limit 2 MB
    assert res.status_code == 413 and res.get_json()["error"]["message"].startswith("Request body too large")
    assert tree(Path(up_app.config["DATA_DIR"])) == before


def test_wrong_type_missing_field_and_client_path(post, up_app, tmp_path):
    client = up_app.test_client()
    res = post("script.py", b"print(1)")
    assert res.status_code == 415 and ".csv" in res.get_json()["error"]["message"]
    assert (
        client.post(
            "/upload", data={"other": (io.BytesIO(b"x"), "a.csv")}, content_type="multipart/form-data"
        ).status_code
        == 400
    )
    assert client.post("/upload", json={"file": "x"}).status_code == 415
    res = post("../../escape.csv", csv_bytes([("a", "x"), ("b", "y")]))
    assert res.status_code == 201
    assert not (tmp_path / "escape.csv").exists() and not (tmp_path / "data" / "escape.csv").exists()
    folder = Path(up_app.config["UPLOAD_DIR"]) / res.get_json()["upload_id"]
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "upload.csv"]
    assert res.get_json()["filename"] == "escape.csv"


def test_resolve_upload_rejects_bad_ids(tmp_path):
    for bad in ("../etc", "upl_xyz", None, 5, "upl_" + "0" * 32):
        with pytest.raises(uploads.UploadNotFound):
            uploads.resolve_upload(tmp_path, bad)


def test_extract_model_zip_refuses_traversal(tmp_path):
    evil = tmp_path / "evil.zip"
    evil.write_bytes(zip_bytes({"config.json": b"{}", "../outside.bin": b"x"}))
    with pytest.raises(uploads.UploadError):
        uploads.extract_model_zip(evil, tmp_path / "dest")
    assert not (tmp_path / "outside.bin").exists()


def test_csv_with_integer_labels_and_semicolons(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("Text;Label\nten;10\ntwo;2\nnine;9\n", encoding="utf-8")
    texts, labels, names = uploads.load_text_csv(path)
    assert names == ["2", "9", "10"] and labels == [2, 0, 1] and texts == ["ten", "two", "nine"]

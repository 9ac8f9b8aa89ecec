"""Hostile uploads against a real server process: each is a clear 4xx JSON error, nothing is stored, the
server stays healthy. Memory bombs in torch checkpoints (alone and inside model ZIPs), too many entries,
corrupt members (bad CRC, broken deflate stream, truncation), legacy pickles, too many tensor bytes.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
import requests
import torch
from PIL import Image

from tests.servers import start_app, stop, wait_for

MAX_ENTRIES, MAX_TENSOR_MB = 50, 2


# ---------------------------------------------------------------- file makers


def torch_bytes(obj, **kwargs) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, **kwargs)
    return buf.getvalue()


def rezip(data: bytes, compression: int = zipfile.ZIP_DEFLATED, extra: dict[str, bytes] | None = None) -> bytes:
    """The same archive written again with another compression (and extra entries)."""
    src, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w", compression, compresslevel=9 if compression == zipfile.ZIP_DEFLATED else None) as zf:
        for info in src.infolist():
            zf.writestr(info.filename, src.read(info))
        for name, payload in (extra or {}).items():
            zf.writestr(name, payload)
    return out.getvalue()


def pt_bomb() -> bytes:
    """A ~17 KB torch checkpoint whose one record (16 MiB of zeros) inflates about 967:1."""
    return rezip(torch_bytes({"weight": torch.zeros(4 * 1024 * 1024)}))


def png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buf, format="PNG")
    return buf.getvalue()


def zip_of(entries: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def model_zip_with_bin(weights: bytes) -> bytes:
    config = {"architectures": ["DistilBertForSequenceClassification"], "model_type": "distilbert"}
    return zip_of({"tiny/config.json": json.dumps(config).encode(), "tiny/pytorch_model.bin": weights})


def member_data_offset(data: bytes, name: str) -> tuple[int, int]:
    """(start, length) of a member's stored bytes inside a ZIP."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    start = info.header_offset
    name_len = int.from_bytes(data[start + 26 : start + 28], "little")
    extra_len = int.from_bytes(data[start + 28 : start + 30], "little")
    return start + 30 + name_len + extra_len, info.compress_size


def flip_byte(data: bytes, name: str) -> bytes:
    """The ZIP with one byte in the middle of a member changed: its CRC no longer matches."""
    start, length = member_data_offset(data, name)
    out = bytearray(data)
    out[start + length // 2] ^= 0xFF
    return bytes(out)


def break_deflate(data: bytes, name: str) -> bytes:
    """The ZIP with a deflated member's stream replaced by bytes no inflater accepts (invalid block type)."""
    start, length = member_data_offset(data, name)
    out = bytearray(data)
    out[start : start + length] = b"\xff" * length
    return bytes(out)


def image_zip(compression: int = zipfile.ZIP_STORED) -> bytes:
    return zip_of({"cat/a.png": png((200, 10, 10)), "dog/b.png": png((10, 10, 200))}, compression)


HOSTILE = {
    # name: (filename, maker, statuses, phrases the message must hold)
    "967:1 pt bomb": ("teacher.pt", pt_bomb, {400}, ["archive/data/0", "ratio"]),
    "bin bomb in model zip": (
        "model.zip",
        lambda: model_zip_with_bin(pt_bomb()),
        {400},
        ["pytorch_model.bin", "ratio"],
    ),
    "pt with too many entries": (
        "teacher.pt",
        lambda: rezip(
            torch_bytes({"w": torch.ones(3)}), zipfile.ZIP_STORED, {f"archive/junk/{i}": b"x" for i in range(60)}
        ),
        {400},
        ["entries"],
    ),
    "zip with too many entries": (
        "many.zip",
        lambda: zip_of({f"c{i % 2}/{i}.png": b"x" for i in range(60)}),
        {400},
        ["entries"],
    ),
    "too many tensor bytes": (
        "big.pt",
        lambda: torch_bytes({"w": torch.ones(1024 * 1024)}),
        {413},
        ["MB of tensors", f"{MAX_TENSOR_MB} MB"],
    ),
    "legacy pickle pt": (
        "old.pt",
        lambda: torch_bytes({"w": torch.ones(3)}, _use_new_zipfile_serialization=False),
        {400},
        ["legacy"],
    ),
    "bad crc in image zip": ("pets.zip", lambda: flip_byte(image_zip(), "dog/b.png"), {400}, ["dog/b.png", "corrupt"]),
    "corrupt deflate in image zip": (
        "pets.zip",
        lambda: break_deflate(image_zip(zipfile.ZIP_DEFLATED), "cat/a.png"),
        {400},
        ["cat/a.png", "corrupt"],
    ),
    "bad crc in model zip": (
        "model.zip",
        lambda: flip_byte(
            zip_of(
                {
                    "config.json": b'{"model_type": "distilbert"}',
                    "model.safetensors": b"x" * 64,
                    "tokenizer.json": b'{"version": "1.0", "padding": null}',
                }
            ),
            "tokenizer.json",
        ),
        {400},
        ["tokenizer.json", "corrupt"],
    ),
    "bad crc in pt record": (
        "teacher.pt",
        lambda: flip_byte(torch_bytes({"w": torch.ones(64)}), "archive/data/0"),
        {400},
        ["archive/data/0", "corrupt"],
    ),
    "bad crc in npz": ("x.npz", lambda: flip_byte(_npz(), "x.npy"), {400}, ["x.npy", "corrupt"]),
    "legacy pickle beside the weights of a model zip": (
        "model.zip",
        lambda: zip_of(
            {
                "config.json": b'{"model_type": "distilbert"}',
                "model.safetensors": _safetensors(),
                "training_args.bin": torch_bytes({"lr": torch.ones(1)}, _use_new_zipfile_serialization=False),
            }
        ),
        {400},
        ["training_args.bin", "legacy"],
    ),
    "truncated zip": ("pets.zip", lambda: image_zip()[: len(image_zip()) // 2], {400}, ["ZIP"]),
}


def _safetensors() -> bytes:
    from safetensors.torch import save

    return save({"classifier.weight": torch.zeros(2, 4)})


def _npz() -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, x=np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8), y=np.array([0, 1, 0, 1]))
    return buf.getvalue()


# ---------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("hostile") / "data"
    env = {
        "KD_MAX_ZIP_ENTRIES": str(MAX_ENTRIES),
        "KD_MAX_TENSOR_MB": str(MAX_TENSOR_MB),
        "KD_START_WORKERS": "0",
        "KD_TORCH_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    proc, url = start_app(data, data.parent / "server.log", env=env)  # the log beside the data dir the tests list
    try:
        wait_for(f"{url}/test", proc)
        yield url, data
    finally:
        stop(proc)


def files_under(root: Path) -> set[str]:
    """Every file under the data dir except the job database (the app's own, written at any time)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "jobs.sqlite3" not in p.name}


def upload(url: str, name: str, data: bytes) -> requests.Response:
    return requests.post(f"{url}/upload", files={"file": (name, data)}, timeout=60)


def test_bomb_is_as_described():
    data = pt_bomb()
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("archive/data/0")
    assert 16_000 < len(data) < 18_500 and info.file_size / info.compress_size > 900


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_upload_is_refused_nothing_stored_server_healthy(server, case):
    url, data_dir = server
    name, make, statuses, phrases = HOSTILE[case]
    uploads_before = requests.get(f"{url}/uploads", timeout=10).json()
    files_before = files_under(data_dir)
    res = upload(url, name, make())
    assert res.status_code in statuses, (case, res.status_code, res.text[:300])
    error = res.json()["error"]
    assert set(error) >= {"code", "message"} and "Traceback" not in error["message"]
    for phrase in phrases:
        assert phrase.lower() in error["message"].lower(), (case, error["message"])
    assert requests.get(f"{url}/uploads", timeout=10).json() == uploads_before
    assert files_under(data_dir) == files_before, "a refused upload left files behind"
    assert requests.get(f"{url}/test", timeout=10).status_code == 200


def test_a_sound_checkpoint_still_passes(server):
    url, _ = server
    res = upload(url, "teacher.pt", torch_bytes(torch.nn.Linear(4, 3).state_dict()))
    assert res.status_code == 201, res.text
    assert res.json()["parameters"] == 15
    assert requests.delete(f"{url}/uploads/{res.json()['upload_id']}", timeout=10).status_code == 204


def test_job_time_loaders_check_archives_too(tmp_path):
    """What a job torch.loads (a vision teacher checkpoint, a teacher ZIP's weights) is checked again there."""
    from backend.data.uploads import UploadError, extract_model_zip
    from backend.models.teachers import load_state_dict_file

    bomb = tmp_path / "upload.pt"
    bomb.write_bytes(pt_bomb())
    with pytest.raises(UploadError, match="ratio"):
        load_state_dict_file(bomb)
    model = tmp_path / "upload.zip"
    model.write_bytes(model_zip_with_bin(pt_bomb()))
    with pytest.raises(UploadError, match="pytorch_model.bin"):
        extract_model_zip(model, tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upload.pt", "upload.zip"]  # no model, no *.tmp
    good = tmp_path / "good.zip"
    good.write_bytes(model_zip_with_bin(torch_bytes({"classifier.weight": torch.ones(2, 4)})))
    folder = extract_model_zip(good, tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "pytorch_model.bin"]
    assert load_state_dict_file(folder / "pytorch_model.bin")["classifier.weight"].sum() == 8

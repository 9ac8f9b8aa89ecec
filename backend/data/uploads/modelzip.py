"""A teacher uploaded as a ZIP of a save_pretrained folder: no code, no custom code, weights checked before use."""

from __future__ import annotations

import io
import json
import re
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import IO, Any

from .checkpoints import _bin_counts, _safetensors_counts, check_torch_archive
from .common import CODE_EXTENSIONS, TORCH_EXTENSIONS, ModelRecogniser, UploadError, UploadLimits
from .zipsafe import _CORRUPT, _common_root, _corrupt_member, _file_entries, _read_member, open_checked_zip


def _model_root(entries: list[zipfile.ZipInfo]) -> str | None:
    """The folder prefix holding config.json ('' for the ZIP's top), or None if there is none."""
    names = [e.filename.replace("\\", "/") for e in entries]
    if "config.json" in names:
        return ""
    root = _common_root(names)
    return root if root and root + "config.json" in names else None


def _check_no_code(entries: list[zipfile.ZipInfo]) -> None:
    for info in entries:
        if Path(info.filename).suffix.lower() in CODE_EXTENSIONS:
            raise UploadError(f"The model ZIP contains code ({info.filename!r}); code files are refused.")


def _weight_entries(entries: list[zipfile.ZipInfo], root: str) -> list[zipfile.ZipInfo]:
    """Weight files directly in the model folder: *.safetensors, else pytorch_model*.bin."""

    def folder(info: zipfile.ZipInfo) -> str:
        name = info.filename.replace("\\", "/")
        return name.rsplit("/", 1)[0] + "/" if "/" in name else ""

    direct = [e for e in entries if folder(e) == root]
    safetensors = [e for e in direct if e.filename.endswith(".safetensors")]
    return safetensors or [e for e in direct if re.search(r"pytorch_model[^/]*\.bin$", e.filename)]


def _inspect_model_zip(
    zf: zipfile.ZipFile, entries: list[zipfile.ZipInfo], limits: UploadLimits, recognise: ModelRecogniser
) -> dict[str, Any]:
    _check_no_code(entries)
    root = _model_root(entries)
    config = _model_config(
        zf, zf.getinfo(next(e.filename for e in entries if e.filename.replace("\\", "/") == root + "config.json"))
    )
    weights = _weight_entries(entries, root)
    if not weights:
        raise UploadError("The model ZIP has config.json but no weights (model.safetensors or pytorch_model.bin).")
    fmt = "safetensors" if weights[0].filename.endswith(".safetensors") else "bin"
    for info in entries:  # any other file torch.load could be pointed at (e.g. training_args.bin)
        if info not in weights and Path(info.filename).suffix.lower() in TORCH_EXTENSIONS:
            check_torch_archive(io.BytesIO(_read_member(zf, info)), info.filename, limits)
    params = tensors = 0
    for info in weights:
        data = _read_member(zf, info)
        counts = (
            _safetensors_counts(data, info.filename)
            if fmt == "safetensors"
            else _bin_counts(data, info.filename, limits)
        )
        tensors, params = tensors + counts[0], params + counts[1]
    arch = (config.get("architectures") or [None])[0]
    return {
        "kind": "model_zip",
        "use_as": "teacher",
        "architecture": arch,
        "model_type": config.get("model_type"),
        "model_hint": recognise.from_hf_type(config.get("model_type")),
        "weights_format": fmt,
        "weight_files": len(weights),
        "tensors": tensors,
        "parameters": params,
        "files": len(entries),
    }


def _model_config(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> dict[str, Any]:
    try:
        config = json.loads(_read_member(zf, info, limit=2**20))
    except (ValueError, UnicodeDecodeError):
        raise UploadError("The model's config.json is not valid JSON.") from None
    if not isinstance(config, dict):
        raise UploadError("The model's config.json must hold a JSON object.")
    if config.get("auto_map"):
        raise UploadError("The model's config.json asks for custom code (auto_map); custom code is refused.")
    return config


def extract_model_zip(path: str | Path, dest: str | Path, limits: UploadLimits = UploadLimits()) -> Path:
    """Safely extract a save_pretrained folder from a ZIP into dest; returns the folder with config.json.

    Extracts into `<dest>.<random>.tmp` and renames it into place, so a killed extraction leaves only a
    `*.tmp` folder (removed at the next start), never a half-filled dest; a dest already there is reused
    (uploads never change), so a second job never swaps the files under a first one. Weight files that torch.load
    would read (.bin/.pt/.pth) get check_torch_archive before anything loads them."""
    dest = Path(dest).resolve()
    if (dest / "config.json").is_file():  # extracted (and checked) by an earlier job: only ever renamed in whole
        return dest
    tmp = dest.with_name(f"{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        _extract_model_files(path, tmp, limits)
        shutil.rmtree(dest, ignore_errors=True)
        try:
            tmp.rename(dest)
        except OSError:  # another job extracted the same upload at the same moment: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _extract_model_files(path: str | Path, dest: Path, limits: UploadLimits) -> None:
    dest.mkdir(parents=True)
    with open_checked_zip(path, limits) as zf:
        entries = _file_entries(zf)
        root = _model_root(entries)
        if root is None:
            raise UploadError("The ZIP holds no model folder (no config.json).")
        _check_no_code(entries)
        for info in entries:
            name = info.filename.replace("\\", "/")
            if not name.startswith(root):
                continue
            target = (dest / name[len(root) :]).resolve()
            if dest not in target.parents:
                raise UploadError(f"The ZIP entry {info.filename!r} points outside its folder; refused.")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as out:
                    _copy_capped(src, out, info.file_size, info.filename)
            except _CORRUPT as exc:
                raise _corrupt_member(info, exc) from None
            if target.suffix.lower() in TORCH_EXTENSIONS:
                check_torch_archive(target, info.filename, limits)


def _copy_capped(src: IO[bytes], out: IO[bytes], cap: int, name: str) -> None:
    written = 0
    while chunk := src.read(1024 * 1024):
        written += len(chunk)
        if written > cap:
            raise UploadError(f"The ZIP entry {name!r} is larger than it declares; refused.")
        out.write(chunk)

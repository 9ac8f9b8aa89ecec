"""Uploaded files: hostile until checked, stored under server-made names, read back by the pipeline.

An upload lives in `<upload_dir>/<upload_id>/` with the file (`upload.<ext>`) and a `meta.json`.
It is written to `<upload_dir>/.staging/<upload_id>/` first and renamed into place only after
every check passed, so a refused file leaves nothing behind. No uploaded code ever runs:
checkpoints load with `torch.load(weights_only=True)`, arrays with `allow_pickle=False`, and
ZIP entries are read one by one, never with `extractall`.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import stat
import time
import uuid
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping

import numpy as np

UPLOAD_ID_RE = re.compile(r"^upl_[0-9a-f]{32}$")
EXTENSIONS = {".csv": "csv", ".zip": "zip", ".pt": "checkpoint", ".pth": "checkpoint",
              ".safetensors": "safetensors", ".npz": "npz"}
# Files torch.load would read (a model folder's pytorch_model.bin, checkpoints).
TORCH_EXTENSIONS = {".bin", ".pt", ".pth"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# Files that could carry code; a model folder never needs them.
CODE_EXTENSIONS = {".py", ".pyc", ".pyo", ".pyd", ".so", ".dll", ".dylib", ".sh", ".bat", ".exe"}
IGNORED_PARTS = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}
STAGING = ".staging"
META = "meta.json"
# What each kind is good for in POST /train.
DATASET_KINDS = {"text": ("csv",), "vision": ("image_zip", "npz")}
TEACHER_KINDS = ("checkpoint", "safetensors", "model_zip")


class UploadError(ValueError):
    """An upload that was refused; the message says what is wrong with it."""

    status = 400
    code = "invalid_upload"


class UnsupportedUpload(UploadError):
    """A file type this service does not take."""

    status = 415
    code = "unsupported_media_type"


class UploadTooLarge(UploadError):
    """A file over the size limit."""

    status = 413
    code = "payload_too_large"


class UploadNotFound(UploadError, LookupError):
    """An upload_id that names no stored upload."""

    status = 404
    code = "upload_not_found"


class UploadInUse(UploadError):
    """An upload that a queued or running job still needs."""

    status = 409
    code = "upload_in_use"


@dataclass(frozen=True)
class UploadLimits:
    """Bounds on what one upload may make the server read or write."""

    max_bytes: int = 200 * 1024 * 1024
    max_zip_entries: int = 20_000
    max_uncompressed_bytes: int = 1024 * 1024 * 1024
    max_ratio: float = 200.0  # uncompressed / compressed, per entry (and whole archive) above 1 MiB
    max_tensor_bytes: int = 1024 * 1024 * 1024  # sum of a torch checkpoint's storages (its data/ records)
    max_image_pixels: int = 4096 * 4096
    max_csv_rows: int = 1_000_000


# ---------------------------------------------------------------- storing


def save_upload(upload_dir: str | Path, filename: str | None, stream: IO[bytes],
                limits: UploadLimits = UploadLimits()) -> dict[str, Any]:
    """Check an incoming file and store it; returns its meta (upload_id, kind, what was found)."""
    ext = file_extension(filename)
    if ext not in EXTENSIONS:
        raise UnsupportedUpload(f"Unsupported file type {ext or '(none)'!r}; accepted: {sorted(EXTENSIONS)}.")
    upload_dir = Path(upload_dir)
    upload_id = "upl_" + uuid.uuid4().hex
    staging = upload_dir / STAGING / upload_id
    staging.mkdir(parents=True)
    try:
        stored = staging / f"upload{ext}"
        size, digest = _copy_limited(stream, stored, limits.max_bytes)
        if size == 0:
            raise UploadError("The file is empty.")
        details = _INSPECTORS[EXTENSIONS[ext]](stored, limits)
        meta = {"upload_id": upload_id, **details, "filename": display_name(filename),
                "stored_name": stored.name, "size_bytes": size, "sha256": digest,
                "created_at": time.time()}
        (staging / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        os.replace(staging, upload_dir / upload_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return meta


def resolve_upload(upload_dir: str | Path, upload_id: Any) -> tuple[Path, dict[str, Any]]:
    """The stored file and meta of an upload; UploadNotFound when there is none."""
    if not isinstance(upload_id, str) or not UPLOAD_ID_RE.match(upload_id):
        raise UploadNotFound(f"Unknown upload_id {upload_id!r}; upload ids look like 'upl_<32 hex digits>'.")
    folder = Path(upload_dir) / upload_id
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UploadNotFound(f"Unknown upload_id {upload_id!r}: no such upload.") from None
    path = folder / meta["stored_name"]
    if not path.is_file():
        raise UploadNotFound(f"The file of upload {upload_id!r} is missing.")
    return path, meta


def delete_upload(upload_dir: str | Path, upload_id: Any, users: Callable[[str], list[str]]) -> None:
    """Remove an upload's folder (file, meta, extracted model); UploadInUse while `users(upload_id)` names jobs.

    The folder is renamed away first (atomic: from then on resolve_upload says it does not exist, so no new
    job can take it), the users are asked again, and only then is it deleted; a job that appeared in between
    gets the folder back and the caller a 409."""
    resolve_upload(upload_dir, upload_id)  # UploadNotFound for a bad or unknown id
    _refuse_if_used(upload_id, users)
    folder = Path(upload_dir) / upload_id
    trash = Path(upload_dir) / f".trash-{upload_id}-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(folder, trash)
    except FileNotFoundError:
        raise UploadNotFound(f"Unknown upload_id {upload_id!r}: no such upload.") from None
    try:
        _refuse_if_used(upload_id, users)
    except UploadInUse:
        os.rename(trash, folder)
        raise
    shutil.rmtree(trash, ignore_errors=True)


def _refuse_if_used(upload_id: str, users: Callable[[str], list[str]]) -> None:
    jobs = users(upload_id)
    if jobs:
        raise UploadInUse(f"Upload {upload_id} is used by queued or running job(s) {', '.join(jobs[:5])}; cancel "
                          "them first (POST /cancel_training), then delete it.")


def list_uploads(upload_dir: str | Path) -> list[dict[str, Any]]:
    """Meta of every stored upload, newest first."""
    metas = []
    for folder in Path(upload_dir).glob("upl_*"):
        try:
            metas.append(json.loads((folder / META).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return sorted(metas, key=lambda m: m.get("created_at", 0), reverse=True)


def file_extension(filename: str | None) -> str:
    """Lower-case extension of the client's file name (the only thing taken from it)."""
    return Path(str(filename or "").replace("\\", "/")).suffix.lower()


def display_name(filename: str | None) -> str:
    """The client's base name, cleaned, for display only; never used as a path."""
    base = str(filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"[\x00-\x1f\x7f]", "", base)[:200]


def _copy_limited(stream: IO[bytes], target: Path, max_bytes: int) -> tuple[int, str]:
    """Copy at most max_bytes; UploadTooLarge past that."""
    digest, size = hashlib.sha256(), 0
    with open(target, "xb") as out:
        while chunk := stream.read(1024 * 1024):
            size += len(chunk)
            if size > max_bytes:
                raise UploadTooLarge(f"The file is larger than the limit of {max_bytes // (1024 * 1024)} MB.")
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


# ---------------------------------------------------------------- ZIP safety


def open_checked_zip(path: str | Path | IO[bytes], limits: UploadLimits = UploadLimits(), *,
                     verify: bool = False) -> zipfile.ZipFile:
    """Open a ZIP and refuse it unless every entry is safe to read (and, with verify, reads back intact)."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UploadError(f"Not a readable ZIP file ({exc}).") from None
    try:
        check_zip_entries(zf.infolist(), limits)
        if verify:
            verify_zip_members(zf)
    except BaseException:
        zf.close()
        raise
    return zf


def check_zip_entries(infos: list[zipfile.ZipInfo], limits: UploadLimits) -> None:
    """Refuse absolute paths, '..', links, special files, encryption, duplicates and bombs."""
    if len(infos) > limits.max_zip_entries:
        raise UploadError(f"The ZIP has {len(infos)} entries; at most {limits.max_zip_entries} are allowed.")
    total, seen = 0, set()
    for info in infos:
        name = _safe_entry_name(info.filename)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise UploadError(f"The ZIP entry {info.filename!r} is a symbolic link; links are refused.")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UploadError(f"The ZIP entry {info.filename!r} is not a regular file or folder.")
        if info.flag_bits & 0x1:
            raise UploadError(f"The ZIP entry {info.filename!r} is encrypted; encrypted ZIPs are refused.")
        key = name.rstrip("/").lower()
        if key in seen:
            raise UploadError(f"The ZIP has the entry {info.filename!r} more than once.")
        seen.add(key)
        total += info.file_size
        if total > limits.max_uncompressed_bytes:
            raise UploadError(f"The ZIP unpacks to more than {limits.max_uncompressed_bytes // 2**20} MB; refused.")
        if info.file_size > 2**20 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise UploadError(f"The ZIP entry {info.filename!r} has a compression ratio above "
                              f"{limits.max_ratio:g}:1 (a ZIP bomb?); refused.")
    packed = sum(info.compress_size for info in infos)
    if total > 2**20 and total > limits.max_ratio * max(packed, 1):  # many small entries that each pass
        raise UploadError(f"The ZIP as a whole has a compression ratio above {limits.max_ratio:g}:1 "
                          "(a ZIP bomb?); refused.")


# What zipfile raises for a member whose bytes do not match its header (bad CRC, broken deflate, truncation).
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)


def _corrupt_member(info: zipfile.ZipInfo, exc: BaseException) -> UploadError:
    """The 400 for a member that cannot be read back intact."""
    return UploadError(f"The ZIP entry {info.filename!r} is corrupt ({type(exc).__name__}: {exc}); refused.")


def verify_zip_members(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo] | None = None) -> None:
    """Read every member through to its CRC check in 1 MiB chunks; UploadError naming the first corrupt one.

    Run after check_zip_entries, so what this inflates is already bounded by the entry and size limits."""
    for info in zf.infolist() if infos is None else infos:
        if info.is_dir():
            continue
        try:
            with zf.open(info) as fh:
                read = 0
                while chunk := fh.read(1024 * 1024):
                    read += len(chunk)
                    if read > info.file_size:
                        raise UploadError(f"The ZIP entry {info.filename!r} is larger than it declares; refused.")
        except UploadError:
            raise
        except _CORRUPT as exc:
            raise _corrupt_member(info, exc) from None


def _safe_entry_name(name: str) -> str:
    """The entry's name with '/' separators; UploadError for absolute or escaping paths."""
    clean = name.replace("\\", "/")
    if "\x00" in clean or clean.startswith("/") or re.match(r"^[A-Za-z]:", clean):
        raise UploadError(f"The ZIP entry {name!r} has an absolute path; refused.")
    if ".." in clean.split("/"):
        raise UploadError(f"The ZIP entry {name!r} points outside its folder ('..'); refused.")
    return clean


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int | None = None) -> bytes:
    """Read one entry, never more than it declared (nor than `limit`)."""
    cap = info.file_size if limit is None else min(info.file_size, limit)
    try:
        with zf.open(info) as fh:
            data = fh.read(cap + 1)
    except _CORRUPT as exc:
        raise _corrupt_member(info, exc) from None
    if len(data) > cap:
        raise UploadError(f"The ZIP entry {info.filename!r} is larger than it declares or allowed; refused.")
    return data


def _file_entries(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Regular file entries, less OS clutter (__MACOSX, .DS_Store, hidden files)."""
    entries = []
    for info in zf.infolist():
        parts = info.filename.replace("\\", "/").split("/")
        if info.is_dir() or any(p in IGNORED_PARTS or p.startswith("._") for p in parts) or parts[-1].startswith("."):
            continue
        entries.append(info)
    return entries


def _common_root(names: list[str]) -> str:
    """'folder/' when every name sits in one top folder, else ''."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        return tops.pop() + "/"
    return ""


# ---------------------------------------------------------------- CSV


def load_text_csv(path: str | Path, max_rows: int = UploadLimits.max_csv_rows
                  ) -> tuple[list[str], list[int], list[str]]:
    """(texts, label indices, class names) of a CSV with `text` and `label` columns."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=_csv_delimiter(fh.readline()))
            fh.seek(0)
            header = next(reader, None)
            if not header:
                raise UploadError("The CSV is empty; it needs a header row with 'text' and 'label' columns.")
            columns = {h.strip().lower(): i for i, h in enumerate(header)}
            missing = [c for c in ("text", "label") if c not in columns]
            if missing:
                raise UploadError(f"The CSV has no {' or '.join(repr(m) for m in missing)} column; "
                                  f"found columns {[h.strip() for h in header]}.")
            texts, raw = _csv_rows(reader, columns["text"], columns["label"], max_rows)
    except UnicodeDecodeError:
        raise UploadError("The CSV is not UTF-8 text.") from None
    except csv.Error as exc:
        raise UploadError(f"The CSV cannot be parsed: {exc}.") from None
    class_names = _class_names(raw)
    index = {name: i for i, name in enumerate(class_names)}
    return texts, [index[r] for r in raw], class_names


def _csv_delimiter(header_line: str) -> str:
    """Comma, semicolon or tab: whichever the header line uses."""
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _csv_rows(reader: Iterator[list[str]], text_col: int, label_col: int, max_rows: int
              ) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for line_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(text_col, label_col):
            raise UploadError(f"CSV line {line_no} has {len(row)} field(s); the text and label columns are missing.")
        text, label = row[text_col].strip(), row[label_col].strip()
        if not text or not label:
            raise UploadError(f"CSV line {line_no} has an empty {'text' if not text else 'label'}.")
        texts.append(text)
        labels.append(label)
        if len(texts) > max_rows:
            raise UploadError(f"The CSV has more than {max_rows} rows.")
    if not texts:
        raise UploadError("The CSV has a header but no data rows.")
    return texts, labels


def _class_names(raw_labels: list[str]) -> list[str]:
    """Sorted distinct labels (numerically when they are all integers); at least two."""
    distinct = set(raw_labels)
    if len(distinct) < 2:
        raise UploadError(f"The data has only one class ({next(iter(distinct))!r}); at least two are needed.")
    if all(re.fullmatch(r"[+-]?\d+", d) for d in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def _inspect_csv(path: Path, limits: UploadLimits) -> dict[str, Any]:
    texts, labels, names = load_text_csv(path, limits.max_csv_rows)
    counts = Counter(labels)
    return {"kind": "csv", "use_as": "dataset", "family": "text", "rows": len(texts), "classes": len(names),
            "class_names": names[:100], "rows_per_class": {names[i]: counts[i] for i in sorted(counts)[:100]}}


# ---------------------------------------------------------------- ZIP: images or a model folder


def _inspect_zip(path: Path, limits: UploadLimits) -> dict[str, Any]:
    with open_checked_zip(path, limits, verify=True) as zf:
        entries = _file_entries(zf)
        if _model_root(entries) is not None:
            return _inspect_model_zip(zf, entries, limits)
        return _inspect_image_zip(zf, entries, limits)


def _image_classes(entries: list[zipfile.ZipInfo]) -> dict[str, list[zipfile.ZipInfo]]:
    """Class folder -> image entries, for 'class/img' or 'root/class/img' layouts."""
    images = [e for e in entries if Path(e.filename).suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        raise UploadError(f"The ZIP has no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in class folders.")
    names = [e.filename.replace("\\", "/") for e in images]
    root = _common_root(names)
    if root and all("/" not in n[len(root):] for n in names):
        root = ""  # 'cls/img' with one class only: say so below, not "no class folder"
    classes: dict[str, list[zipfile.ZipInfo]] = {}
    for info, name in zip(images, names):
        rest = name[len(root):]
        if "/" not in rest:
            raise UploadError(f"The image {name!r} is not inside a class folder; put each class's images in "
                              "a folder named after the class.")
        classes.setdefault(rest.split("/", 1)[0], []).append(info)
    if len(classes) < 2:
        raise UploadError(f"The ZIP has only one class folder ({next(iter(classes))!r}); at least two are needed.")
    return dict(sorted(classes.items()))


def _open_image(data: bytes, name: str, max_pixels: int):
    """A decoded RGB PIL image; UploadError naming the entry when it cannot be read."""
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > max_pixels:
            raise UploadError(f"The image {name!r} is {img.width}x{img.height}; at most {max_pixels} pixels allowed.")
        img.load()
        return img.convert("RGB")
    except UploadError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt files
        raise UploadError(f"The image {name!r} cannot be read ({type(exc).__name__}).") from None


def _inspect_image_zip(zf: zipfile.ZipFile, entries: list[zipfile.ZipInfo], limits: UploadLimits) -> dict[str, Any]:
    classes = _image_classes(entries)
    for infos in classes.values():
        for info in infos:
            _open_image(_read_member(zf, info), info.filename, limits.max_image_pixels)
    counts = {name: len(infos) for name, infos in classes.items()}
    return {"kind": "image_zip", "use_as": "dataset", "family": "vision", "images": sum(counts.values()),
            "classes": len(counts), "class_names": list(counts)[:100], "images_per_class": dict(list(counts.items())[:100])}


Keep = Callable[[np.ndarray], "np.ndarray | None"]  # labels -> sorted indices to keep (None: all)


def load_image_zip(path: str | Path, image_size: int, limits: UploadLimits = UploadLimits(), *,
                   keep: Keep | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images uint8 [N,3,h,w], labels int64 [N], class names) from a ZIP of class folders (or an .npz).

    Only the images `keep` selects are decoded. Each is kept at its own resolution, at most `image_size` a
    side (the model never sees more); images of mixed sizes are brought to one square size, the largest seen.
    """
    if Path(path).suffix.lower() == ".npz":  # the other image-dataset upload kind
        return load_image_npz(path, image_size, limits, keep=keep)
    with open_checked_zip(path, limits) as zf:
        classes = _image_classes(_file_entries(zf))
        entries = [(label, info) for label, infos in enumerate(classes.values()) for info in infos]
        labels = np.array([label for label, _ in entries], dtype=np.int64)
        idx = keep(labels) if keep is not None else None
        if idx is not None:
            entries, labels = [entries[i] for i in idx], labels[idx]
        arrays = [_decoded(_open_image(_read_member(zf, info), info.filename, limits.max_image_pixels), image_size)
                  for _, info in entries]
    return _stacked(arrays), labels, list(classes)


def _decoded(img, image_size: int) -> np.ndarray:
    """An RGB PIL image as uint8 [3,h,w], squeezed to image_size x image_size when larger."""
    from PIL import Image

    if img.width > image_size or img.height > image_size:
        img = img.resize((image_size, image_size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def _stacked(arrays: list[np.ndarray]) -> np.ndarray:
    """One uint8 [N,3,s,s] array; images of another size resized to the largest size seen."""
    from PIL import Image

    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        side = max(max(shape[1:]) for shape in shapes)
        arrays = [a if a.shape[1:] == (side, side) else
                  np.asarray(Image.fromarray(a.transpose(1, 2, 0)).resize((side, side), Image.BILINEAR)
                             ).transpose(2, 0, 1) for a in arrays]
    return np.stack(arrays) if arrays else np.empty((0, 3, 1, 1), np.uint8)


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


def _inspect_model_zip(zf: zipfile.ZipFile, entries: list[zipfile.ZipInfo], limits: UploadLimits) -> dict[str, Any]:
    _check_no_code(entries)
    root = _model_root(entries)
    config = _model_config(zf, zf.getinfo(next(e.filename for e in entries
                                                if e.filename.replace("\\", "/") == root + "config.json")))
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
        counts = (_safetensors_counts(data, info.filename) if fmt == "safetensors"
                  else _bin_counts(data, info.filename, limits))
        tensors, params = tensors + counts[0], params + counts[1]
    arch = (config.get("architectures") or [None])[0]
    return {"kind": "model_zip", "use_as": "teacher", "architecture": arch, "model_type": config.get("model_type"),
            "model_hint": _hint_from_config(config), "weights_format": fmt, "weight_files": len(weights),
            "tensors": tensors, "parameters": params, "files": len(entries)}


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
            target = (dest / name[len(root):]).resolve()
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


# ---------------------------------------------------------------- checkpoints


def _safetensors_counts(data: bytes, name: str) -> tuple[int, int]:
    """(tensors, parameters) from a safetensors header, without loading the weights."""
    try:
        from safetensors.torch import load as st_load

        state = st_load(data)
    except Exception as exc:
        raise UploadError(f"{name!r} is not a valid safetensors file ({type(exc).__name__}).") from None
    return len(state), sum(t.numel() for t in state.values())


def _bin_counts(data: bytes, name: str, limits: UploadLimits) -> tuple[int, int]:
    state = _weights_only_load(io.BytesIO(data), name, limits)
    return len(state), sum(t.numel() for t in state.values())


def check_torch_archive(source: str | Path | IO[bytes], name: str, limits: UploadLimits = UploadLimits()) -> int:
    """Refuse a torch checkpoint before torch.load unless it is a ZIP archive within every limit.

    A checkpoint written by torch.save is a ZIP: it gets the same entry-count, ratio and total-size checks
    as a ZIP upload (check_zip_entries), every record is read back through its CRC, and the bytes of its
    storages (the `<archive>/data/<n>` records, which torch.load allocates in full) must stay under
    limits.max_tensor_bytes. A legacy (pre-1.6, plain pickle) checkpoint cannot be sized before loading,
    so it is refused. Returns the storage bytes."""
    if hasattr(source, "seek"):
        source.seek(0)
        magic = source.read(4)
        source.seek(0)
    else:
        with open(source, "rb") as fh:
            magic = fh.read(4)
    if magic != b"PK\x03\x04":
        raise UploadError(f"{name!r} is not a ZIP-format torch checkpoint (a legacy pickle or another format): "
                          "it cannot be sized before loading, so it is refused. Re-save it with torch.save "
                          "from PyTorch 1.6 or later, or as .safetensors.")
    try:
        with open_checked_zip(source, limits, verify=True) as zf:
            infos = zf.infolist()
    except UploadError as exc:
        raise UploadError(f"{name!r}: {exc}") from None
    tensor_bytes = sum(i.file_size for i in infos if re.fullmatch(r"[^/]+/data/\d+", i.filename))
    if tensor_bytes > limits.max_tensor_bytes:
        raise UploadTooLarge(f"{name!r} holds {tensor_bytes / 2**20:.0f} MB of tensors; at most "
                             f"{limits.max_tensor_bytes // 2**20} MB are allowed.")
    if hasattr(source, "seek"):
        source.seek(0)
    return tensor_bytes


def _weights_only_load(source: Any, name: str, limits: UploadLimits = UploadLimits()) -> dict[str, Any]:
    """A state dict loaded with torch.load(weights_only=True) after check_torch_archive; UploadError otherwise."""
    import torch

    check_torch_archive(source, name, limits)
    try:
        obj = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UploadError(f"{name!r} cannot be loaded with torch.load(weights_only=True): "
                          f"{type(exc).__name__}. Save a state_dict, not a pickled model.") from None
    return state_dict_of(obj, name)


def state_dict_of(obj: Any, name: str = "checkpoint") -> dict[str, Any]:
    """The tensor mapping inside a loaded checkpoint (plain, or under state_dict/model_state_dict/model)."""
    import torch

    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise UploadError(f"{name!r} holds no state dict of tensors.")


def load_checkpoint(path: str | Path, limits: UploadLimits = UploadLimits()) -> dict[str, Any]:
    """The state dict of an uploaded .pt/.pth/.safetensors file, checked first, loaded without running code."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise UploadError(f"Not a valid safetensors file ({type(exc).__name__}).") from None
    return _weights_only_load(path, path.name, limits)


def _inspect_checkpoint(path: Path, limits: UploadLimits) -> dict[str, Any]:
    state = load_checkpoint(path, limits)
    kind = "safetensors" if path.suffix == ".safetensors" else "checkpoint"
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in state.values()})
    return {"kind": kind, "use_as": "teacher", "tensors": len(state),
            "parameters": sum(t.numel() for t in state.values()), "dtypes": dtypes, "model_hint": model_hint(state)}


def model_hint(state: Mapping[str, Any]) -> str | None:
    """Which registered model a state dict looks like, from its key names (each model's `looks_like`); None when
    unsure."""
    from backend.models.registry import model_for_checkpoint

    return model_for_checkpoint(set(state))


def _hint_from_config(config: Mapping[str, Any]) -> str | None:
    from backend.models.registry import model_for_hf_type

    return model_for_hf_type(config.get("model_type"))


# ---------------------------------------------------------------- NPZ arrays


def _npz_arrays(path: str | Path, limits: UploadLimits) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """(x, y, class names or None) from an .npz, checked as a ZIP first (it is one)."""
    open_checked_zip(path, limits, verify=True).close()
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = {k.lower(): k for k in npz.files}
            x_key = keys.get("x") or keys.get("images")
            y_key = keys.get("y") or keys.get("labels")
            if x_key is None or y_key is None:
                raise UploadError(f"The .npz needs arrays 'x' (or 'images') and 'y' (or 'labels'); found {npz.files}.")
            names = npz[keys["class_names"]] if "class_names" in keys else None
            x, y = npz[x_key], npz[y_key]
    except UploadError:
        raise
    except Exception as exc:
        raise UploadError(f"The .npz cannot be read without pickle ({type(exc).__name__}).") from None
    return x, y, ([str(n) for n in names.tolist()] if names is not None else None)


def _check_npz(x: np.ndarray, y: np.ndarray) -> None:
    if x.dtype.kind not in "uif" or x.ndim not in (3, 4):
        raise UploadError(f"'x' must be numeric images [N,H,W], [N,H,W,C] or [N,C,H,W]; got {x.dtype} {list(x.shape)}.")
    if x.ndim == 4 and x.shape[-1] not in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        raise UploadError(f"'x' has {list(x.shape)}: cannot tell the channel axis (1, 3 or 4 channels).")
    if y.ndim != 1 or len(y) != len(x):
        raise UploadError(f"'y' must be a vector of {len(x)} labels; got shape {list(y.shape)}.")
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
        raise UploadError(f"'y' must hold integer class labels; got {y.dtype}.")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise UploadError("'x' contains NaN or infinite values.")


def _inspect_npz(path: Path, limits: UploadLimits) -> dict[str, Any]:
    x, y, names = _npz_arrays(path, limits)
    _check_npz(x, y)
    classes = np.unique(y)
    if len(classes) < 2:
        raise UploadError(f"The data has only one class ({classes[0]!r}); at least two are needed.")
    return {"kind": "npz", "use_as": "dataset", "family": "vision", "images": int(len(x)),
            "classes": int(len(classes)), "image_shape": [int(s) for s in x.shape[1:]],
            "class_names": (names or [str(c) for c in classes.tolist()])[:100]}


def load_image_npz(path: str | Path, image_size: int, limits: UploadLimits = UploadLimits(), *,
                   keep: Keep | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images [N,3,H,W] at source resolution, labels int64 [N], class names) from an .npz of arrays.

    Integer images in 0..255 stay uint8 (1 byte a value); other sources become float32 in [0,1]. Only the
    examples `keep` selects are converted. `image_size` is unused: resizing happens per batch, later.
    """
    del image_size  # the signature matches load_image_zip's
    x, y, names = _npz_arrays(path, limits)
    _check_npz(x, y)
    classes, labels = np.unique(y.astype(np.int64), return_inverse=True)
    idx = keep(labels) if keep is not None else None
    if idx is not None:
        x, labels = x[idx], labels[idx]
    if x.ndim == 3:
        x = x[:, None]
    elif x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)
    x = x[:, :3] if x.shape[1] >= 3 else np.repeat(x, 3, axis=1)
    high = x.max(initial=0)
    if x.dtype.kind in "iu" and 1 < high <= 255 and x.min(initial=0) >= 0:
        x = np.ascontiguousarray(x, dtype=np.uint8)
    else:  # float sources, and integers in 0..1: values in [0,1] as before
        x = x.astype(np.float32)
        if high > 1.0:
            x /= 255.0
        x = np.ascontiguousarray(np.clip(x, 0.0, 1.0))
    if names is None or len(names) != len(classes):
        names = [str(c) for c in classes.tolist()]
    return x, labels.astype(np.int64), names


def load_image_dataset(path: str | Path, meta: Mapping[str, Any], image_size: int
                       ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images of an uploaded image dataset, ZIP of class folders or .npz."""
    if meta.get("kind") == "npz":
        return load_image_npz(path, image_size)
    if meta.get("kind") == "image_zip":
        return load_image_zip(path, image_size)
    raise UploadError(f"Upload {meta.get('upload_id')} is a {meta.get('kind')}, not an image dataset.")


_INSPECTORS: dict[str, Callable[[Path, UploadLimits], dict[str, Any]]] = {
    "csv": _inspect_csv, "zip": _inspect_zip, "checkpoint": _inspect_checkpoint,
    "safetensors": _inspect_checkpoint, "npz": _inspect_npz,
}

__all__ = [
    "UploadError", "UnsupportedUpload", "UploadTooLarge", "UploadNotFound", "UploadInUse", "UploadLimits",
    "save_upload", "delete_upload", "resolve_upload", "list_uploads", "load_text_csv", "load_image_zip", "load_image_npz",
    "load_image_dataset", "extract_model_zip", "load_checkpoint", "state_dict_of", "model_hint",
    "open_checked_zip", "check_zip_entries", "verify_zip_members", "check_torch_archive", "DATASET_KINDS", "TEACHER_KINDS",
]

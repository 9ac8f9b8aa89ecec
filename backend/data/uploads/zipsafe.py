"""Reading a ZIP without trusting it: entry names, links, encryption, duplicates, bombs and corrupt members."""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from pathlib import Path
from typing import IO

from .common import IGNORED_PARTS, UploadError, UploadLimits


def open_checked_zip(
    path: str | Path | IO[bytes], limits: UploadLimits = UploadLimits(), *, verify: bool = False
) -> zipfile.ZipFile:
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
            raise UploadError(
                f"The ZIP entry {info.filename!r} has a compression ratio above "
                f"{limits.max_ratio:g}:1 (a ZIP bomb?); refused."
            )
    packed = sum(info.compress_size for info in infos)
    if total > 2**20 and total > limits.max_ratio * max(packed, 1):  # many small entries that each pass
        raise UploadError(
            f"The ZIP as a whole has a compression ratio above {limits.max_ratio:g}:1 (a ZIP bomb?); refused."
        )


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

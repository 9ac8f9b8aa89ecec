"""A teacher uploaded as a .pt/.pth/.safetensors state dict: sized as a ZIP first, loaded with weights_only=True."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from .common import ModelRecogniser, UploadError, UploadLimits, UploadTooLarge
from .zipsafe import open_checked_zip


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
        raise UploadError(
            f"{name!r} is not a ZIP-format torch checkpoint (a legacy pickle or another format): "
            "it cannot be sized before loading, so it is refused. Re-save it with torch.save "
            "from PyTorch 1.6 or later, or as .safetensors."
        )
    try:
        with open_checked_zip(source, limits, verify=True) as zf:
            infos = zf.infolist()
    except UploadError as exc:
        raise UploadError(f"{name!r}: {exc}") from None
    tensor_bytes = sum(i.file_size for i in infos if re.fullmatch(r"[^/]+/data/\d+", i.filename))
    if tensor_bytes > limits.max_tensor_bytes:
        raise UploadTooLarge(
            f"{name!r} holds {tensor_bytes / 2**20:.0f} MB of tensors; at most "
            f"{limits.max_tensor_bytes // 2**20} MB are allowed."
        )
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
        raise UploadError(
            f"{name!r} cannot be loaded with torch.load(weights_only=True): "
            f"{type(exc).__name__}. Save a state_dict, not a pickled model."
        ) from None
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


def _inspect_checkpoint(path: Path, limits: UploadLimits, recognise: ModelRecogniser) -> dict[str, Any]:
    state = load_checkpoint(path, limits)
    kind = "safetensors" if path.suffix == ".safetensors" else "checkpoint"
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in state.values()})
    return {
        "kind": kind,
        "use_as": "teacher",
        "tensors": len(state),
        "parameters": sum(t.numel() for t in state.values()),
        "dtypes": dtypes,
        "model_hint": recognise.from_state_keys(set(state)),
    }

"""What every part of upload handling shares: the kinds of file taken, the errors, the limits."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

UPLOAD_ID_RE = re.compile(r"^upl_[0-9a-f]{32}$")
EXTENSIONS = {
    ".csv": "csv",
    ".zip": "zip",
    ".pt": "checkpoint",
    ".pth": "checkpoint",
    ".safetensors": "safetensors",
    ".npz": "npz",
}
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


@dataclass(frozen=True)
class ModelRecogniser:
    """Which registered model an uploaded teacher looks like (its `model_hint`; None when unsure): from a state dict's
    tensor names, or from a save_pretrained folder's config `model_type`. The model registry knows, and it sits
    above this package, so the caller of save_upload passes it in (the upload API passes the registry's)."""

    from_state_keys: Callable[[set[str]], str | None]
    from_hf_type: Callable[[Any], str | None]


NO_RECOGNISER = ModelRecogniser(from_state_keys=lambda keys: None, from_hf_type=lambda model_type: None)

Keep = Callable[[np.ndarray], "np.ndarray | None"]  # labels -> sorted indices to keep (None: all)

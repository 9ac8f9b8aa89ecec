"""Uploaded files: hostile until checked, stored under server-made names, read back by the pipeline.

An upload lives in `<upload_dir>/<upload_id>/` with the file (`upload.<ext>`) and a `meta.json`.
It is written to `<upload_dir>/.staging/<upload_id>/` first and renamed into place only after
every check passed, so a refused file leaves nothing behind. No uploaded code ever runs:
checkpoints load with `torch.load(weights_only=True)`, arrays with `allow_pickle=False`, and
ZIP entries are read one by one, never with `extractall`.

Modules: common (kinds, errors, limits), store (save, resolve, list, delete), zipsafe (checked ZIP reading),
csvfile (text CSV), images (ZIP of class folders), npz (arrays), modelzip (save_pretrained folder),
checkpoints (state dicts). Import the public names from here.
"""

from __future__ import annotations

from .checkpoints import check_torch_archive, load_checkpoint, state_dict_of
from .common import (
    CODE_EXTENSIONS,
    DATASET_KINDS,
    EXTENSIONS,
    IMAGE_EXTENSIONS,
    NO_RECOGNISER,
    TEACHER_KINDS,
    TORCH_EXTENSIONS,
    UPLOAD_ID_RE,
    ModelRecogniser,
    UnsupportedUpload,
    UploadError,
    UploadInUse,
    UploadLimits,
    UploadNotFound,
    UploadTooLarge,
)
from .csvfile import load_text_csv
from .images import load_image_dataset, load_image_zip
from .modelzip import extract_model_zip
from .npz import load_image_npz
from .store import delete_upload, display_name, file_extension, list_uploads, resolve_upload, save_upload
from .zipsafe import check_zip_entries, open_checked_zip, verify_zip_members

__all__ = [
    "UploadError",
    "UnsupportedUpload",
    "UploadTooLarge",
    "UploadNotFound",
    "UploadInUse",
    "UploadLimits",
    "ModelRecogniser",
    "NO_RECOGNISER",
    "save_upload",
    "delete_upload",
    "resolve_upload",
    "list_uploads",
    "load_text_csv",
    "load_image_zip",
    "load_image_npz",
    "load_image_dataset",
    "extract_model_zip",
    "load_checkpoint",
    "state_dict_of",
    "open_checked_zip",
    "check_zip_entries",
    "verify_zip_members",
    "check_torch_archive",
    "DATASET_KINDS",
    "TEACHER_KINDS",
    "EXTENSIONS",
    "TORCH_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "CODE_EXTENSIONS",
    "UPLOAD_ID_RE",
    "file_extension",
    "display_name",
]

"""An image dataset uploaded as an .npz of arrays, read with allow_pickle=False."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .common import Keep, UploadError, UploadLimits
from .zipsafe import open_checked_zip


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
    return {
        "kind": "npz",
        "use_as": "dataset",
        "family": "vision",
        "images": int(len(x)),
        "classes": int(len(classes)),
        "image_shape": [int(s) for s in x.shape[1:]],
        "class_names": (names or [str(c) for c in classes.tolist()])[:100],
    }


def load_image_npz(
    path: str | Path, image_size: int, limits: UploadLimits = UploadLimits(), *, keep: Keep | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
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

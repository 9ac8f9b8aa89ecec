"""An image dataset uploaded as a ZIP of class folders: checked, then decoded only as far as a job needs."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .common import IMAGE_EXTENSIONS, Keep, UploadError, UploadLimits
from .npz import load_image_npz
from .zipsafe import _common_root, _file_entries, _read_member, open_checked_zip


def _image_classes(entries: list[zipfile.ZipInfo]) -> dict[str, list[zipfile.ZipInfo]]:
    """Class folder -> image entries, for 'class/img' or 'root/class/img' layouts."""
    images = [e for e in entries if Path(e.filename).suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        raise UploadError(f"The ZIP has no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in class folders.")
    names = [e.filename.replace("\\", "/") for e in images]
    root = _common_root(names)
    if root and all("/" not in n[len(root) :] for n in names):
        root = ""  # 'cls/img' with one class only: say so below, not "no class folder"
    classes: dict[str, list[zipfile.ZipInfo]] = {}
    for info, name in zip(images, names, strict=True):
        rest = name[len(root) :]
        if "/" not in rest:
            raise UploadError(
                f"The image {name!r} is not inside a class folder; put each class's images in "
                "a folder named after the class."
            )
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
    return {
        "kind": "image_zip",
        "use_as": "dataset",
        "family": "vision",
        "images": sum(counts.values()),
        "classes": len(counts),
        "class_names": list(counts)[:100],
        "images_per_class": dict(list(counts.items())[:100]),
    }


def load_image_zip(
    path: str | Path, image_size: int, limits: UploadLimits = UploadLimits(), *, keep: Keep | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
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
        arrays = [
            _decoded(_open_image(_read_member(zf, info), info.filename, limits.max_image_pixels), image_size)
            for _, info in entries
        ]
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
        arrays = [
            a
            if a.shape[1:] == (side, side)
            else np.asarray(Image.fromarray(a.transpose(1, 2, 0)).resize((side, side), Image.BILINEAR)).transpose(
                2, 0, 1
            )
            for a in arrays
        ]
    return np.stack(arrays) if arrays else np.empty((0, 3, 1, 1), np.uint8)


def load_image_dataset(
    path: str | Path, meta: Mapping[str, Any], image_size: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images of an uploaded image dataset, ZIP of class folders or .npz."""
    if meta.get("kind") == "npz":
        return load_image_npz(path, image_size)
    if meta.get("kind") == "image_zip":
        return load_image_zip(path, image_size)
    raise UploadError(f"Upload {meta.get('upload_id')} is a {meta.get('kind')}, not an image dataset.")

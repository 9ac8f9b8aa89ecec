"""Load a dataset by name, split it (stratified, seeded) and hold it in memory as compactly as its source.

Images stay at source resolution (uint8 where the source is); each batch is resized to the model's input size,
normalised (and augmented, for training where asked) only when it is served, with torchvision.transforms.v2,
on the job's device. Memory is so bounded by the source data, not by the model's input size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from backend.data import synthetic_text, uploads

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)  # train, validation, test
TEXT_SET_SIZE = 5000  # texts in the built-in synthetic sentiment set


class DataError(ValueError):
    """A dataset that cannot be used; the message says why."""


@dataclass
class RawDataset:
    """Examples before splitting: images ([N,3,H,W] at source resolution: uint8, or float in [0,1]) or texts."""

    name: str
    family: str
    class_names: list[str]
    labels: np.ndarray
    images: np.ndarray | None = None
    texts: list[str] | None = None
    description: str = ""
    synthetic: bool = False


@dataclass
class Splits:
    """Index arrays of the stratified train / validation / test split."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train_size": len(self.train), "val_size": len(self.val), "test_size": len(self.test)}


@dataclass
class TensorSet:
    """Equal-length tensors (model inputs and `labels`) served as dict batches."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where batches are served

    augment = False  # no random transform: every pass serves the same inputs

    def __len__(self) -> int:
        return len(self.tensors["labels"])

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """Yield dict batches on `device`; a seeded shuffle makes epochs repeatable."""
        n = len(self)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            yield self._serve(order[start : start + batch_size], self.augment)

    def num_batches(self, batch_size: int) -> int:
        return (len(self) + batch_size - 1) // batch_size

    def head(self, n: int) -> dict[str, torch.Tensor]:
        """The first n examples as one batch (never augmented), repeated if the set is smaller."""
        return self._serve(torch.arange(n) % len(self), False)

    def with_tensors(self, **extra: torch.Tensor) -> TensorSet:
        """A copy with more per-example tensors (e.g. the teacher's logits), served alongside."""
        return dataclasses.replace(self, tensors={**self.tensors, **extra})

    def to(self, device: torch.device | str) -> TensorSet:
        """A view serving its batches on `device` (the stored tensors stay in host memory)."""
        return dataclasses.replace(self, device=torch.device(device))

    def _serve(self, idx: torch.Tensor, augment: bool) -> dict[str, torch.Tensor]:
        return {k: v[idx].to(self.device, non_blocking=True) for k, v in self.tensors.items()}


@dataclass
class ImageSet(TensorSet):
    """Images stored as loaded (`images`: uint8 or float [N,3,h,w]); `pixel_values` made per batch.

    Each batch is resized to `image_size` (antialiased when shrinking) and normalised with ImageNet
    statistics on `device`; with `augment`, every image gets its own random resized crop and flip first.
    Without augmentation a given example always yields the same pixel_values (the teacher-logit cache relies on it).
    """

    image_size: int = 32
    augment: bool = False

    def _serve(self, idx: torch.Tensor, augment: bool) -> dict[str, torch.Tensor]:
        batch = super()._serve(idx, augment)
        batch["pixel_values"] = model_inputs(batch.pop("images"), self.image_size, augment)
        return batch


def split_indices(labels: np.ndarray, seed: int) -> Splits:
    """Stratified, seeded 70/15/15 split into train / validation / test indices."""
    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    if (counts[counts > 0] < 3).any():
        raise DataError("Every class needs at least 3 examples to be split into train, validation and test.")
    train_frac, val_frac, test_frac = SPLIT_FRACTIONS
    rest, test = train_test_split(idx, test_size=test_frac, stratify=labels, random_state=seed)
    train, val = train_test_split(
        rest, test_size=val_frac / (train_frac + val_frac), stratify=labels[rest], random_state=seed
    )
    return Splits(np.sort(train), np.sort(val), np.sort(test))


def subsample_indices(labels: np.ndarray, max_samples: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of a stratified subset of at most `max_samples` examples; None when all are kept.

    Loaders call this before decoding anything, so a capped job never decodes the examples it drops.
    """
    if not max_samples or len(labels) <= max_samples:
        return None
    keep, _ = train_test_split(np.arange(len(labels)), train_size=max_samples, stratify=labels, random_state=seed)
    return np.sort(keep)


def subsample(raw: RawDataset, max_samples: int | None, seed: int) -> RawDataset:
    """Keep a stratified subset of at most `max_samples` examples (for quick checks)."""
    keep = subsample_indices(raw.labels, max_samples, seed)
    if keep is None:
        return raw
    raw.labels = raw.labels[keep]
    if raw.images is not None:
        raw.images = raw.images[keep]
    if raw.texts is not None:
        raw.texts = [raw.texts[i] for i in keep]
    raw.description += f" Subsampled to {max_samples} examples (max_samples)."
    return raw


def load_digits() -> RawDataset:
    """scikit-learn's 8x8 handwritten digits as 3-channel images in [0, 1]."""
    from sklearn.datasets import load_digits as sk_digits

    digits = sk_digits()
    images = (digits.images.astype(np.float32) / 16.0)[:, None].repeat(3, axis=1)
    return RawDataset(
        "digits",
        "vision",
        [str(i) for i in range(10)],
        digits.target.astype(np.int64),
        images=images,
        description="scikit-learn handwritten digits (1,797 8x8 images, 10 classes), upsampled.",
    )


def load_synthetic_sentiment(seed: int = 0, n: int = TEXT_SET_SIZE) -> RawDataset:
    """The built-in synthetic sentiment set (see backend.data.synthetic_text)."""
    texts, labels = synthetic_text.generate(n=n, seed=seed)
    return RawDataset(
        "synthetic_sentiment",
        "text",
        list(synthetic_text.CLASS_NAMES),
        np.asarray(labels, np.int64),
        texts=texts,
        synthetic=True,
        description=f"Built-in synthetic sentiment sentences ({n:,}, balanced, 2 classes) generated "
        "from a seed; labels follow negation and contrast clauses. Not real reviews.",
    )


def load_upload(
    kind: str, path: Path, name: str, image_size: int, *, max_samples: int | None = None, seed: int = 0
) -> RawDataset:
    """A dataset from an uploaded CSV (text) or ZIP of class folders / .npz (vision).

    Images are decoded at source resolution (at most `image_size` a side) and only those `max_samples` keeps.
    """
    if kind == "text":
        texts, labels, classes = uploads.load_text_csv(path)
        return RawDataset(
            name,
            "text",
            classes,
            np.asarray(labels, np.int64),
            texts=texts,
            description=f"Uploaded CSV {name} ({len(texts):,} rows, {len(classes)} classes).",
        )
    dropped: list[int] = []

    def keep(labels: np.ndarray) -> np.ndarray | None:  # applied by the loader before it decodes any image
        idx = subsample_indices(labels, max_samples, seed)
        dropped.append(0 if idx is None else len(labels) - len(idx))
        return idx

    images, labels, classes = uploads.load_image_zip(path, image_size, keep=keep)
    note = f" Subsampled to {len(labels):,} examples (max_samples) before decoding." if any(dropped) else ""
    return RawDataset(
        name,
        "vision",
        classes,
        np.asarray(labels, np.int64),
        images=images,
        description=f"Uploaded images {name} ({len(labels):,} images, {len(classes)} classes, "
        f"stored {images.shape[-2]}x{images.shape[-1]} {images.dtype}).{note}",
    )


AUGMENT_SCALE = (0.25, 1.0)  # area kept by the random crop: gentler than ImageNet's 0.08, for 32x32 sources


def vision_tensors(raw: RawDataset, idx: np.ndarray, image_size: int, *, augment: bool = False) -> ImageSet:
    """The images of `idx` as stored (no copy at model size), served resized and normalised per batch."""
    images = torch.from_numpy(np.ascontiguousarray(raw.images[idx]))
    return ImageSet(
        {"images": images, "labels": torch.from_numpy(raw.labels[idx]).long()}, image_size=image_size, augment=augment
    )


def model_inputs(images: torch.Tensor, image_size: int, augment: bool = False) -> torch.Tensor:
    """A batch of stored images (uint8 or float in [0,1]) as normalised float32 at `image_size` (transforms.v2)."""
    from torchvision.transforms import v2

    size = (image_size, image_size)
    x = v2.functional.to_dtype(images, torch.float32, scale=True)
    if x.shape[1] == 1:  # greyscale sources (Fashion-MNIST) are stored with one channel: a view, no copy
        x = x.expand(-1, 3, -1, -1)
    if augment:  # v2 draws one set of parameters per call: per image, so every image gets its own crop and flip
        crop = v2.Compose([v2.RandomResizedCrop(size, scale=AUGMENT_SCALE, antialias=True), v2.RandomHorizontalFlip()])
        x = torch.stack([crop(img) for img in x])
    if tuple(x.shape[-2:]) != size:
        # antialias only when shrinking: upsampling (8x8 digits, 32x32 CIFAR at 224) stays plain bilinear
        shrink = x.shape[-2] > image_size or x.shape[-1] > image_size
        x = v2.functional.resize(x, list(size), antialias=shrink)
    return v2.functional.normalize(x, list(IMAGENET_MEAN), list(IMAGENET_STD))

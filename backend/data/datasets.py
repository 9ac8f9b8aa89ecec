"""Load a dataset by name, split it (stratified, seeded) and hold it as tensors in memory."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from backend.data import synthetic_text

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)  # train, validation, test


class DataError(ValueError):
    """A dataset that cannot be used; the message says why."""


@dataclass
class RawDataset:
    """Examples before splitting: images (float [N,3,H,W] in [0,1]) or texts, with integer labels."""

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

    def __len__(self) -> int:
        return len(self.tensors["labels"])

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """Yield dict batches; a seeded shuffle makes epochs repeatable."""
        n = len(self)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            yield {k: v[idx] for k, v in self.tensors.items()}

    def num_batches(self, batch_size: int) -> int:
        return (len(self) + batch_size - 1) // batch_size

    def head(self, n: int) -> dict[str, torch.Tensor]:
        """The first n examples as one batch, repeated if the set is smaller."""
        idx = torch.arange(n) % len(self)
        return {k: v[idx] for k, v in self.tensors.items()}


def split_indices(labels: np.ndarray, seed: int) -> Splits:
    """Stratified, seeded 70/15/15 split into train / validation / test indices."""
    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    if (counts[counts > 0] < 3).any():
        raise DataError("Every class needs at least 3 examples to be split into train, validation and test.")
    train_frac, val_frac, test_frac = SPLIT_FRACTIONS
    rest, test = train_test_split(idx, test_size=test_frac, stratify=labels, random_state=seed)
    train, val = train_test_split(rest, test_size=val_frac / (train_frac + val_frac), stratify=labels[rest],
                                  random_state=seed)
    return Splits(np.sort(train), np.sort(val), np.sort(test))


def subsample(raw: RawDataset, max_samples: int | None, seed: int) -> RawDataset:
    """Keep a stratified subset of at most `max_samples` examples (for quick checks)."""
    if not max_samples or len(raw.labels) <= max_samples:
        return raw
    keep, _ = train_test_split(np.arange(len(raw.labels)), train_size=max_samples, stratify=raw.labels,
                               random_state=seed)
    keep = np.sort(keep)
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
    return RawDataset("digits", "vision", [str(i) for i in range(10)], digits.target.astype(np.int64), images=images,
                      description="scikit-learn handwritten digits (1,797 8x8 images, 10 classes), upsampled.")


def load_cifar10(root: Path) -> RawDataset:
    """CIFAR-10 through torchvision; a clear error when it is neither cached nor downloadable."""
    from torchvision.datasets import CIFAR10

    try:
        parts = [CIFAR10(str(root), train=t, download=True) for t in (True, False)]
    except Exception as exc:  # offline: URLError, gaierror, ...
        raise DataError(f"cifar10 could not be loaded or downloaded into {root} ({type(exc).__name__}: {exc}). "
                        "This machine may be offline; use 'digits' or upload a ZIP of class folders.") from None
    images = np.concatenate([p.data for p in parts]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    labels = np.concatenate([np.asarray(p.targets) for p in parts]).astype(np.int64)
    return RawDataset("cifar10", "vision", list(parts[0].classes), labels, images=images,
                      description="CIFAR-10 (60,000 32x32 colour images, 10 classes) via torchvision.")


def load_synthetic_sentiment(seed: int = 0, n: int = 6000) -> RawDataset:
    """The built-in synthetic sentiment set (see backend.data.synthetic_text)."""
    texts, labels = synthetic_text.generate(n=n, seed=seed)
    return RawDataset("synthetic_sentiment", "text", list(synthetic_text.CLASS_NAMES), np.asarray(labels, np.int64),
                      texts=texts, synthetic=True,
                      description=f"Built-in synthetic sentiment sentences ({n:,}, balanced, 2 classes) generated "
                                  "from a seed; labels follow negation and contrast clauses. Not real reviews.")


def load_upload(kind: str, path: Path, name: str, image_size: int) -> RawDataset:
    """A dataset from an uploaded CSV (text) or ZIP of class folders (vision)."""
    from backend.data import uploads

    if kind == "text":
        texts, labels, classes = uploads.load_text_csv(path)
        return RawDataset(name, "text", classes, np.asarray(labels, np.int64), texts=texts,
                          description=f"Uploaded CSV {name} ({len(texts):,} rows, {len(classes)} classes).")
    images, labels, classes = uploads.load_image_zip(path, image_size)
    return RawDataset(name, "vision", classes, np.asarray(labels, np.int64), images=images,
                      description=f"Uploaded image folders {name} ({len(labels):,} images, {len(classes)} classes).")


def vision_tensors(raw: RawDataset, idx: np.ndarray, image_size: int) -> TensorSet:
    """Images resized to `image_size` and normalised with ImageNet statistics."""
    x = torch.from_numpy(np.ascontiguousarray(raw.images[idx]))
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = ((x - mean) / std).contiguous()
    return TensorSet({"pixel_values": x, "labels": torch.from_numpy(raw.labels[idx]).long()})

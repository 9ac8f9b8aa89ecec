"""The built-in datasets: shipped with scikit-learn or generated here, never downloaded.

`load_builtin(name, seed)` returns a fresh RawDataset (callers may subsample it and drop its arrays). The generated
tasks `shapes` and `intents` come from a fixed generation seed, so every job sees the same examples; the job's seed
only splits them. They are generated once per process (a second or two) and kept in memory. Cached teachers are
keyed by the dataset's name, not its content: a change to a generator needs a new name or a cleared teacher cache.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from backend.data import datasets as ds
from backend.data import synthetic_intents, synthetic_shapes
from backend.data.names import BUILTIN


@lru_cache(maxsize=1)
def _shapes() -> tuple[np.ndarray, np.ndarray]:
    images, labels = synthetic_shapes.generate()
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@lru_cache(maxsize=1)
def _intents() -> tuple[tuple[str, ...], np.ndarray]:
    texts, labels = synthetic_intents.generate()
    labels = np.asarray(labels, np.int64)
    labels.setflags(write=False)
    return tuple(texts), labels


def load_shapes() -> ds.RawDataset:
    """The built-in `shapes` vision task (see backend.data.synthetic_shapes)."""
    images, labels = _shapes()
    return ds.RawDataset(
        "shapes",
        "vision",
        list(synthetic_shapes.CLASS_NAMES),
        labels,
        images=images,
        synthetic=True,
        description=f"Built-in procedurally drawn shapes ({len(labels):,} 32x32 RGB uint8 images, 10 balanced "
        "classes: circle, hexagon, square, triangle and cross, each plain or with a small dot at its centre) "
        "with random position, size, rotation and colours, distractor dots and bars, occluding patches and "
        "pixel noise; generated from a fixed seed (the same images for every job seed).",
    )


def load_intents() -> ds.RawDataset:
    """The built-in `intents` text task (see backend.data.synthetic_intents)."""
    texts, labels = _intents()
    return ds.RawDataset(
        "intents",
        "text",
        list(synthetic_intents.CLASS_NAMES),
        labels,
        texts=list(texts),
        synthetic=True,
        description=f"Built-in synthetic customer-support requests ({len(labels):,}, 8 balanced intents in "
        "4 topics of 2 areas; sibling intents share most words, with negated and contrasting clauses, "
        "mentions of past requests and some messages whose wording fits two intents); generated from a fixed "
        "seed (the same texts for every job seed). Not real customer messages.",
    )


def load_builtin(name: str, seed: int = 0) -> ds.RawDataset:
    """A built-in dataset by name; `seed` matters only to synthetic_sentiment, which is generated from it."""
    if name == "digits":
        return ds.load_digits()
    if name == "synthetic_sentiment":
        return ds.load_synthetic_sentiment(seed=seed)
    if name == "shapes":
        return load_shapes()
    if name == "intents":
        return load_intents()
    raise ds.DataError(
        f"unknown built-in dataset {name!r}; built-in: {[n for names in BUILTIN.values() for n in names]}"
    )

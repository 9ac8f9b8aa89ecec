"""Public datasets by name: vision through torchvision, text through Hugging Face `datasets`, cached under the data dir.

Layout (each library's own): DATA_DIR/cache/datasets/torchvision/<torchvision's folders> and
DATA_DIR/cache/datasets/huggingface/<namespace>___<name>/<config>/<version>/<hash>/ (a `datasets` builder cache).
A cached copy is read without touching the network; with none, the library downloads it unless the machine is
offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE / KD_OFFLINE set), where submitting is refused with the folder to fill.
"""

from __future__ import annotations

import contextlib
import glob
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.data.datasets import DataError, RawDataset, subsample_indices


@dataclass(frozen=True)
class PublicDataset:
    """A public dataset: where it comes from, its size and licence as its publishers state them."""

    name: str
    family: str
    source: str  # torchvision class name, or Hugging Face dataset id
    examples: int
    classes: int
    description: str
    licence: str
    text_column: str = "text"
    splits: tuple[str, ...] = ("train", "test")


PUBLIC: dict[str, PublicDataset] = {
    d.name: d
    for d in (
        PublicDataset(
            "cifar10",
            "vision",
            "CIFAR10",
            60000,
            10,
            "CIFAR-10: 32x32 colour images of 10 object classes.",
            "no licence stated by its authors (Krizhevsky, 2009); distributed for research",
        ),
        PublicDataset(
            "cifar100",
            "vision",
            "CIFAR100",
            60000,
            100,
            "CIFAR-100: 32x32 colour images, 100 fine classes.",
            "no licence stated by its authors (Krizhevsky, 2009); distributed for research",
        ),
        PublicDataset(
            "fashion_mnist",
            "vision",
            "FashionMNIST",
            70000,
            10,
            "Fashion-MNIST: 28x28 greyscale images of 10 kinds of clothing (Zalando).",
            "MIT",
        ),
        PublicDataset(
            "sst2",
            "text",
            "stanfordnlp/sst2",
            68221,
            2,
            "SST-2 (GLUE): movie-review sentences, negative/positive (train + validation; the test split "
            "has no labels).",
            "as stated on its dataset card (Stanford Sentiment Treebank, research use)",
            text_column="sentence",
            splits=("train", "validation"),
        ),
        PublicDataset(
            "imdb",
            "text",
            "stanfordnlp/imdb",
            50000,
            2,
            "IMDB Large Movie Review Dataset: full reviews, negative/positive (train + test).",
            "as stated on its dataset card (Maas et al., 2011, research use)",
        ),
        PublicDataset(
            "ag_news",
            "text",
            "fancyzhx/ag_news",
            127600,
            4,
            "AG News: news titles and descriptions in 4 topics (train + test).",
            "as stated on its dataset card (AG's corpus, non-commercial research use)",
        ),
    )
}
TORCHVISION_FOLDERS = {
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
    "fashion_mnist": "FashionMNIST",
}
_OFFLINE_LOCK = threading.Lock()


def listing() -> list[dict]:
    """The public datasets with sizes and licences, for GET /models."""
    return [
        {
            "name": d.name,
            "family": d.family,
            "source": d.source,
            "examples": d.examples,
            "classes": d.classes,
            "description": d.description,
            "licence": d.licence,
        }
        for d in PUBLIC.values()
    ]


def offline() -> bool:
    """True when the machine is told not to reach the network (the libraries' own switches, or KD_OFFLINE)."""
    return any(
        os.environ.get(v, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
        for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "KD_OFFLINE")
    )


def cache_folder(name: str, datasets_root: Path) -> Path:
    """The folder a dataset's files live in (fill it to use the dataset offline)."""
    spec = PUBLIC[name]
    if spec.family == "vision":
        return datasets_root / "torchvision" / TORCHVISION_FOLDERS[name]
    namespace, repo = spec.source.split("/")
    return datasets_root / "huggingface" / f"{namespace}___{repo}"


def is_cached(name: str, datasets_root: Path) -> bool:
    """Whether the files are there (cheap: no hashing, no import of torchvision or datasets)."""
    folder = cache_folder(name, datasets_root)
    if PUBLIC[name].family == "text":
        return any(Path(p).is_dir() for p in glob.glob(str(folder / "*" / "*" / "*")))
    return folder.is_dir() and any(folder.iterdir())


def unavailable_message(name: str, datasets_root: Path) -> str:
    """What to do when a dataset is neither cached nor downloadable here."""
    spec = PUBLIC[name]
    how = (
        "torchvision's files (as its download=True writes them)"
        if spec.family == "vision"
        else f"a Hugging Face `datasets` cache of {spec.source} (load_dataset('{spec.source}', "
        f"cache_dir='{datasets_root / 'huggingface'}') on a machine online)"
    )
    alt = "a ZIP of class folders or an .npz" if spec.family == "vision" else "a CSV with text and label columns"
    return (
        f"dataset {name!r} is not cached on this machine and it is offline: put {how} in "
        f"{cache_folder(name, datasets_root)}, or upload {alt} through POST /upload and pass its upload_id."
    )


def load(name: str, datasets_root: Path, *, max_samples: int | None = None, seed: int = 0) -> RawDataset:
    """A public dataset by name; `max_samples` applied before the examples are materialised."""
    spec = PUBLIC[name]
    if not is_cached(name, datasets_root) and offline():
        raise DataError(unavailable_message(name, datasets_root))
    loader = _load_vision if spec.family == "vision" else _load_text
    return loader(spec, datasets_root, max_samples, seed)


def _load_vision(spec: PublicDataset, root: Path, max_samples: int | None, seed: int) -> RawDataset:
    import torchvision.datasets as tvd

    cls, folder = getattr(tvd, spec.source), root / "torchvision"
    try:  # torchvision checks the files (md5 for CIFAR) and downloads only when they are missing or corrupt
        parts = [cls(str(folder), train=t, download=not offline()) for t in (True, False)]
    except Exception as exc:  # offline: URLError, gaierror; corrupt: RuntimeError
        raise DataError(
            f"{spec.name} could not be loaded ({type(exc).__name__}: {exc}). " + unavailable_message(spec.name, root)
        ) from None
    labels = np.concatenate([np.asarray(p.targets) for p in parts]).astype(np.int64)
    keep = subsample_indices(labels, max_samples, seed)
    images = np.concatenate([np.asarray(p.data) for p in parts])  # uint8, as the files hold them
    if keep is not None:
        images, labels = images[keep], labels[keep]
    # [N,H,W,3] (CIFAR) or [N,H,W] (Fashion-MNIST, one channel: repeated to three per batch) -> [N,C,H,W]
    images = np.ascontiguousarray(images.transpose(0, 3, 1, 2) if images.ndim == 4 else images[:, None])
    return RawDataset(
        spec.name,
        "vision",
        [str(c) for c in parts[0].classes],
        labels,
        images=images,
        description=f"{spec.description} {spec.examples:,} images via torchvision; licence: "
        f"{spec.licence}." + _note(keep),
    )


def _load_text(spec: PublicDataset, root: Path, max_samples: int | None, seed: int) -> RawDataset:
    from datasets import concatenate_datasets, load_dataset

    cache_dir = root / "huggingface"
    try:
        with _hub_offline(is_cached(spec.name, root)):
            loaded = load_dataset(spec.source, cache_dir=str(cache_dir))
    except Exception as exc:  # ConnectionError offline, FileNotFoundError / ValueError for a partial cache
        raise DataError(
            f"{spec.name} could not be loaded ({type(exc).__name__}: {exc}). " + unavailable_message(spec.name, root)
        ) from None
    missing = [s for s in spec.splits if s not in loaded]
    if missing:
        raise DataError(f"the cached {spec.source} lacks the split(s) {missing} (has {list(loaded)}).")
    data = concatenate_datasets([loaded[s].select_columns([spec.text_column, "label"]) for s in spec.splits])
    labels = np.asarray(data["label"], dtype=np.int64)
    rows = np.flatnonzero(labels >= 0)  # -1: unlabelled
    keep = subsample_indices(labels[rows], max_samples, seed)
    rows = rows if keep is None else rows[keep]
    texts = [str(t) for t in data.select(rows)[spec.text_column]]
    feature = data.features["label"]
    names = list(getattr(feature, "names", None) or [str(i) for i in range(int(labels.max()) + 1)])
    return RawDataset(
        spec.name,
        "text",
        names,
        labels[rows],
        texts=texts,
        description=f"{spec.description} {spec.examples:,} examples via Hugging Face datasets "
        f"({spec.source}); licence: {spec.licence}." + _note(keep),
    )


def _note(keep: np.ndarray | None) -> str:
    return "" if keep is None else f" Subsampled to {len(keep):,} examples (max_samples) before decoding."


@contextlib.contextmanager
def _hub_offline(on: bool) -> Iterator[None]:
    """With a cached copy, read it without asking the Hub first (which would wait on the network here)."""
    import datasets.config

    if not on:
        yield
        return
    with _OFFLINE_LOCK:  # the library reads this module setting at call time
        before = datasets.config.HF_HUB_OFFLINE
        datasets.config.HF_HUB_OFFLINE = True
        try:
            yield
        finally:
            datasets.config.HF_HUB_OFFLINE = before

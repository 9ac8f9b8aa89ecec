"""The generated built-in tasks `shapes` (vision) and `intents` (text): fixed, large enough, balanced, not trivial."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from backend.app import create_app
from backend.data import builtin, public, synthetic_intents, synthetic_shapes
from backend.data import datasets as ds
from backend.jobconfig import BUILTIN_DATASETS, JobConfig

TASKS = [("shapes", "resnet18", "vision"), ("intents", "distilbert", "text")]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path_factory.mktemp("t") / "data"), "START_WORKERS": False})
    yield app.test_client()
    app.extensions["jobs"].shutdown()


@pytest.fixture(scope="module")
def shapes():
    return builtin.load_builtin("shapes")


@pytest.fixture(scope="module")
def intents():
    return builtin.load_builtin("intents")


def test_generation_is_fixed_and_ignores_the_job_seed(shapes, intents):
    images, labels = synthetic_shapes.generate(500)  # the first chunk of the full set, drawn again
    assert np.array_equal(images, shapes.images[:500]) and np.array_equal(labels, shapes.labels[:500])
    texts, text_labels = synthetic_intents.generate()
    assert texts == intents.texts and np.array_equal(text_labels, intents.labels)
    for name, raw in (("shapes", shapes), ("intents", intents)):
        other = builtin.load_builtin(name, seed=12345)
        assert np.array_equal(other.labels, raw.labels)
        assert np.array_equal(other.images, raw.images) if raw.images is not None else other.texts == raw.texts


def test_a_job_may_subsample_and_drop_its_copy_without_touching_the_cache(shapes):
    raw = ds.subsample(builtin.load_builtin("shapes"), 100, 0)
    raw.images = None
    again = builtin.load_builtin("shapes")
    assert len(again.labels) == len(again.images) == len(shapes.labels) >= 10_000
    assert not again.images.flags.writeable


@pytest.mark.parametrize("name", ["shapes", "intents"])
def test_sizes_balance_and_test_split(name, shapes, intents):
    raw = shapes if name == "shapes" else intents
    assert raw.name == name and raw.synthetic and raw.description
    assert len(raw.labels) >= 10_000
    counts = np.bincount(raw.labels, minlength=len(raw.class_names))
    assert len(counts) == len(raw.class_names) and counts.min() == counts.max() > 0
    for seed in (0, 1):
        splits = ds.split_indices(raw.labels, seed)
        assert len(splits.test) >= 1_500
        assert np.bincount(raw.labels[splits.test]).min() >= 1_500 // len(raw.class_names)


def test_images_are_uint8_32x32_rgb(shapes):
    assert shapes.family == "vision" and shapes.texts is None
    assert shapes.images.dtype == np.uint8 and shapes.images.shape == (len(shapes.labels), 3, 32, 32)
    assert shapes.images.nbytes <= 40_000_000
    assert shapes.images[:200].std() > 20  # drawn, not blank


def test_texts_are_distinct_non_empty_strings(intents):
    assert intents.family == "text" and intents.images is None
    assert all(isinstance(t, str) and t.strip() for t in intents.texts)
    assert len(set(intents.texts)) == len(intents.texts)
    assert max(len(t.split()) for t in intents.texts) <= 60  # fits the quick preset's 64 tokens, about


def _edge_and_intensity_histograms(images: np.ndarray) -> np.ndarray:
    grey = images.astype(np.float32).mean(1) / 255
    gx, gy = np.diff(grey, axis=2)[:, :-1, :], np.diff(grey, axis=1)[:, :, :-1]
    edges = np.hypot(gx, gy).reshape(len(grey), -1)
    hist = [np.histogram(row, bins=16, range=(0, 1))[0] for row in edges]
    levels = [np.histogram(row, bins=16, range=(0, 1))[0] for row in grey.reshape(len(grey), -1)]
    return np.log1p(np.hstack([np.stack(hist), np.stack(levels)]))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 100 iterations are plenty here
def test_shapes_are_not_separable_by_a_linear_model(shapes):
    x, y = shapes.images[:3000], shapes.labels[:3000]
    pixels = x.reshape(len(x), -1).astype(np.float32) / 255
    on_pixels = LogisticRegression(max_iter=100, C=0.01).fit(pixels[:1500], y[:1500]).score(pixels[2000:], y[2000:])
    features = _edge_and_intensity_histograms(x)
    on_histograms = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    on_histograms = on_histograms.fit(features[:2000], y[:2000]).score(features[2000:], y[2000:])
    assert on_pixels < 0.25  # position, rotation and colour vary: raw pixels say little (chance: 0.10)
    assert 0.13 < on_histograms < 0.6  # global edge statistics carry some of the shape (chance: 0.10)


def test_intents_are_not_separable_by_bag_of_words(intents):
    texts, y = intents.texts[:4500], intents.labels[:4500]
    x = CountVectorizer().fit(texts[:3000]).transform(texts)
    accuracy = LogisticRegression(max_iter=1000).fit(x[:3000], y[:3000]).score(x[3000:], y[3000:])
    assert 0.4 < accuracy < 0.85  # chance: 0.125; negations, contrasts and vague messages keep it well below 90%


@pytest.mark.parametrize(("name", "model", "family"), TASKS)
def test_registered_validated_and_listed(name, model, family, client):
    assert name in BUILTIN_DATASETS[family] and name in builtin.BUILTIN[family]
    config = JobConfig.from_dict({"model_name": model, "dataset": name})
    assert config.dataset == name
    models = {m["id"]: m for m in client.get("/models").get_json()["models"]}
    assert name in models[model]["datasets"]


def test_every_builtin_dataset_the_config_accepts_loads_here():
    for family, names in BUILTIN_DATASETS.items():
        assert {n for n in names if n not in public.PUBLIC} == set(builtin.BUILTIN[family])
    with pytest.raises(ds.DataError):
        builtin.load_builtin("nonesuch")

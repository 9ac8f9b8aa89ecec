"""Where teachers and datasets come from: pretrained weights saved locally, uploads, bad files."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import DistilBertConfig, DistilBertForSequenceClassification

from backend.data import datasets as ds
from backend.data.uploads import UploadError, save_upload
from backend.jobconfig import ConfigError, JobConfig
from backend.models import teachers
from backend.models.registry import get_model_spec, resolve_model_name
from backend.models.tokenizers import train_wordpiece
from backend.models.zoo.distilbert import build as build_distilbert
from backend.models.zoo.resnet18 import build as build_resnet18
from tests.engine_helpers import tiny_job

# one intra-op thread, as a job gets on a 2-core machine (backend.runtime.set_torch_threads)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(
    "name",
    [
        "distilbert",
        "distillBert",
        "DistilBERT",
        "T5-small",
        "t5_small",
        "MobileNetV2",
        "mobilenet_v2",
        "ResNet-18",
        "resnet-18",
        "RESNET18",
    ],
)
def test_model_aliases(name):
    assert resolve_model_name(name) in {"distilbert", "t5-small", "mobilenetv2", "resnet18"}


@pytest.mark.parametrize(
    "options,field",
    [
        ({"model_name": "vgg"}, "model_name"),
        ({"epochs": -1}, "epochs"),
        ({"sparsity": 1.0}, "sparsity"),
        ({"alpha": 1.5}, "alpha"),
        ({"temperature": 0}, "temperature"),
        ({"dataset": "digits"}, "dataset"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_config_names_the_field(options, field):
    with pytest.raises(ConfigError) as err:
        JobConfig.from_dict({"model_name": "distilbert", **options})
    assert err.value.field == field
    if field == "model_name":
        assert "resnet18" in str(err.value)  # lists the valid names


def test_torchvision_pretrained_weights_load_from_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference, _ = build_resnet18(class_names=[str(i) for i in range(1000)])
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save(reference.state_dict(), ckpt / "resnet18-f37072fd.pth")
    model, _, source = teachers.load_pretrained(
        get_model_spec("resnet18"),
        mode="true",
        preset="quick",
        class_names=[str(i) for i in range(10)],
        train_texts=None,
        seed=0,
    )
    assert source["kind"] == "pretrained"
    assert torch.equal(model.conv1.weight, reference.conv1.weight)
    assert model.fc.out_features == 10


def test_pretrained_true_is_a_clear_error_offline_and_auto_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    spec = get_model_spec("mobilenetv2")
    with pytest.raises(teachers.TeacherError, match="pretrained=true"):
        teachers.load_pretrained(spec, mode="true", preset="quick", class_names=["a", "b"], train_texts=None, seed=0)
    _, _, source = teachers.load_pretrained(
        spec, mode="auto", preset="quick", class_names=["a", "b"], train_texts=None, seed=0
    )
    assert source["kind"] == "trained" and "could not be loaded" in source["detail"]


def _tiny_distilbert_folder(path, texts):
    tok = train_wordpiece(texts)
    config = DistilBertConfig(
        vocab_size=len(tok), dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64, num_labels=2
    )
    model = DistilBertForSequenceClassification(config)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return model


def test_local_save_pretrained_checkpoint_loads_as_pretrained_teacher(tmp_path, monkeypatch):
    texts = ds.load_synthetic_sentiment(0, 200).texts
    reference = _tiny_distilbert_folder(tmp_path / "local", texts)
    monkeypatch.setenv("KD_PRETRAINED_DISTILBERT", str(tmp_path / "local"))
    model, tok = build_distilbert(
        preset="standard", class_names=["negative", "positive"], train_texts=[], pretrained=True
    )
    w = "distilbert.transformer.layer.1.attention.q_lin.weight"
    assert torch.equal(model.state_dict()[w], reference.state_dict()[w])
    assert tok("the movie").input_ids[0] == tok.cls_token_id


def test_uploaded_model_zip_is_the_teacher_of_a_job(tmp_path):
    texts = ds.load_synthetic_sentiment(0, 200).texts
    _tiny_distilbert_folder(tmp_path / "folder", texts)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in (tmp_path / "folder").iterdir():
            zf.write(f, f"my-model/{f.name}")
    buf.seek(0)
    meta = save_upload(tmp_path / "uploads", "my-model.zip", buf)
    # one pruning step on 100 samples: what is checked is where the teacher came from
    result = tiny_job(
        tmp_path, "distilbert", teacher_upload_id=meta["upload_id"], epochs=None, max_samples=100, pruning_steps=1
    )
    source = result.report["metadata"]["teacher_source"]
    assert source["kind"] == "upload" and "used as uploaded" in source["detail"]
    assert (
        result.report["teacher_vs_student_comparison"]["compression"]["parameters_total"]["teacher"]
        > result.report["teacher_vs_student_comparison"]["compression"]["parameters_total"]["student"]
    )


def _image_zip(classes: int, per_class: int) -> io.BytesIO:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(buf, "w") as zf:
        for c in range(classes):
            for i in range(per_class):
                img = Image.fromarray((rng.random((12, 12, 3)) * 255).astype(np.uint8))
                data = io.BytesIO()
                img.save(data, format="PNG")
                zf.writestr(f"class_{c}/{i}.png", data.getvalue())
    buf.seek(0)
    return buf


def test_uploaded_datasets_load_and_split(tmp_path):
    csv = io.BytesIO(
        b"text,label\n" + b"".join(f"sentence {i} good,pos\nsentence {i} bad,neg\n".encode() for i in range(20))
    )
    meta = save_upload(tmp_path, "reviews.csv", csv)
    raw = ds.load_upload("text", tmp_path / meta["upload_id"] / meta["stored_name"], "reviews.csv", 32)
    assert sorted(raw.class_names) == ["neg", "pos"] and len(raw.texts) == 40
    meta = save_upload(tmp_path, "images.zip", _image_zip(3, 6))
    raw = ds.load_upload("vision", tmp_path / meta["upload_id"] / meta["stored_name"], "images.zip", 16)
    assert raw.images.shape == (18, 3, 12, 12) and raw.images.dtype == np.uint8 and len(raw.class_names) == 3
    splits = ds.split_indices(raw.labels, 0)
    assert set(splits.train).isdisjoint(splits.test) and set(splits.val).isdisjoint(splits.test)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 18


def test_bad_dataset_file_gets_a_clear_error(tmp_path):
    with pytest.raises(UploadError, match="label"):
        save_upload(tmp_path, "bad.csv", io.BytesIO(b"text,category\nhello,a\nbye,b\n"))
    with pytest.raises(UploadError, match="class"):
        save_upload(tmp_path, "one.zip", _image_zip(1, 4))


def test_builtin_text_set_is_balanced_deterministic_and_not_trivial():
    a, b = ds.load_synthetic_sentiment(0, 4000), ds.load_synthetic_sentiment(0, 4000)
    assert a.texts == b.texts and len(a.texts) == 4000
    assert np.bincount(a.labels).tolist() == [2000, 2000]
    vocab = {w for t in a.texts for w in t.replace(",", " ").replace(".", " ").split()}
    assert len(vocab) >= 200
    negated = sum(" not " in t or " never " in t for t in a.texts)
    contrast = sum(", but " in t or ", yet " in t for t in a.texts)
    assert negated > 400 and contrast > 300
    # a bag of words cannot solve it: the same words appear with both labels
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    x = CountVectorizer().fit_transform(a.texts)
    clf = LogisticRegression(max_iter=2000).fit(x[:3000], a.labels[:3000])
    assert clf.score(x[3000:], a.labels[3000:]) < 0.8


def test_offline_tokenizers_are_repeatable_and_load_with_autotokenizer(tmp_path):
    from transformers import AutoTokenizer

    from backend.models.tokenizers import train_sentencepiece

    texts = ds.load_synthetic_sentiment(0, 1000).texts
    assert train_wordpiece(texts).get_vocab() == train_wordpiece(texts).get_vocab()
    words = ["negative", "positive"]
    assert train_sentencepiece(texts, words).get_vocab() == train_sentencepiece(texts, words).get_vocab()
    for i, tok in enumerate((train_wordpiece(texts), train_sentencepiece(texts, words))):
        tok.save_pretrained(tmp_path / str(i))
        again = AutoTokenizer.from_pretrained(tmp_path / str(i))
        assert again(texts[0]).input_ids == tok(texts[0]).input_ids

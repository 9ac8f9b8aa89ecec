"""Pretrained teachers at the standard preset from the Hugging Face hub cache layout (models--org--name/snapshots)."""

from __future__ import annotations

import shutil

import torch

from backend.data import datasets as ds
from backend.models.zoo.distilbert import build as build_distilbert
from tests.test_engine_teachers import _tiny_distilbert_folder


def test_distilbert_auto_pretrained_from_the_hub_cache_layout(tmp_path, monkeypatch):
    """A model saved where an online from_pretrained('distilbert-base-uncased') would have put it is used offline."""
    import huggingface_hub.constants as hub

    folder = _tiny_distilbert_folder(tmp_path / "saved", ds.load_synthetic_sentiment(0, 200).texts)
    sha = "0" * 40
    repo = tmp_path / "hub" / "models--distilbert-base-uncased"
    shutil.copytree(tmp_path / "saved", repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    monkeypatch.delenv("KD_PRETRAINED_DISTILBERT", raising=False)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # nothing reaches the network
    model, tok = build_distilbert(
        preset="standard",
        class_names=["negative", "positive"],
        train_texts=[],
        pretrained=True,
        source="distilbert-base-uncased",
    )
    w = "distilbert.transformer.layer.1.attention.q_lin.weight"
    assert torch.equal(model.state_dict()[w], folder.state_dict()[w])
    assert tok("the movie").input_ids[0] == tok.cls_token_id

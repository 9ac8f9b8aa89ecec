"""Input adapters: one uniform view of the three kinds of model (image classifier, text classifier, text-to-text).

Every adapter gives `logits_and_targets(model, batch)` for training and KD (rows of logits with their
targets, -100 meaning "ignore") and `predict(model, batch)` for measuring (class indices, -1 when a
generated word is no class).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager as ContextManager
from typing import Any

import numpy as np
import torch
from torch import nn

from backend.data.datasets import TensorSet
from backend.kd.loss import IGNORE_INDEX
from backend.models.registry import ModelSpec, get_model_spec

Batch = dict[str, torch.Tensor]


class _Adapter:
    """What every adapter shares: `amp`, the context its forward passes run under (autocast, or nothing at fp32).

    Only forward passes run under it; logits come back as float32, so losses and backward stay in fp32.
    """

    amp: Callable[[], ContextManager] = contextlib.nullcontext


class VisionAdapter(_Adapter):
    """torchvision classifiers: pixel_values -> class logits."""

    family = "vision"
    input_keys = ("pixel_values",)

    def logits_and_targets(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        with self.amp():
            logits = model(batch["pixel_values"])
        return logits.float(), batch["labels"]

    def predict(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        with self.amp():
            return model(batch["pixel_values"]).argmax(-1)


class SequenceClassificationAdapter(_Adapter):
    """Encoder classifiers (DistilBERT, BERT): input_ids + attention_mask -> class logits."""

    family = "text"
    input_keys = ("input_ids", "attention_mask")

    def logits_and_targets(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        with self.amp():
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return out.logits.float(), batch["labels"]

    def predict(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        with self.amp():
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return out.logits.argmax(-1)


class Text2TextAdapter(_Adapter):
    """T5: the target is the label word; KD over decoder logits under teacher forcing; predictions by generation."""

    family = "text"
    input_keys = ("input_ids", "attention_mask")

    def __init__(self, tokenizer, class_names: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.class_names = list(class_names)
        self.word_to_class = {name.strip().lower(): i for i, name in enumerate(self.class_names)}
        self.max_new_tokens = max(len(tokenizer(name).input_ids) for name in self.class_names) + 1

    def logits_and_targets(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        targets = batch["target_ids"]
        with self.amp():
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=targets)
        return out.logits.float().reshape(-1, out.logits.shape[-1]), targets.reshape(-1)

    def predict(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        with self.amp():
            generated = model.generate(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
            )
        words = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
        return torch.tensor(
            [self.word_to_class.get(w.strip().lower(), -1) for w in words],
            dtype=torch.long,
            device=batch["input_ids"].device,
        )  # beside the labels it is compared with


def adapter_for(spec: Any, tokenizer=None, class_names: Sequence[str] = ()) -> object:
    """The adapter that fits a registered model's task (its spec, or any name of it)."""
    task = (spec if isinstance(spec, ModelSpec) else get_model_spec(spec)).task
    if task == "encoder_decoder":
        return Text2TextAdapter(tokenizer, class_names)
    if task == "sequence_classifier":
        return SequenceClassificationAdapter()
    return VisionAdapter()


def text_tensors(
    tokenizer, texts: Sequence[str], labels: np.ndarray, max_length: int, class_names: Sequence[str] | None = None
) -> TensorSet:
    """Tokenise to fixed-length tensors; for text-to-text also the label words as target ids."""
    enc = tokenizer(list(texts), max_length=max_length, padding="max_length", truncation=True, return_tensors="pt")
    tensors = {
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
        "labels": torch.as_tensor(labels, dtype=torch.long),
    }
    if class_names is not None:
        words = [class_names[int(i)] for i in labels]
        width = max(len(tokenizer(c).input_ids) for c in class_names)
        target = tokenizer(words, max_length=width, padding="max_length", truncation=True, return_tensors="pt")
        ids = target["input_ids"].masked_fill(target["attention_mask"] == 0, IGNORE_INDEX)
        tensors["target_ids"] = ids
    return TensorSet(tensors)


def fitted_length(tokenizer, texts: Sequence[str], cap: int) -> int:
    """The longest tokenised text, capped: pads every batch to one length without waste."""
    lengths = [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=cap)["input_ids"]]
    return max(8, max(lengths))

"""Input adapters: one uniform view of the three kinds of model (image classifier, text classifier, text-to-text).

Every adapter gives `logits_and_targets(model, batch)` for training and KD (rows of logits with their
targets, -100 meaning "ignore"), `outputs(model, batch, needs)` for the distillation losses that read more than
the logits (transformers' own hidden states and attentions, or CNN stage outputs through forward hooks), and
`predict(model, batch)` for measuring (class indices, -1 when a generated word is no class).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager as ContextManager
from typing import Any

import numpy as np
import torch
from torch import nn

from backend.data.datasets import TensorSet
from backend.kd.loss import IGNORE_INDEX
from backend.kd.outputs import Outputs
from backend.models.registry import ModelSpec, get_model_spec

Batch = dict[str, torch.Tensor]


class _Adapter:
    """What every adapter shares: `amp`, the context its forward passes run under (autocast, or nothing at fp32).

    Only forward passes run under it; logits come back as float32, so losses and backward stay in fp32.
    """

    amp: Callable[[], ContextManager] = contextlib.nullcontext

    def logits_and_targets(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.outputs(model, batch)
        return out.logits, out.targets

    def outputs(self, model: nn.Module, batch: Batch, needs: Sequence[str] = ()) -> Outputs:
        raise NotImplementedError

    @contextlib.contextmanager
    def prepared(self, model: nn.Module, needs: Sequence[str]) -> Iterator[None]:
        """The model set up to give what `needs` asks for while the block runs, and restored after it."""
        yield


@contextlib.contextmanager
def _transformer_outputs(model: nn.Module, needs: Sequence[str]) -> Iterator[None]:
    """A transformers model set up to return hidden states and attentions while the block runs, and left as it was.

    SDPA attention returns no attention weights: eager attention while they are needed, the model's own
    implementation again afterwards. transformers installs forward hooks to record these outputs the first time
    they are asked for and never removes them (closures: a model carrying them cannot be pickled, saved whole
    or exported); every hook added inside the block is removed at its end, so the model leaves with exactly the
    hooks it came with.
    """
    if not needs:
        yield
        return
    config = getattr(model, "config", None)
    before = getattr(config, "_attn_implementation", None)
    switch = "attentions" in needs and before not in (None, "eager") and hasattr(model, "set_attn_implementation")
    hooks = {id(m): set(m._forward_hooks) for m in model.modules()}
    marked = {id(m) for m in model.modules() if "_output_capturing_hooks_installed" in vars(m)}
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)
        for module in model.modules():
            for key in set(module._forward_hooks) - hooks.get(id(module), set()):
                del module._forward_hooks[key]
            if id(module) not in marked and "_output_capturing_hooks_installed" in vars(module):
                delattr(module, "_output_capturing_hooks_installed")


def _attentions(attentions: Any) -> tuple[torch.Tensor, ...]:
    if not attentions or attentions[0] is None:
        raise RuntimeError("the model returned no attention weights (run it under the adapter's prepared())")
    return tuple(attentions)


class VisionAdapter(_Adapter):
    """torchvision classifiers: pixel_values -> class logits."""

    family = "vision"
    input_keys = ("pixel_values",)

    def __init__(self, feature_layers: Sequence[str] = ()) -> None:
        self.feature_layers = tuple(feature_layers)  # the stages the features loss matches (ModelSpec)

    def outputs(self, model: nn.Module, batch: Batch, needs: Sequence[str] = ()) -> Outputs:
        """Logits; with "features", the outputs of the spec's stages, read by forward hooks removed right after."""
        features: dict[str, torch.Tensor] = {}
        handles = []
        if "features" in needs:
            modules = dict(model.named_modules())
            missing = [name for name in self.feature_layers if name not in modules]
            if missing or not self.feature_layers:
                raise RuntimeError(f"the model has no stage(s) {missing or 'declared'} to read features from")
            for name in self.feature_layers:
                handles.append(modules[name].register_forward_hook(_keeper(features, name)))
        try:
            with self.amp():
                logits = model(batch["pixel_values"])
        finally:
            for handle in handles:
                handle.remove()
        return Outputs(logits.float(), batch["labels"], features=features)

    def predict(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        with self.amp():
            return model(batch["pixel_values"]).argmax(-1)


class SequenceClassificationAdapter(_Adapter):
    """Encoder classifiers (DistilBERT, BERT): input_ids + attention_mask -> class logits."""

    family = "text"
    input_keys = ("input_ids", "attention_mask")

    def outputs(self, model: nn.Module, batch: Batch, needs: Sequence[str] = ()) -> Outputs:
        """Logits; hidden states and attentions of the encoder when asked for (transformers' own outputs)."""
        with self.amp():
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **_flags(needs))
        result = Outputs(out.logits.float(), batch["labels"])
        if needs:
            result.masks["encoder"] = batch["attention_mask"].bool()
        if "hidden_states" in needs:
            result.hidden_states["encoder"] = tuple(out.hidden_states)
        if "attentions" in needs:
            result.attentions["encoder"] = _attentions(out.attentions)
        return result

    def prepared(self, model: nn.Module, needs: Sequence[str]) -> ContextManager:
        return _transformer_outputs(model, needs)

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

    def outputs(self, model: nn.Module, batch: Batch, needs: Sequence[str] = ()) -> Outputs:
        """Decoder logits under teacher forcing; encoder and decoder hidden states / self-attentions when asked."""
        targets = batch["target_ids"]
        with self.amp():
            out = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=targets, **_flags(needs)
            )
        result = Outputs(out.logits.float().reshape(-1, out.logits.shape[-1]), targets.reshape(-1))
        if needs:
            result.masks = {"encoder": batch["attention_mask"].bool(), "decoder": targets != IGNORE_INDEX}
        if "hidden_states" in needs:
            result.hidden_states = {
                "encoder": tuple(out.encoder_hidden_states),
                "decoder": tuple(out.decoder_hidden_states),
            }
        if "attentions" in needs:
            result.attentions = {
                "encoder": _attentions(out.encoder_attentions),
                "decoder": _attentions(out.decoder_attentions),
            }
        return result

    def prepared(self, model: nn.Module, needs: Sequence[str]) -> ContextManager:
        return _transformer_outputs(model, needs)

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


def _flags(needs: Sequence[str]) -> dict[str, bool]:
    """The transformers forward flags for what a loss needs."""
    flags = {}
    if "hidden_states" in needs:
        flags["output_hidden_states"] = True
    if "attentions" in needs:
        flags["output_attentions"] = True
    return flags


def _keeper(store: dict[str, torch.Tensor], name: str) -> Callable:
    """A forward hook that keeps a module's output under `name`."""

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        store[name] = output

    return hook


def adapter_for(spec: Any, tokenizer=None, class_names: Sequence[str] = ()) -> object:
    """The adapter that fits a registered model's task (its spec, or any name of it)."""
    spec = spec if isinstance(spec, ModelSpec) else get_model_spec(spec)
    if spec.task == "encoder_decoder":
        return Text2TextAdapter(tokenizer, class_names)
    if spec.task == "sequence_classifier":
        return SequenceClassificationAdapter()
    return VisionAdapter(spec.feature_layers)


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

"""ModelSpec: what one model's module (backend.models.zoo) tells the service about it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

PRESETS = ("quick", "standard")
FAMILIES = ("text", "vision")
# image_classifier: pixel_values -> class logits; sequence_classifier: input_ids + attention_mask -> class logits;
# encoder_decoder: text-to-text, the target is the label word and predictions are generated
TASKS = {"image_classifier": "vision", "sequence_classifier": "text", "encoder_decoder": "text"}


def _never(_keys: set[str]) -> bool:
    return False


@dataclass(frozen=True)
class ModelSpec:
    """Everything the service knows about one model; the callables are the model's own code."""

    id: str
    display_name: str
    family: str  # "text" or "vision": which datasets, uploads and adapters fit
    aliases: tuple[str, ...]
    source: str  # the library class it is built from
    default_structural_ratio: float  # the fraction of layers / channels / FFN units the student loses
    presets: Mapping[str, Mapping[str, Any]]  # training defaults per preset (epochs, batch size, learning rates)
    # (preset=, class_names=, train_texts=, pretrained=, seed=) -> (model, tokenizer or None); PretrainedUnavailable
    build: Callable[..., tuple[Any, Any]]
    # (teacher, ratio, example_inputs or None) -> (student, summary of what was removed): the structural recipe
    make_student: Callable[..., tuple[Any, dict]]
    architecture: Callable[[str], dict]  # preset -> the sizes a from-scratch teacher has (part of its cache key)
    # what kind of model it is; the task decides the input adapter (backend.models.adapters), the ONNX export
    # (backend.models.onnx_export), how a saved folder reloads and the bundle's usage lines
    task: str
    onnx_dynamo: bool = False  # export with the dynamo exporter first (TorchScript otherwise)
    int8_op_types: tuple[str, ...] | None = None  # ONNX Runtime dynamic int8: the op types quantised (None: default)
    hf_model_type: str | None = None  # config.json "model_type" of an uploaded model folder
    looks_like: Callable[[set[str]], bool] = _never  # state-dict key names -> is it this model's checkpoint?
    classifier: Callable[[Any], Any] | None = None  # vision: the final layer, kept at full width by pruning
    # vision: the modules whose outputs the `features` distillation loss matches (stage ends; same names in the
    # channel-pruned student, which keeps the teacher's module structure)
    feature_layers: tuple[str, ...] = ()
    # text: the model's heads and FFN layers (backend.pruning.structured.TransformerParts), for structured pruning
    transformer_parts: Callable[[Any], Any] | None = None
    reference: Mapping[str, Any] | None = None  # published figures /test_metrics checks (factory, input, params)

    @property
    def labels_as_words(self) -> bool:
        """Text-to-text: the target is the label word (tokenised), predictions are generated words."""
        return self.task == "encoder_decoder"

"""Registry of the four models: ids, aliases, family, datasets, presets and builders."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from backend.echo import clip

PRESETS = ("quick", "standard")


class UnknownModelError(ValueError):
    """A model name that is not in the registry; the message lists the valid ones."""


@dataclass(frozen=True)
class ModelSpec:
    """What the service knows about one model."""

    id: str
    display_name: str
    family: str  # "text" or "vision"
    aliases: tuple[str, ...]
    source: str  # the library class it is built from
    default_structural_ratio: float
    builder: str = ""  # "module:function" building (teacher, tokenizer_or_None); resolved lazily
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # "onnx": how it exports (backend.models.onnx_export)


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-\.]", "", str(name).lower())


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a model and its aliases to the registry."""
    _REGISTRY[spec.id] = spec
    for alias in (spec.id, spec.display_name, *spec.aliases):
        _ALIASES[_key(alias)] = spec.id
    return spec


def list_models() -> list[ModelSpec]:
    """All registered models, in registration order."""
    return list(_REGISTRY.values())


def resolve_model_name(name: Any) -> str:
    """Canonical id for any accepted spelling; UnknownModelError listing the valid ids otherwise."""
    if isinstance(name, str) and _key(name) in _ALIASES:
        return _ALIASES[_key(name)]
    valid = ", ".join(_REGISTRY)
    raise UnknownModelError(f"Unknown model_name '{clip(name)}'; valid: {valid} (case-insensitive; aliases such as "
                            "'distillBert', 'T5-small', 'mobilenet_v2', 'ResNet-18' are accepted).")


def get_model_spec(name: str) -> ModelSpec:
    """The spec for any accepted spelling of a model name."""
    return _REGISTRY[resolve_model_name(name)]


# Structural ratio: the fraction of layers (transformers) or channels (CNNs) removed to make the student.
register_model(ModelSpec(
    id="distilbert", display_name="DistilBERT", family="text",
    aliases=("distillbert", "distil-bert", "distilbert-base-uncased"),
    source="transformers.DistilBertForSequenceClassification",
    default_structural_ratio=0.5,
    builder="backend.models.text:build_distilbert",
    extra={"onnx": "sequence_classifier", "int8_op_types": ("MatMul", "Gemm", "Gather")},
))
register_model(ModelSpec(
    id="t5-small", display_name="T5-small", family="text",
    aliases=("t5small", "t5"),
    source="transformers.T5ForConditionalGeneration",
    default_structural_ratio=0.5,
    builder="backend.models.text:build_t5",
    # deep encoder, shallow decoder: generation pays per decoder layer per token (batch-1 goal, BENCHMARKS.md)
    extra={"onnx": "encoder_decoder", "student_decoder_layers": 1, "int8_op_types": ("MatMul", "Gemm", "Gather")},
))
register_model(ModelSpec(
    id="mobilenetv2", display_name="MobileNetV2", family="vision",
    aliases=("mobilenet_v2", "mobilenet-v2", "mobilenet"),
    source="torchvision.models.mobilenet_v2",
    default_structural_ratio=0.4,
    builder="backend.models.vision:build_mobilenetv2",
    extra={"onnx": "image_classifier"},
))
register_model(ModelSpec(
    id="resnet18", display_name="ResNet-18", family="vision",
    aliases=("resnet-18", "resnet_18"),
    source="torchvision.models.resnet18",
    default_structural_ratio=0.5,
    builder="backend.models.vision:build_resnet18",
    extra={"onnx": "image_classifier"},
))


def resolve_builder(spec: ModelSpec) -> Callable[..., Any]:
    """Import the builder function named in the spec."""
    import importlib

    module, func = spec.builder.split(":")
    return getattr(importlib.import_module(module), func)

"""The model registry: every model the service knows, each described in full by one module of `backend.models.zoo`.

A model module defines `SPEC = ModelSpec(...)`: its ids and aliases, how to build its teacher and its structural
student, how its batches are fed, how it exports, its preset defaults and the figures `/test_metrics` checks.
Nothing outside `backend/models/` names a model id; the rest of the service asks the spec. Adding a model is one
new module in `backend/models/zoo/` and one line in `MODEL_MODULES` below.

Model modules import torch, torchvision and transformers inside their functions only, so that the API process,
which lists and validates models but never builds one, starts without them.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from backend.echo import clip
from backend.models.spec import FAMILIES, PRESETS, TASKS, ModelSpec

__all__ = [
    "FAMILIES",
    "PRESETS",
    "TASKS",
    "ModelSpec",
    "UnknownModelError",
    "get_model_spec",
    "list_models",
    "register_model",
    "resolve_model_name",
]

# One line per model: the module of backend.models.zoo that defines its SPEC, in the order GET /models lists them.
MODEL_MODULES = (
    "distilbert",
    "t5_small",
    "mobilenetv2",
    "resnet18",
    "bert",
)


class UnknownModelError(ValueError):
    """A model name that is not in the registry; the message lists the valid ones."""


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-\.]", "", str(name).lower())


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a model and its aliases to the registry."""
    if TASKS.get(spec.task) != spec.family:
        raise ValueError(f"{spec.id}: task must be one of {list(TASKS)} and fit the family {spec.family!r}")
    if set(spec.presets) != set(PRESETS):
        raise ValueError(f"{spec.id}: presets must define {PRESETS}")
    _REGISTRY[spec.id] = spec
    for alias in (spec.id, spec.display_name, *spec.aliases):
        _ALIASES[_key(alias)] = spec.id
    return spec


def list_models() -> list[ModelSpec]:
    """All registered models, in registration order."""
    return list(_REGISTRY.values())


def model_ids() -> list[str]:
    """The canonical ids, in registration order."""
    return list(_REGISTRY)


def resolve_model_name(name: Any) -> str:
    """Canonical id for any accepted spelling; UnknownModelError listing the valid ids otherwise."""
    if isinstance(name, str) and _key(name) in _ALIASES:
        return _ALIASES[_key(name)]
    valid = ", ".join(_REGISTRY)
    examples = ", ".join(f"'{s.aliases[0]}'" for s in list_models() if s.aliases)
    raise UnknownModelError(
        f"Unknown model_name '{clip(name)}'; valid: {valid} (case-insensitive; aliases such as "
        f"{examples} are accepted)."
    )


def get_model_spec(name: str) -> ModelSpec:
    """The spec for any accepted spelling of a model name."""
    return _REGISTRY[resolve_model_name(name)]


def defaults(model_id: str, preset: str) -> dict:
    """A copy of the training defaults of one model at one preset."""
    return dict(get_model_spec(model_id).presets[preset])


def model_for_checkpoint(keys: set[str]) -> str | None:
    """Which registered model a state dict's key names look like; None when none or more than one claims it."""
    hits = [spec.id for spec in list_models() if spec.looks_like(keys)]
    return hits[0] if len(hits) == 1 else None


def model_for_hf_type(model_type: Any) -> str | None:
    """The registered model whose Hugging Face config `model_type` this is; None when none."""
    wanted = str(model_type or "").lower()
    return next((spec.id for spec in list_models() if spec.hf_model_type == wanted), None)


def load_class(path: str) -> Any:
    """The class (or function) named by "module:Name"."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


for _module in MODEL_MODULES:
    register_model(importlib.import_module(f"backend.models.zoo.{_module}").SPEC)

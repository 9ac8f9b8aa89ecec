"""Distillation losses: a registry, one module per loss; the training loop with callbacks.

A loss module defines `LOSS = KDLoss(...)`: its name, a description, its formula (the report quotes it), the job
options it adds (declared with `backend.options.Option`, so validation, GET /models, OpenAPI, both CLIs and the
dashboard pick them up) and `compute`, its code. The loop asks the registry for the job's `kd_loss` and names
none. Adding a loss is one module here and one line in `LOSS_MODULES`.

Loss modules import torch inside their functions only: the API process lists and validates losses without it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backend.options import Option

# One line per loss: the module of backend.kd that defines its LOSS, in the order GET /models lists them.
LOSS_MODULES = (
    "logits",
    "ce",
)
DEFAULT_LOSS = "logits"


@dataclass(frozen=True)
class KDLoss:
    """One distillation loss.

    `compute(student_logits, teacher_logits, targets, settings)` returns the loss terms (tensors): "loss" (the
    one optimised) and each term by name ("kd_loss", "ce_loss", ...). `settings` carries the job's options
    (temperature, alpha, ...). `uses_teacher`: False when the loss never reads the teacher's logits.
    """

    name: str
    description: str
    formula: str
    compute: Callable[..., dict[str, Any]]
    options: tuple[Option, ...] = ()
    uses_teacher: bool = True

    def describe(self) -> dict[str, Any]:
        """What GET /models lists of the loss."""
        return {
            "name": self.name,
            "description": self.description,
            "formula": self.formula,
            "options": [o.name for o in self.options],
        }


_LOSSES: dict[str, KDLoss] = {}


def register_loss(loss: KDLoss) -> KDLoss:
    """Add a loss to the registry (a name registered twice is a mistake)."""
    if loss.name in _LOSSES and _LOSSES[loss.name] is not loss:
        raise ValueError(f"distillation loss {loss.name!r} is registered twice")
    _LOSSES[loss.name] = loss
    return loss


def _load() -> None:
    for module in LOSS_MODULES:
        register_loss(importlib.import_module(f"{__name__}.{module}").LOSS)


def list_losses() -> list[KDLoss]:
    """Every registered loss, in LOSS_MODULES order (then any registered later)."""
    if not _LOSSES:
        _load()
    return list(_LOSSES.values())


def get_loss(name: str) -> KDLoss:
    """The loss called `name`; KeyError naming the valid ones otherwise."""
    losses = {loss.name: loss for loss in list_losses()}
    if name not in losses:
        raise KeyError(f"unknown distillation loss {name!r}; valid: {sorted(losses)}")
    return losses[name]

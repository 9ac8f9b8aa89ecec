"""Distillation losses: a registry, one module per loss; the training loop with callbacks.

A loss module defines `LOSS = KDLoss(...)`: its name, a description, its formula (the report quotes it), the job
options it adds (declared with `backend.options.Option`, so validation, GET /models, OpenAPI, both CLIs and the
dashboard pick them up) and `compute`, its code. The loop asks the registry for the job's `kd_loss` and names
none. Adding a loss is one module here and one line in `LOSS_MODULES`.

Loss modules import torch inside their functions only: the API process lists and validates losses without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backend.options import Option
from backend.plugins import Registry

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


_REGISTRY: Registry[KDLoss] = Registry("distillation loss", __name__, LOSS_MODULES, "LOSS")
register_loss = _REGISTRY.register
list_losses = _REGISTRY.all
get_loss = _REGISTRY.get

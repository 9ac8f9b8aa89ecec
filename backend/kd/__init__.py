"""Distillation losses: a registry, one module per loss; the training loop with callbacks.

A loss module defines `LOSS = KDLoss(...)`: its name, a description, its formula (the report quotes it), the job
options it adds (declared with `backend.options.Option`, so validation, GET /models, OpenAPI, both CLIs and the
dashboard pick them up), what it needs of the models beyond their logits (`needs`), the trainable projections
it adds (`make_bridge`) and `compute`, its code. The loop asks the registry for the job's `kd_loss` and names
none. Adding a loss is one module here and one line in `LOSS_MODULES`.

The job option `kd_loss` is a loss's name, or several combined with weights: `{"logits": 1.0, "features": 0.5}`
optimises 1.0 x the logits loss + 0.5 x the features loss, each term logged on its own (backend.kd.objective).

Loss modules import torch inside their functions only: the API process lists and validates losses without it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from backend.options import Option
from backend.plugins import Registry

# One line per loss: the module of backend.kd that defines its LOSS, in the order GET /models lists them.
LOSS_MODULES = (
    "logits",
    "ce",
    "hidden_cosine",
    "hidden_mse",
    "attention",
    "features",
)
DEFAULT_LOSS = "logits"
# What a loss may ask of the models beyond their logits (an adapter's `outputs(model, batch, needs)` returns them).
NEEDS = ("hidden_states", "attentions", "features")


@dataclass(frozen=True)
class KDLoss:
    """One distillation loss.

    `compute(student, teacher, settings, bridge)` returns the loss terms (tensors): "loss" (the one optimised)
    and each term by name ("kd_loss", "ce_loss", "features_loss", ...). `student` and `teacher` are
    `backend.kd.outputs.Outputs` (logits, targets and whatever `needs` asked for; `teacher` is None without one),
    `settings` carries the job's options (temperature, alpha, the block map, ...) and `bridge` is what
    `make_bridge` built (None when the loss has none).

    `uses_teacher`: False when the loss never reads the teacher. `needs`: model outputs beyond the logits, among
    NEEDS; the teacher then runs at every step (its logits alone are cached once per job). `families`: the model
    families it is defined for (a job asking for it on another is refused with a 400). `term`: the column of its
    own term in the loss history (listed in backend.metrics.keys.LOSS_TERMS). `make_bridge(student, teacher,
    settings)`, given the first batch's outputs, returns (a module of trainable projections or None, a description
    of the layer mapping and projection sizes for the report); the projections train with the student and are
    dropped after training, never part of the exported student.
    """

    name: str
    description: str
    formula: str
    compute: Callable[..., dict[str, Any]]
    options: tuple[Option, ...] = ()
    uses_teacher: bool = True
    needs: tuple[str, ...] = ()
    families: tuple[str, ...] = ("text", "vision")
    term: str | None = None
    make_bridge: Callable[..., tuple[Any, dict]] | None = None

    def describe(self) -> dict[str, Any]:
        """What GET /models lists of the loss."""
        return {
            "name": self.name,
            "description": self.description,
            "formula": self.formula,
            "options": [o.name for o in self.options],
            "needs": list(self.needs),
            "families": list(self.families),
        }


_REGISTRY: Registry[KDLoss] = Registry("distillation loss", __name__, LOSS_MODULES, "LOSS")
register_loss = _REGISTRY.register
list_losses = _REGISTRY.all
get_loss = _REGISTRY.get


def loss_weights(kd_loss: str | Mapping[str, float]) -> dict[str, float]:
    """The job's `kd_loss` as {name: weight}: a plain name weighs 1; losses at weight 0 are left out."""
    if isinstance(kd_loss, str):
        return {kd_loss: 1.0}
    return {name: float(w) for name, w in kd_loss.items() if w > 0}


def losses_of(kd_loss: str | Mapping[str, float]) -> list[KDLoss]:
    """The registered losses the job's `kd_loss` combines (KeyError naming the valid ones for an unknown name)."""
    return [get_loss(name) for name in loss_weights(kd_loss)]


def loss_needs(kd_loss: str | Mapping[str, float]) -> tuple[str, ...]:
    """What the combined losses need of the models beyond their logits, in NEEDS order."""
    asked = {need for loss in losses_of(kd_loss) for need in loss.needs}
    return tuple(n for n in NEEDS if n in asked)


def uses_teacher(kd_loss: str | Mapping[str, float]) -> bool:
    """Whether any of the combined losses reads the teacher."""
    return any(loss.uses_teacher for loss in losses_of(kd_loss))


def describe_combination(kd_loss: str | Mapping[str, float]) -> dict[str, Any]:
    """Name, weights and formula of the job's loss, for the report (one loss: its own name and formula)."""
    weights = loss_weights(kd_loss)
    losses = losses_of(kd_loss)
    if len(losses) == 1 and weights[losses[0].name] == 1.0:
        return {**{k: v for k, v in losses[0].describe().items() if k != "options"}, "weights": weights}
    return {
        "name": " + ".join(f"{w:g} x {n}" for n, w in weights.items()),
        "description": "weighted sum of the losses below, each term logged on its own",
        "formula": " + ".join(f"{w:g} * [{get_loss(n).formula}]" for n, w in weights.items()),
        "weights": weights,
        "losses": [{k: v for k, v in loss.describe().items() if k != "options"} for loss in losses],
        "needs": list(loss_needs(kd_loss)),
    }

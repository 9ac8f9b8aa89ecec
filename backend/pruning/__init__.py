"""Pruning methods: a registry, one module per method, and the structural compression that makes the student.

A method module defines `METHOD = PruningMethod(...)`: its name, a description, the job options it adds
(declared with `backend.options.Option`, so validation, GET /models, OpenAPI, both CLIs and the dashboard pick
them up) and `run`, its code. The pipeline asks the registry for the job's `pruning_method` and names none.
Adding a method is one module here and one line in `METHOD_MODULES`.

Method modules import torch inside their functions only: the API process lists and validates methods without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backend.options import Option
from backend.plugins import Registry

# One line per method: the module of backend.pruning that defines its METHOD, in the order GET /models lists them.
METHOD_MODULES = (
    "l1_unstructured",
    "random_unstructured",
    "structured",
    "nm_2_4",
    "wanda",
)
DEFAULT_METHOD = "l1_unstructured"


@dataclass(frozen=True)
class PruningStep:
    """What a method reports after each step: the step (from 1), its target and the sparsity reached."""

    step: int
    target_sparsity: float
    achieved_sparsity: float


@dataclass(frozen=True)
class PruningContext:
    """What a method may need of the job beyond the model and its options, handed down by the pipeline.

    `family`: "vision" or "text". `train_batch(n)`: the first `n` examples of the (shuffled) train split, on the
    job's device. `forward(model, batch)`: the model's logits on a batch. `loss(model, batch)`: the job's
    fine-tuning loss on a batch (the distillation loss where the job distils), for gradient-based importance.
    `keep_layers(model)`: the layers whose outputs must keep their width (a classifier). `transformer_parts(model)`:
    a transformer's blocks, heads and FFN layers (`structured.TransformerParts`), or None where the model has none.
    """

    family: str
    train_batch: Callable[[int], Any]
    forward: Callable[[Any, Any], Any]
    loss: Callable[[Any, Any], Any]
    keep_layers: Callable[[Any], list] = lambda _model: []
    transformer_parts: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class PruningMethod:
    """One pruning method.

    `run(model, config, after_step, context)` prunes `model` in place to the job's target (`config` is the
    JobConfig: a method reads its own options from it; `context` a PruningContext, or None outside a job), calls
    `after_step(PruningStep)` after each step (the pipeline fine-tunes, unless `fine_tunes` is False, and
    validates there) and leaves the model with plain weights; it returns what the report says of the method
    (scope, schedule, ...), beside the steps the pipeline records.
    """

    name: str
    description: str
    run: Callable[..., dict[str, Any]]
    options: tuple[Option, ...] = ()
    fine_tunes: bool = True  # False: a one-shot method; the pipeline only validates after its step

    def describe(self) -> dict[str, Any]:
        """What GET /models lists of the method."""
        return {
            "name": self.name,
            "description": self.description,
            "options": [o.name for o in self.options],
            "fine_tunes": self.fine_tunes,
        }


_REGISTRY: Registry[PruningMethod] = Registry("pruning method", __name__, METHOD_MODULES, "METHOD")
register_method = _REGISTRY.register
list_methods = _REGISTRY.all
get_method = _REGISTRY.get

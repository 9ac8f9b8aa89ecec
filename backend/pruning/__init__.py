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
)
DEFAULT_METHOD = "l1_unstructured"


@dataclass(frozen=True)
class PruningStep:
    """What a method reports after each step: the step (from 1), its target and the sparsity reached."""

    step: int
    target_sparsity: float
    achieved_sparsity: float


@dataclass(frozen=True)
class PruningMethod:
    """One pruning method.

    `run(model, config, after_step)` prunes `model` in place to the job's target (`config` is the JobConfig:
    a method reads its own options from it), calls `after_step(PruningStep)` after each step (the pipeline
    fine-tunes and validates there) and leaves the model with plain weights; it returns what the report says of
    the method (scope, schedule, ...), beside the steps the pipeline records.
    """

    name: str
    description: str
    run: Callable[[Any, Any, Callable[[PruningStep], None]], dict[str, Any]]
    options: tuple[Option, ...] = ()

    def describe(self) -> dict[str, Any]:
        """What GET /models lists of the method."""
        return {"name": self.name, "description": self.description, "options": [o.name for o in self.options]}


_REGISTRY: Registry[PruningMethod] = Registry("pruning method", __name__, METHOD_MODULES, "METHOD")
register_method = _REGISTRY.register
list_methods = _REGISTRY.all
get_method = _REGISTRY.get

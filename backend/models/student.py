"""The structurally compressed student of a registered model, by the model's own recipe."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from backend.models.registry import ModelSpec, get_model_spec
from backend.nnstats import count_parameters


def make_student(
    model: Any, teacher: nn.Module, ratio: float, example_inputs: torch.Tensor | None = None
) -> tuple[nn.Module, dict]:
    """The structurally compressed student of a registered model (its spec or any name of it), by the model's own
    recipe (`ModelSpec.make_student`), and a summary of what was removed."""
    spec = model if isinstance(model, ModelSpec) else get_model_spec(model)
    student, summary = spec.make_student(teacher, ratio, example_inputs)
    summary["teacher_parameters"] = count_parameters(teacher)["total"]
    summary["student_parameters"] = count_parameters(student)["total"]
    return student, summary

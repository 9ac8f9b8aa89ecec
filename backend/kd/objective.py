"""The job's distillation objective: one registered loss, or several combined with weights, with the trainable
projections they add (the bridge), which train beside the student and are never part of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from backend.kd import describe_combination, get_loss, loss_needs, loss_weights
from backend.kd.outputs import Outputs


class Objective:
    """`kd_loss` as the loop optimises it: sum of weight x each loss's "loss", every term logged on its own."""

    def __init__(self, kd_loss: str | Mapping[str, float]) -> None:
        self.kd_loss = kd_loss
        self.weights = loss_weights(kd_loss)
        self.losses = [get_loss(name) for name in self.weights]
        self.needs = loss_needs(kd_loss)
        self.uses_teacher = any(loss.uses_teacher for loss in self.losses)
        self.bridge = nn.ModuleDict()  # loss name -> its projections (built from the first batch)
        self.bridge_info: dict[str, dict] = {}
        self.built = not any(loss.make_bridge for loss in self.losses)

    @property
    def single(self) -> bool:
        """One loss at weight 1: its terms as it returns them (the seed's history rows unchanged)."""
        return len(self.losses) == 1 and self.weights[self.losses[0].name] == 1.0

    def build(self, student: Outputs, teacher: Outputs | None, settings: Any) -> None:
        """Each loss's projections, sized from one batch's outputs; they follow the student's device."""
        if self.built or teacher is None:
            return
        device = student.logits.device
        for loss in self.losses:
            if loss.make_bridge is None:
                continue
            module, info = loss.make_bridge(student, teacher, settings)
            self.bridge_info[loss.name] = info
            if module is not None:
                self.bridge[loss.name] = module.to(device)
        self.built = True

    def parameters(self) -> list[nn.Parameter]:
        """The projections' parameters (they go into the optimiser beside the student's)."""
        return list(self.bridge.parameters())

    def compute(self, student: Outputs, teacher: Outputs | None, settings: Any) -> dict[str, torch.Tensor]:
        """The loss terms of one batch: "loss" (optimised) and each term by name."""
        if self.single:
            loss = self.losses[0]
            return loss.compute(
                student, teacher, settings, self.bridge[loss.name] if loss.name in self.bridge else None
            )
        total: torch.Tensor | None = None
        out: dict[str, torch.Tensor] = {}
        for loss in self.losses:
            bridge = self.bridge[loss.name] if loss.name in self.bridge else None
            terms = loss.compute(student, teacher, settings, bridge)
            weighted = self.weights[loss.name] * terms["loss"]
            total = weighted if total is None else total + weighted
            out.update({k: v for k, v in terms.items() if k != "loss"})
        out["loss"] = total
        return out

    def describe(self) -> dict[str, Any]:
        """Name, weights, formula, and per loss its layer mapping and projection sizes."""
        info = describe_combination(self.kd_loss)
        if self.bridge_info:
            info["alignment"] = self.bridge_info
            info["projection_parameters"] = sum(p.numel() for p in self.bridge.parameters())
            info["projections_exported"] = False
        return info

"""The distillation loss: alpha * T^2 * KL(teacher || student at temperature T) + (1 - alpha) * CE."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    targets: torch.Tensor,
    *,
    temperature: float = 3.0,
    alpha: float = 0.7,
) -> dict[str, torch.Tensor]:
    """Loss terms over rows of logits; rows whose target is -100 (padding) are left out of both terms.

    Without teacher logits this is plain cross-entropy (teacher training). The T^2 factor keeps the soft
    term's gradients on the scale of the hard term's as T changes (Hinton et al., 2015).
    """
    keep = targets != IGNORE_INDEX
    student_logits, targets = student_logits[keep], targets[keep]
    ce = F.cross_entropy(student_logits, targets)
    if teacher_logits is None:
        return {"loss": ce, "ce_loss": ce}
    teacher_logits = teacher_logits[keep]
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    # KL(p_teacher || p_student), averaged over rows.
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    loss = alpha * temperature**2 * kl + (1.0 - alpha) * ce
    return {"loss": loss, "kd_loss": kl, "ce_loss": ce}

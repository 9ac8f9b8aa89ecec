"""A control: no distillation. Cross-entropy on the labels alone (alpha forced to 0), with the same student,
epochs, schedule and seed, so the gap to `logits` is what the teacher's soft targets bought."""

from __future__ import annotations

from backend.kd import KDLoss


def compute(student, teacher, settings, bridge=None) -> dict:
    """Plain cross-entropy; the teacher is ignored (no KD term in the loss history)."""
    from backend.kd.loss import distillation_loss  # torch: only where a job runs

    return distillation_loss(student.logits, None, student.targets)


LOSS = KDLoss(
    name="ce",
    description="Control: the student trained on the labels alone (cross-entropy, alpha forced to 0), same "
    "epochs, schedule and seed as the distilled student.",
    formula="CE(student, y)  (alpha = 0: no distillation term)",
    compute=compute,
    uses_teacher=False,
)

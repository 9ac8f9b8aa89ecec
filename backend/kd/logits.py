"""The seed's distillation loss on the logits: alpha * T^2 * KL(teacher || student at temperature T) + (1-alpha) CE."""

from __future__ import annotations

from backend.kd import KDLoss
from backend.options import Option

TEMPERATURE = Option(
    "temperature",
    "number",
    default=3.0,
    exclusive_minimum=0,
    maximum=100,
    help="softmax temperature T of the distillation term",
    label="Temperature T",
    group="distillation",
    study_axis=True,
    owner="kd_loss:logits",
)
ALPHA = Option(
    "alpha",
    "number",
    default=0.7,
    minimum=0,
    maximum=1,
    help="weight of the distillation term; 1 - alpha weighs cross-entropy on the labels",
    label="alpha (KD weight)",
    group="distillation",
    study_axis=True,
    owner="kd_loss:logits",
)


def compute(student, teacher, settings, bridge=None) -> dict:
    """The seed's loss; plain cross-entropy when there is no teacher (teacher training)."""
    from backend.kd.loss import distillation_loss  # torch: only where a job runs

    return distillation_loss(
        student.logits,
        None if teacher is None else teacher.logits,
        student.targets,
        temperature=settings.temperature,
        alpha=settings.alpha,
    )


LOSS = KDLoss(
    name="logits",
    description="Hinton et al. (2015) logit distillation, the seed's loss: KL between the teacher's and the "
    "student's softened outputs, plus cross-entropy on the labels.",
    formula="alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE(student, y)",
    compute=compute,
    options=(TEMPERATURE, ALPHA),
)

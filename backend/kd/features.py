"""FitNets-style hints for CNNs: the outputs of matched stages (read with forward hooks) pulled together, through
a learnt 1x1 convolution where the student has fewer channels."""

from __future__ import annotations

from backend.kd import KDLoss


def compute(student, teacher, settings, bridge=None) -> dict:
    """Mean over matched stages of the mean squared error between projected student and teacher features."""
    from backend.kd import intermediate  # torch: only where a job runs

    value = intermediate.feature_loss(student, teacher, bridge)
    return {"loss": value, "features_loss": value}


def make_bridge(student, teacher, settings):
    """A 1x1 convolution per stage whose channels differ, and the stage mapping."""
    from backend.kd import intermediate

    return intermediate.feature_bridge(student, teacher, settings)


LOSS = KDLoss(
    name="features",
    description="CNNs: FitNets hints, the mean squared error between the outputs of matched stages (ResNet-18's "
    "four stages, MobileNetV2's last block at each resolution; forward hooks, no model surgery), through a learnt "
    "1x1 convolution where the student has fewer channels (dropped after training). Combine it with logits.",
    formula="mean over stages k of mean (Conv1x1(f_student[k]) - f_teacher[k])^2",
    compute=compute,
    needs=("features",),
    families=("vision",),
    term="features_loss",
    make_bridge=make_bridge,
)

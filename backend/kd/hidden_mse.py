"""Hidden-state distillation by squared error (TinyBERT's hidden loss): each student block's output pulled
towards the output of the teacher block it was initialised from, through a learnt linear projection where the
widths differ."""

from __future__ import annotations

from backend.kd import KDLoss


def compute(student, teacher, settings, bridge=None) -> dict:
    """Mean over mapped blocks of the mean over real tokens of the mean squared error over the width."""
    from backend.kd import intermediate  # torch: only where a job runs

    value = intermediate.hidden_loss(student, teacher, settings, bridge, intermediate.squared_error)
    return {"loss": value, "hidden_mse_loss": value}


def make_bridge(student, teacher, settings):
    """The projections where student and teacher widths differ, and the layer mapping."""
    from backend.kd import intermediate

    return intermediate.hidden_bridge(student, teacher, settings)


LOSS = KDLoss(
    name="hidden_mse",
    description="Transformers: TinyBERT's hidden-state loss, the mean squared error between each student "
    "block's hidden states and those of the teacher block it was initialised from, through a learnt linear "
    "projection where the widths differ (dropped after training). Combine it with logits for a classifier.",
    formula="mean over mapped blocks j, real tokens i of mean_d (W h_student[j][i] - h_teacher[map(j)][i])_d^2",
    compute=compute,
    needs=("hidden_states",),
    families=("text",),
    term="hidden_mse_loss",
    make_bridge=make_bridge,
)

"""Hidden-state distillation by cosine: each student block's output turned towards the output of the teacher
block it was initialised from (the structural recipe's layer mapping), through a learnt linear projection where
the widths differ."""

from __future__ import annotations

from backend.kd import KDLoss


def compute(student, teacher, settings, bridge=None) -> dict:
    """Mean over mapped blocks of the mean over real tokens of 1 - cos(W s_j, t_map(j))."""
    from backend.kd import intermediate  # torch: only where a job runs

    value = intermediate.hidden_loss(student, teacher, settings, bridge, intermediate.cosine_distance)
    return {"loss": value, "hidden_cosine_loss": value}


def make_bridge(student, teacher, settings):
    """The projections where student and teacher widths differ, and the layer mapping."""
    from backend.kd import intermediate

    return intermediate.hidden_bridge(student, teacher, settings)


LOSS = KDLoss(
    name="hidden_cosine",
    description="Transformers: each student block's hidden states aligned by cosine with those of the teacher "
    "block it was initialised from (transformers' own output_hidden_states), through a learnt linear projection "
    "where the widths differ (dropped after training). Combine it with logits for a classifier.",
    formula="mean over mapped blocks j, real tokens i of (1 - cos(W h_student[j][i], h_teacher[map(j)][i]))",
    compute=compute,
    needs=("hidden_states",),
    families=("text",),
    term="hidden_cosine_loss",
    make_bridge=make_bridge,
)

"""Attention distillation (TinyBERT / MiniLM style): KL between the teacher's and the student's attention
distributions of mapped blocks, per head, from transformers' own output_attentions."""

from __future__ import annotations

from backend.kd import KDLoss


def compute(student, teacher, settings, bridge=None) -> dict:
    """Mean over mapped blocks (every stack) of KL(teacher || student) per head and real query position."""
    import torch

    from backend.kd import intermediate  # torch: only where a job runs

    terms = []
    for stack, s, t in intermediate.attention_pairs(student, teacher, settings):
        kl, _ = intermediate.attention_kl(
            student.attentions[stack][s], teacher.attentions[stack][t], student.masks.get(stack)
        )
        terms.append(kl)
    if not terms:
        raise intermediate.MappingError("the models returned no attentions to match")
    value = torch.stack(terms).mean()
    return {"loss": value, "attention_loss": value}


def make_bridge(student, teacher, settings):
    """No projections (distributions over the same keys need none); the layer mapping and how heads are matched."""
    from backend.kd import intermediate

    pairs = intermediate.attention_pairs(student, teacher, settings)
    mapping: dict = {}
    heads: dict = {}
    for stack, s, t in pairs:
        mapping.setdefault(stack, []).append({"student_block": s, "teacher_block": t})
        h_s, h_t = student.attentions[stack][s].shape[1], teacher.attentions[stack][t].shape[1]
        heads[stack] = {"student_heads": h_s, "teacher_heads": h_t,
                        "matched": "per head" if h_s == h_t else "head-averaged: per-head KL is not defined "
                        "for different head counts (MiniLM's value-relation transfer is not implemented)"}  # fmt: skip
    none = "none: attention distributions over the same keys need no projection"
    return None, {"layer_mapping": mapping, "projections": none, "heads": heads}


LOSS = KDLoss(
    name="attention",
    description="Transformers: KL between the teacher's and the student's attention distributions of each "
    "mapped block, per head (TinyBERT / MiniLM), from transformers' own output_attentions (eager attention "
    "while training). Combine it with logits for a classifier.",
    formula="mean over mapped blocks j, heads a, real queries i of KL(A_teacher[map(j)][a, i] || A_student[j][a, i])",
    compute=compute,
    needs=("attentions",),
    families=("text",),
    term="attention_loss",
    make_bridge=make_bridge,
)

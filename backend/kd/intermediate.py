"""The pieces the losses beyond the logits share: which student block meets which teacher block, the learnt
projections where widths differ, and means over real (not padding) positions.

The layer mapping is the structural recipe's own: student block j was initialised from teacher block
`settings.block_map[stack][j]` (e.g. 12 -> [0, 2, 4, 7, 9, 11]); transformers' hidden states put the embeddings
first, so block j's output is hidden state j + 1. CNN students keep their stage structure, so a stage is matched
with the stage of the same name.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from backend.kd.outputs import Outputs


class MappingError(ValueError):
    """The student's blocks cannot be matched with the teacher's."""


def block_map(settings: Any, stack: str, n_student: int, n_teacher: int) -> list[int]:
    """The teacher block each of the `n_student` student blocks of `stack` was initialised from."""
    mapping = (getattr(settings, "block_map", None) or {}).get(stack)
    if mapping is None:
        if n_student != n_teacher:
            raise MappingError(
                f"no layer mapping for the {stack} ({n_student} student blocks, {n_teacher} teacher blocks): "
                "the structural recipe names none"
            )
        return list(range(n_student))
    if len(mapping) != n_student or max(mapping, default=-1) >= n_teacher:
        raise MappingError(
            f"the {stack} layer mapping {list(mapping)} does not fit {n_student} student and {n_teacher} teacher blocks"
        )
    return list(mapping)


def hidden_pairs(student: Outputs, teacher: Outputs, settings: Any) -> list[tuple[str, int, int]]:
    """(stack, student hidden-state index, teacher hidden-state index) of every mapped block output."""
    pairs = []
    for stack, s_states in student.hidden_states.items():
        t_states = teacher.hidden_states[stack]
        mapping = block_map(settings, stack, len(s_states) - 1, len(t_states) - 1)
        pairs += [(stack, j + 1, t + 1) for j, t in enumerate(mapping)]
    return pairs


def attention_pairs(student: Outputs, teacher: Outputs, settings: Any) -> list[tuple[str, int, int]]:
    """(stack, student block, teacher block) of every mapped block's attention."""
    pairs = []
    for stack, s_att in student.attentions.items():
        mapping = block_map(settings, stack, len(s_att), len(teacher.attentions[stack]))
        pairs += [(stack, j, t) for j, t in enumerate(mapping)]
    return pairs


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-position `values` [batch, length] over the positions `mask` marks (all when None)."""
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def hidden_bridge(student: Outputs, teacher: Outputs, settings: Any) -> tuple[nn.Module | None, dict]:
    """One learnt linear projection per stack whose student width differs from the teacher's (TinyBERT's W_h),
    and the description of the mapping and projections for the report."""
    projections = nn.ModuleDict()
    sizes: dict[str, Any] = {}
    for stack, s_states in student.hidden_states.items():
        d_s, d_t = s_states[-1].shape[-1], teacher.hidden_states[stack][-1].shape[-1]
        if d_s == d_t:
            sizes[stack] = {"student_width": d_s, "teacher_width": d_t, "projection": "none: the widths are equal"}
            continue
        projections[stack] = nn.Linear(d_s, d_t)
        sizes[stack] = {"student_width": d_s, "teacher_width": d_t, "projection": f"Linear({d_s} -> {d_t})",
                        "parameters": sum(p.numel() for p in projections[stack].parameters())}  # fmt: skip
    mapping = _mapping(hidden_pairs(student, teacher, settings), offset=1)
    return (projections if len(projections) else None), {"layer_mapping": mapping, "projections": sizes}


def _mapping(pairs: list[tuple[str, int, int]], offset: int) -> dict[str, list[dict[str, int]]]:
    out: dict[str, list[dict[str, int]]] = {}
    for stack, s, t in pairs:
        out.setdefault(stack, []).append({"student_block": s - offset, "teacher_block": t - offset})
    return out


def projected(bridge: nn.Module | None, stack: str, states: torch.Tensor) -> torch.Tensor:
    """The student's states in the teacher's width (unchanged where the widths are equal)."""
    if bridge is not None and stack in bridge:
        return bridge[stack](states)
    return states


def hidden_loss(student: Outputs, teacher: Outputs, settings: Any, bridge: nn.Module | None, per_token) -> torch.Tensor:
    """`per_token(student_states, teacher_states) -> [batch, length]` averaged over real positions, then over
    the mapped blocks of every stack."""
    terms = []
    for stack, s, t in hidden_pairs(student, teacher, settings):
        s_h = projected(bridge, stack, student.hidden_states[stack][s].float())
        t_h = teacher.hidden_states[stack][t].float()
        terms.append(masked_mean(per_token(s_h, t_h), student.masks.get(stack)))
    if not terms:
        raise MappingError("the models returned no hidden states to match")
    return torch.stack(terms).mean()


def cosine_distance(s_h: torch.Tensor, t_h: torch.Tensor) -> torch.Tensor:
    """1 - cos(student, teacher) per position."""
    return 1.0 - F.cosine_similarity(s_h, t_h, dim=-1)


def squared_error(s_h: torch.Tensor, t_h: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the width, per position."""
    return (s_h - t_h).pow(2).mean(dim=-1)


def attention_kl(s_att: torch.Tensor, t_att: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, str]:
    """KL(teacher || student) between attention distributions of one block, per head and query, averaged over
    heads and real query positions; (the value, how heads were matched).

    Rows are renormalised first (attention dropout in training leaves them summing to 1/(1-p)). Where the student
    has another number of heads than the teacher, per-head KL is not defined: the head-averaged distributions
    (each still a distribution over the keys) are compared instead, and the report says so.
    """
    s_att, t_att = s_att.float(), t_att.float()
    how = "per head"
    if s_att.shape[1] != t_att.shape[1]:
        s_att, t_att = s_att.mean(dim=1, keepdim=True), t_att.mean(dim=1, keepdim=True)
        how = "head-averaged (student and teacher have different head counts)"
    s_att = s_att / s_att.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    t_att = t_att / t_att.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    kl = F.kl_div(s_att.clamp_min(1e-12).log(), t_att, reduction="none").sum(dim=-1)  # [batch, heads, query]
    return masked_mean(kl.mean(dim=1), mask), how


def feature_bridge(student: Outputs, teacher: Outputs, settings: Any) -> tuple[nn.Module | None, dict]:
    """A 1x1 convolution per matched stage whose channel count differs (FitNets' regressor)."""
    projections = nn.ModuleDict()
    sizes: dict[str, Any] = {}
    for name, s_f in student.features.items():
        t_f = teacher.features[name]
        if s_f.shape[2:] != t_f.shape[2:]:
            raise MappingError(f"stage {name}: student maps {tuple(s_f.shape[2:])}, teacher {tuple(t_f.shape[2:])}")
        c_s, c_t = s_f.shape[1], t_f.shape[1]
        key = _key(name)
        if c_s == c_t:
            sizes[name] = {"student_channels": c_s, "teacher_channels": c_t, "projection": "none: equal channels"}
            continue
        projections[key] = nn.Conv2d(c_s, c_t, kernel_size=1, bias=False)
        sizes[name] = {"student_channels": c_s, "teacher_channels": c_t,
                       "projection": f"Conv2d({c_s} -> {c_t}, 1x1)", "parameters": c_s * c_t}  # fmt: skip
    if not sizes:
        raise MappingError("the models returned no stage features to match")
    mapping = {"stages": [{"student": name, "teacher": name} for name in student.features]}
    return (projections if len(projections) else None), {"layer_mapping": mapping, "projections": sizes}


def _key(name: str) -> str:
    """A module name as a ModuleDict key (no dots)."""
    return name.replace(".", "_")


def feature_loss(student: Outputs, teacher: Outputs, bridge: nn.Module | None) -> torch.Tensor:
    """Mean squared error between the (projected) student's and the teacher's stage outputs, averaged over
    elements, then over stages."""
    terms = []
    for name, s_f in student.features.items():
        s_f = s_f.float()
        if bridge is not None and _key(name) in bridge:
            s_f = bridge[_key(name)](s_f)
        terms.append(F.mse_loss(s_f, teacher.features[name].float()))
    return torch.stack(terms).mean()

"""The student: a physically smaller copy of the teacher.

CNNs lose channels by L1-magnitude structural pruning (torch-pruning), the classifier's output kept.
Transformers keep half their layers (evenly spread, first and last kept), initialised from the teacher's
(as DistilBERT itself was made), and drop the FFN units of smallest L1 magnitude.
"""
from __future__ import annotations

import copy

import torch
import torch_pruning as tp
from torch import nn

from backend.metrics.compression import count_parameters


def prune_cnn_channels(teacher: nn.Module, ratio: float, example_inputs: torch.Tensor,
                       keep_layers: list[nn.Module]) -> tuple[nn.Module, dict]:
    """Remove `ratio` of the channels of every prunable layer, by L1 magnitude, with torch-pruning."""
    student = copy.deepcopy(teacher).eval().requires_grad_(True)  # torch-pruning traces the autograd graph
    ignored = _twins(teacher, student, {id(m) for m in keep_layers})
    pruner = tp.pruner.BasePruner(student, example_inputs, importance=tp.importance.MagnitudeImportance(p=1),
                                  pruning_ratio=ratio, ignored_layers=ignored, round_to=4)
    pruner.step()
    convs = lambda m: [x.out_channels for x in m.modules() if isinstance(x, nn.Conv2d)]  # noqa: E731
    before, after = sum(convs(teacher)), sum(convs(student))
    summary = {"method": "torch-pruning L1-magnitude channel pruning", "ratio": ratio,
               "removed": f"{before - after:,} of {before:,} convolution output channels "
                          f"({(before - after) / before:.0%}); classifier outputs kept",
               "details": {"conv_channels_teacher": before, "conv_channels_student": after}}
    return student, summary


def _twins(teacher: nn.Module, student: nn.Module, ids: set[int]) -> list[nn.Module]:
    """The student's copies of the teacher modules whose ids are given (deepcopy keeps module order)."""
    pairs = zip(teacher.modules(), student.modules())
    return [s for t, s in pairs if id(t) in ids]


def keep_half_the_layers(n: int) -> list[int]:
    """Half the layers (rounded up), evenly spread, the first and the last always kept.

    As DistilBERT itself was made: 12 -> [0, 2, 4, 7, 9, 11]. Keeping the last layer matters: the head was
    trained on its output (measured on the quick DistilBERT: 4 -> [0, 2] distilled to 84%, [0, 3] to 98%+).
    """
    keep = (n + 1) // 2
    if keep <= 1:
        return [n - 1] if n else []
    return sorted({round(i * (n - 1) / (keep - 1)) for i in range(keep)})


def _ffn_keep(w_in: torch.Tensor, w_out: torch.Tensor, ratio: float) -> torch.Tensor:
    """Indices of the FFN units with the largest L1 norm (input rows plus output columns), in order."""
    score = w_in.abs().sum(dim=1) + w_out.abs().sum(dim=0)
    k = max(1, int(round(score.numel() * (1.0 - ratio))))
    return torch.topk(score, k).indices.sort().values


def _slice_linear(layer: nn.Linear, idx: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear keeping the output (dim 0) or input (dim 1) units in `idx`."""
    weight = layer.weight.detach().index_select(dim, idx).clone()
    out_f, in_f = weight.shape
    new = nn.Linear(in_f, out_f, bias=layer.bias is not None)
    new.weight.data.copy_(weight)
    if layer.bias is not None:
        new.bias.data.copy_(layer.bias.detach() if dim == 1 else layer.bias.detach()[idx])
    return new


def shrink_distilbert(teacher: nn.Module, ffn_ratio: float) -> tuple[nn.Module, dict]:
    """Half the transformer blocks of DistilBERT, each with `ffn_ratio` of its FFN units removed."""
    student = copy.deepcopy(teacher).eval()
    blocks = student.distilbert.transformer.layer
    keep = keep_half_the_layers(len(blocks))
    student.distilbert.transformer.layer = nn.ModuleList([blocks[i] for i in keep])
    hidden = None
    for block in student.distilbert.transformer.layer:
        idx = _ffn_keep(block.ffn.lin1.weight, block.ffn.lin2.weight, ffn_ratio)
        block.ffn.lin1 = _slice_linear(block.ffn.lin1, idx, 0)
        block.ffn.lin2 = _slice_linear(block.ffn.lin2, idx, 1)
        hidden = len(idx)
    student.config.n_layers = len(keep)
    student.distilbert.transformer.n_layers = len(keep)
    student.config.hidden_dim = hidden
    return student, _text_summary("transformer blocks", len(blocks), keep, teacher.config.hidden_dim, hidden, ffn_ratio)


def _keep_relative_bias(stack: nn.Module, first_kept: nn.Module) -> None:
    """Give the new first block the stack's relative position bias (T5 keeps it in block 0 only).

    Without it a stack whose block 0 was dropped has no position information, and from_pretrained would
    re-initialise the missing bias at random on reload.
    """
    first = stack.block[0].layer[0].SelfAttention
    if first.has_relative_attention_bias:
        return
    source = first_kept.layer[0].SelfAttention
    first.has_relative_attention_bias = True
    first.relative_attention_bias = copy.deepcopy(source.relative_attention_bias)


def student_t5_depths(n_encoder: int, n_decoder: int, decoder_layers: int | None) -> tuple[list[int], list[int]]:
    """Kept encoder and decoder blocks: half the encoder; the decoder to `decoder_layers` (None: half).

    "Deep encoder, shallow decoder": generation runs the decoder once per answer token, the encoder once, so
    decoder depth is what batch-1 latency pays for. The decoder keeps its last blocks (the LM head was trained on
    the last one's output) and block 0's position bias is moved to the new first block.
    """
    encoder = keep_half_the_layers(n_encoder)
    if decoder_layers is None:
        return encoder, keep_half_the_layers(n_decoder)
    k = max(1, min(n_decoder, int(decoder_layers)))
    return encoder, list(range(n_decoder - k, n_decoder))


def shrink_t5(teacher: nn.Module, ffn_ratio: float, decoder_layers: int | None = None) -> tuple[nn.Module, dict]:
    """Half the encoder blocks of T5, `decoder_layers` decoder blocks (None: half), `ffn_ratio` of FFN units removed.

    A decoder shallower than the encoder generates fine with transformers' generate: its cache is sized from
    config.num_layers (the encoder depth, through T5Config's num_hidden_layers alias), so only the reverse, a
    decoder deeper than the encoder, would overrun it (IndexError in cache.update) - a shape this never makes.
    """
    student = copy.deepcopy(teacher).eval()
    kept_all: list[int] = []
    d_ff = teacher.config.d_ff
    keeps = student_t5_depths(len(student.encoder.block), len(student.decoder.block), decoder_layers)
    for stack, keep in zip((student.encoder, student.decoder), keeps):
        kept_all += keep
        first_block = stack.block[0]
        stack.block = nn.ModuleList([stack.block[i] for i in keep])
        _keep_relative_bias(stack, first_block)
        for position, block in enumerate(stack.block):
            for module in block.modules():  # the KV cache is indexed by layer position
                if hasattr(module, "layer_idx"):
                    module.layer_idx = position
            ff = block.layer[-1].DenseReluDense
            idx = _ffn_keep(ff.wi.weight, ff.wo.weight, ffn_ratio)
            ff.wi, ff.wo = _slice_linear(ff.wi, idx, 0), _slice_linear(ff.wo, idx, 1)
            d_ff = len(idx)
        stack.config.num_layers, stack.config.d_ff = len(keep), d_ff
    student.config.num_layers = len(student.encoder.block)
    student.config.num_decoder_layers = len(student.decoder.block)
    student.config.d_ff = d_ff
    n_teacher = teacher.config.num_layers + teacher.config.num_decoder_layers
    summary = _text_summary("encoder + decoder blocks", n_teacher, kept_all, teacher.config.d_ff, d_ff, ffn_ratio)
    summary["details"].update(encoder_blocks_kept=keeps[0], decoder_blocks_kept=keeps[1])
    return student, summary


def _text_summary(what: str, n_before: int, kept: list[int], ffn_before: int, ffn_after: int, ratio: float) -> dict:
    return {"method": "layer selection (half the blocks, evenly spread, first and last kept, initialised from "
                      "the teacher) + L1-magnitude FFN-unit pruning", "ratio": ratio,
            "removed": f"{n_before - len(kept)} of {n_before} {what}; FFN width {ffn_before} -> {ffn_after} per block",
            "details": {"blocks_teacher": n_before, "blocks_student": len(kept), "kept_block_indices": kept,
                        "ffn_units_teacher": ffn_before, "ffn_units_student": ffn_after}}


def make_student(model_id: str, teacher: nn.Module, ratio: float, example_inputs: torch.Tensor | None = None,
                 keep_layers: list[nn.Module] | None = None) -> tuple[nn.Module, dict]:
    """The structurally compressed student of a registered model, and a summary of what was removed."""
    if model_id == "distilbert":
        student, summary = shrink_distilbert(teacher, ratio)
    elif model_id == "t5-small":
        from backend.models.registry import get_model_spec

        student, summary = shrink_t5(teacher, ratio, get_model_spec(model_id).extra.get("student_decoder_layers"))
    else:
        student, summary = prune_cnn_channels(teacher, ratio, example_inputs, keep_layers or [])
    summary["teacher_parameters"] = count_parameters(teacher)["total"]
    summary["student_parameters"] = count_parameters(student)["total"]
    return student, summary


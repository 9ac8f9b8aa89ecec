"""T5-small (transformers): a text-to-text encoder-decoder that answers with the label word.

Its student keeps half the encoder blocks and one decoder block ("deep encoder, shallow decoder": generation pays
per decoder block per answer token, so decoder depth is what batch-1 latency buys), with FFN units pruned.
"""

from __future__ import annotations

import copy
from typing import Any

from backend.models.spec import ModelSpec
from backend.models.text import from_pretrained, pretrained_source, sizes_of
from backend.pruning.structured import TransformerParts

SOURCE_ENV, SOURCE = "KD_PRETRAINED_T5", "t5-small"
SIZES = {
    # 4+4 blocks: with 2+2 (2+4, 4+2) T5 from scratch reached only 80-85% on the built-in text set (measured).
    "quick": dict(num_layers=4, num_decoder_layers=4, d_model=96, d_kv=24, d_ff=384, num_heads=4, dropout_rate=0.0),
    "standard": dict(num_layers=6, num_decoder_layers=6, d_model=512, d_kv=64, d_ff=2048, num_heads=8),
}
STUDENT_DECODER_LAYERS = 1  # measured: the batch-1 goal in ONNX Runtime (BENCHMARKS.md, deployment runtime)


def build(
    *,
    preset: str,
    class_names: list[str],
    train_texts: list[str],
    pretrained: bool,
    seed: int = 0,
    source: str | None = None,
    **_: Any,
) -> tuple[Any, Any]:
    """T5ForConditionalGeneration: pretrained (t5-small) or new, with its tokenizer; labels are words."""
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    from backend.models.tokenizers import train_sentencepiece

    if pretrained:
        source = source or pretrained_source(SOURCE_ENV, SOURCE)
        return from_pretrained(T5ForConditionalGeneration, source), from_pretrained(AutoTokenizer, source)
    tokenizer = train_sentencepiece(train_texts, extra_words=list(class_names), seed=seed)
    sizes = dict(dropout_rate=0.1, feed_forward_proj="relu", tie_word_embeddings=True) | SIZES[preset]
    config = T5Config(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        **sizes,
    )
    return T5ForConditionalGeneration(config), tokenizer


def student_depths(n_encoder: int, n_decoder: int, decoder_layers: int | None) -> tuple[list[int], list[int]]:
    """Kept encoder and decoder blocks: half the encoder; the decoder to `decoder_layers` (None: half).

    The decoder keeps its last blocks (the LM head was trained on the last one's output) and block 0's position
    bias is moved to the new first block.
    """
    from backend.pruning.structural import keep_half_the_layers

    encoder = keep_half_the_layers(n_encoder)
    if decoder_layers is None:
        return encoder, keep_half_the_layers(n_decoder)
    k = max(1, min(n_decoder, int(decoder_layers)))
    return encoder, list(range(n_decoder - k, n_decoder))


def _keep_relative_bias(stack: Any, first_kept: Any) -> None:
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


def make_student(
    teacher: Any, ffn_ratio: float, example_inputs: Any = None, decoder_layers: int | None = STUDENT_DECODER_LAYERS
) -> tuple[Any, dict]:
    """Half the encoder blocks, `decoder_layers` decoder blocks (None: half), `ffn_ratio` of FFN units removed.

    A decoder shallower than the encoder generates fine with transformers' generate: its cache is sized from
    config.num_layers (the encoder depth, through T5Config's num_hidden_layers alias), so only the reverse, a
    decoder deeper than the encoder, would overrun it (IndexError in cache.update) - a shape this never makes.
    """
    from torch import nn

    from backend.pruning.structural import ffn_keep, slice_linear, text_summary

    student = copy.deepcopy(teacher).eval()
    kept_all: list[int] = []
    d_ff = teacher.config.d_ff
    keeps = student_depths(len(student.encoder.block), len(student.decoder.block), decoder_layers)
    for stack, keep in zip((student.encoder, student.decoder), keeps, strict=True):
        kept_all += keep
        first_block = stack.block[0]
        stack.block = nn.ModuleList([stack.block[i] for i in keep])
        _keep_relative_bias(stack, first_block)
        for position, block in enumerate(stack.block):
            for module in block.modules():  # the KV cache is indexed by layer position
                if hasattr(module, "layer_idx"):
                    module.layer_idx = position
            ff = block.layer[-1].DenseReluDense
            idx = ffn_keep(ff.wi.weight, ff.wo.weight, ffn_ratio)
            ff.wi, ff.wo = slice_linear(ff.wi, idx, 0), slice_linear(ff.wo, idx, 1)
            d_ff = len(idx)
        stack.config.num_layers, stack.config.d_ff = len(keep), d_ff
    student.config.num_layers = len(student.encoder.block)
    student.config.num_decoder_layers = len(student.decoder.block)
    student.config.d_ff = d_ff
    n_teacher = teacher.config.num_layers + teacher.config.num_decoder_layers
    summary = text_summary(
        "encoder + decoder blocks",
        n_teacher,
        kept_all,
        teacher.config.d_ff,
        d_ff,
        ffn_ratio,
        block_map={"encoder": list(keeps[0]), "decoder": list(keeps[1])},
    )
    summary["details"].update(encoder_blocks_kept=keeps[0], decoder_blocks_kept=keeps[1])
    return student, summary


def transformer_parts(model: Any) -> TransformerParts:
    """The FFN (wi, wo) of every encoder and decoder block. Heads are not named: a stack's relative position bias
    lives in its first block and is shared by all, so every block must keep the same heads."""
    blocks = [*model.encoder.block, *model.decoder.block]

    def set_ffn_width(n: int) -> None:
        for config in (model.config, model.encoder.config, model.decoder.config):
            config.d_ff = n

    return TransformerParts(
        attention=[None] * len(blocks),
        ffn=[((b.layer[-1].DenseReluDense, "wi"), (b.layer[-1].DenseReluDense, "wo")) for b in blocks],
        head_dim=model.config.d_kv,
        set_heads=lambda _index, _n: None,
        set_ffn_width=set_ffn_width,
    )


def looks_like(keys: set[str]) -> bool:
    return any(k.startswith(("encoder.block.", "decoder.block.")) for k in keys) or "shared.weight" in keys


SPEC = ModelSpec(
    id="t5-small",
    display_name="T5-small",
    family="text",
    aliases=("t5small", "t5"),
    source="transformers.T5ForConditionalGeneration",
    default_structural_ratio=0.5,
    presets={
        # T5 from scratch under AdamW: embeddings learn 30x faster (their init, std 1, is made for Adafactor).
        "quick": dict(
            epochs=6, kd_epochs=4, finetune_epochs=1, batch_size=64, learning_rate=2e-3, embedding_lr_scale=30.0
        ),
        "standard": dict(epochs=3, kd_epochs=3, finetune_epochs=1, batch_size=16, learning_rate=3e-4),
    },
    build=build,
    make_student=make_student,
    architecture=sizes_of(SIZES),
    task="encoder_decoder",
    int8_op_types=("MatMul", "Gemm", "Gather"),
    hf_model_type="t5",
    looks_like=looks_like,
    transformer_parts=transformer_parts,
)

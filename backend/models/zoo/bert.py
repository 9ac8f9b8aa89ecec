"""BERT (transformers): the encoder most text-compression work starts from (bert-base-uncased at the standard
preset, 110M parameters). The student keeps half its blocks, evenly spread and initialised from the teacher's (as
DistilBERT was made from BERT), with the FFN units of smallest L1 magnitude removed."""

from __future__ import annotations

from typing import Any

from backend.models.spec import ModelSpec
from backend.models.text import sequence_classifier_builder, shrink_encoder, sizes_of
from backend.pruning.structured import TransformerParts

SOURCE_ENV, SOURCE = "KD_PRETRAINED_BERT", "bert-base-uncased"
SIZES = {
    # the quick DistilBERT's sizes, and like it without dropout (from scratch, post-LN, small data)
    "quick": dict(
        num_hidden_layers=4,
        hidden_size=128,
        num_attention_heads=4,
        intermediate_size=512,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    ),
    "standard": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
}


build = sequence_classifier_builder("BertForSequenceClassification", "BertConfig", SIZES, SOURCE_ENV, SOURCE)


def make_student(teacher: Any, ratio: float, example_inputs: Any = None) -> tuple[Any, dict]:
    """Half the encoder blocks of BERT, each with `ratio` of its FFN units removed."""

    def set_blocks(model: Any, blocks: Any) -> None:
        model.bert.encoder.layer = blocks

    student, summary = shrink_encoder(
        teacher,
        ratio,
        blocks=lambda m: m.bert.encoder.layer,
        set_blocks=set_blocks,
        ffn=lambda b: ((b.intermediate, "dense"), (b.output, "dense")),
    )
    for position, block in enumerate(student.bert.encoder.layer):  # a KV cache, where used, is indexed by position
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = position
    student.config.num_hidden_layers = len(student.bert.encoder.layer)
    student.config.intermediate_size = summary["details"]["ffn_units_student"]
    return student, summary


def transformer_parts(model: Any) -> TransformerParts:
    """Each block's attention (query, key, value, output dense) and FFN (intermediate, output) layers."""
    blocks = list(model.bert.encoder.layer)

    def set_heads(index: int, n: int) -> None:
        attention = blocks[index].attention.self
        attention.num_attention_heads = n
        attention.all_head_size = n * attention.attention_head_size

    def set_ffn_width(n: int) -> None:
        model.config.intermediate_size = n

    return TransformerParts(
        attention=[
            (
                (b.attention.self, "query"),
                (b.attention.self, "key"),
                (b.attention.self, "value"),
                (b.attention.output, "dense"),
            )
            for b in blocks
        ],  # fmt: skip
        ffn=[((b.intermediate, "dense"), (b.output, "dense")) for b in blocks],
        head_dim=model.config.hidden_size // model.config.num_attention_heads,
        set_heads=set_heads,
        set_ffn_width=set_ffn_width,
    )


def looks_like(keys: set[str]) -> bool:
    return any(k.startswith("bert.") for k in keys) or (
        "embeddings.word_embeddings.weight" in keys and any(k.startswith("encoder.layer.") for k in keys)
    )


SPEC = ModelSpec(
    id="bert",
    display_name="BERT",
    family="text",
    aliases=("bert-base", "bert-base-uncased", "bertbase"),
    source="transformers.BertForSequenceClassification",
    default_structural_ratio=0.5,
    presets={
        # the quick DistilBERT's settings: a post-LN encoder of the same size, the same data
        "quick": dict(
            epochs=7, kd_epochs=4, finetune_epochs=1, batch_size=32, learning_rate=3e-4, kd_learning_rate=1e-3
        ),
        # fine-tuning bert-base: 2-5e-5 for 2-4 epochs (Devlin et al. 2019)
        "standard": dict(epochs=3, kd_epochs=3, finetune_epochs=1, batch_size=16, learning_rate=5e-5),
    },
    build=build,
    make_student=make_student,
    architecture=sizes_of(SIZES),
    transformer_parts=transformer_parts,
    task="sequence_classifier",
    int8_op_types=("MatMul", "Gemm", "Gather"),
    hf_model_type="bert",
    looks_like=looks_like,
)

"""What the Hugging Face text models share: token lengths per preset, loading pretrained weights offline-safe,
and the structural recipe of encoder stacks (half the blocks, the FFN units of smallest L1 magnitude dropped)."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

from backend.models.vision import PretrainedUnavailable

MAX_LENGTH = {"quick": 64, "standard": 128}


def pretrained_source(env: str, default: str) -> str:
    """The hub id or local save_pretrained folder pretrained weights are loaded from: `env` when set."""
    return os.environ.get(env) or default


def from_pretrained(cls: Any, source: str, **kwargs: Any) -> Any:
    """Load a model or tokenizer without running any downloaded code; PretrainedUnavailable when offline."""
    try:
        return cls.from_pretrained(source, trust_remote_code=False, **kwargs)
    except (OSError, ValueError) as exc:
        raise PretrainedUnavailable(
            f"pretrained weights {source!r} are neither cached nor downloadable "
            f"({type(exc).__name__}: {str(exc)[:200]})."
        ) from None


def label_maps(class_names: list[str]) -> dict[str, Any]:
    """num_labels, id2label and label2id of a sequence classifier's config."""
    return dict(
        num_labels=len(class_names),
        id2label=dict(enumerate(class_names)),
        label2id={c: i for i, c in enumerate(class_names)},
    )


def build_sequence_classifier(
    model_class: str,
    config_class: str,
    sizes: dict[str, Any],
    *,
    source: str,
    preset: str,
    class_names: list[str],
    train_texts: list[str],
    pretrained: bool,
) -> tuple[Any, Any]:
    """A transformers sequence classifier (classes named in `transformers`): pretrained from `source` with its
    tokenizer, or new at `sizes` with a WordPiece tokenizer learnt from the training texts."""
    import transformers
    from transformers import AutoTokenizer

    from backend.models.tokenizers import train_wordpiece

    if pretrained:
        tokenizer = from_pretrained(AutoTokenizer, source)
        model_cls = getattr(transformers, model_class)
        model = from_pretrained(model_cls, source, ignore_mismatched_sizes=True, **label_maps(class_names))
        return model, tokenizer
    tokenizer = train_wordpiece(train_texts)
    config = getattr(transformers, config_class)(
        vocab_size=len(tokenizer),
        max_position_embeddings=MAX_LENGTH[preset],
        pad_token_id=tokenizer.pad_token_id,
        **sizes,
        **label_maps(class_names),
    )
    return getattr(transformers, model_class)(config), tokenizer


def sequence_classifier_builder(
    model_class: str, config_class: str, sizes: dict[str, dict], source_env: str, default_source: str
) -> Callable[..., tuple[Any, Any]]:
    """A spec's `build` for a transformers sequence classifier: pretrained from `default_source` (or the hub id or
    folder in the environment variable `source_env`) with its tokenizer, or new at `sizes[preset]`."""

    def build(
        *,
        preset: str,
        class_names: list[str],
        train_texts: list[str],
        pretrained: bool,
        source: str | None = None,
        **_: Any,
    ) -> tuple[Any, Any]:
        return build_sequence_classifier(
            model_class,
            config_class,
            sizes[preset],
            source=source or pretrained_source(source_env, default_source),
            preset=preset,
            class_names=class_names,
            train_texts=train_texts,
            pretrained=pretrained,
        )

    build.__doc__ = f"{model_class}: pretrained ({default_source}) or new at the preset's sizes, with its tokenizer."
    return build


def sizes_of(sizes: dict[str, dict]) -> Callable[[str], dict]:
    """A spec's `architecture`: the from-scratch sizes at a preset."""
    return lambda preset: dict(sizes[preset])


def shrink_encoder(
    teacher: Any,
    ffn_ratio: float,
    *,
    blocks: Callable[[Any], Any],
    set_blocks: Callable[[Any, Any], None],
    ffn: Callable[[Any], tuple[tuple[Any, str], ...]],
    what: str = "transformer blocks",
) -> tuple[Any, dict]:
    """Half the blocks of an encoder stack (evenly spread, first and last kept, initialised from the teacher's),
    each with `ffn_ratio` of its FFN units removed by L1 magnitude.

    `blocks(model)` is the stack's ModuleList, `set_blocks(model, modules)` replaces it, and `ffn(block)` names the
    FFN's input and output Linear layers: ((module, attribute) of the input one, (module, attribute) of the output).
    Returns the student (its config not yet updated: the caller knows its field names) and the summary.
    """
    from torch import nn

    from backend.pruning.structural import ffn_keep, keep_half_the_layers, slice_linear, text_summary

    student = copy.deepcopy(teacher).eval()
    stack = blocks(student)
    keep = keep_half_the_layers(len(stack))
    set_blocks(student, nn.ModuleList([stack[i] for i in keep]))
    before = after = 0
    for block in blocks(student):
        (owner_in, name_in), (owner_out, name_out) = ffn(block)
        lin_in, lin_out = getattr(owner_in, name_in), getattr(owner_out, name_out)
        idx = ffn_keep(lin_in.weight, lin_out.weight, ffn_ratio)
        before, after = lin_in.out_features, len(idx)
        setattr(owner_in, name_in, slice_linear(lin_in, idx, 0))
        setattr(owner_out, name_out, slice_linear(lin_out, idx, 1))
    return student, text_summary(what, len(stack), keep, before, after, ffn_ratio)

"""DistilBERT and T5-small from transformers, with tokenizers pretrained or trained on the dataset."""
from __future__ import annotations

import os
from typing import Sequence

from torch import nn
from transformers import (AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification, PreTrainedTokenizerBase,
                          T5Config, T5ForConditionalGeneration)

from backend.models.tokenizers import train_sentencepiece, train_wordpiece
from backend.models.vision import PretrainedUnavailable

# Where pretrained weights come from: a hub id (cache or download) or a local save_pretrained folder.
PRETRAINED_SOURCE = {
    "distilbert": os.environ.get("KD_PRETRAINED_DISTILBERT", "distilbert-base-uncased"),
    "t5-small": os.environ.get("KD_PRETRAINED_T5", "t5-small"),
}
MAX_LENGTH = {"quick": 64, "standard": 128}

# quick: small enough to train in about a minute on 2 CPU cores; standard: the published sizes.
DISTILBERT_SIZES = {
    # no dropout: from scratch at this size it let the [CLS] output collapse (50% accuracy) on some seeds
    "quick": dict(n_layers=4, dim=128, n_heads=4, hidden_dim=512, dropout=0.0, attention_dropout=0.0),
    "standard": dict(n_layers=6, dim=768, n_heads=12, hidden_dim=3072),
}
T5_SIZES = {
    # 4+4 blocks: with 2+2 (2+4, 4+2) T5 from scratch reached only 80-85% on the built-in text set (measured).
    "quick": dict(num_layers=4, num_decoder_layers=4, d_model=96, d_kv=24, d_ff=384, num_heads=4, dropout_rate=0.0),
    "standard": dict(num_layers=6, num_decoder_layers=6, d_model=512, d_kv=64, d_ff=2048, num_heads=8),
}


def pretrained_source(model_id: str) -> str:
    """The hub id or local folder pretrained weights are loaded from (env KD_PRETRAINED_*)."""
    return os.environ.get(f"KD_PRETRAINED_{'T5' if model_id == 't5-small' else 'DISTILBERT'}",
                          PRETRAINED_SOURCE[model_id])


def _from_pretrained(cls, source: str, **kwargs):
    """Load a model or tokenizer without running any downloaded code; PretrainedUnavailable when offline."""
    try:
        return cls.from_pretrained(source, trust_remote_code=False, **kwargs)
    except (OSError, ValueError) as exc:
        raise PretrainedUnavailable(f"pretrained weights {source!r} are neither cached nor downloadable "
                                    f"({type(exc).__name__}: {str(exc)[:200]}).") from None


def build_distilbert(*, preset: str, class_names: Sequence[str], train_texts: Sequence[str], pretrained: bool,
                     seed: int = 0, source: str | None = None) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """DistilBertForSequenceClassification: pretrained (standard size) or new, with its tokenizer."""
    labels = dict(num_labels=len(class_names), id2label=dict(enumerate(class_names)),
                  label2id={c: i for i, c in enumerate(class_names)})
    if pretrained:
        source = source or pretrained_source("distilbert")
        tokenizer = _from_pretrained(AutoTokenizer, source)
        model = _from_pretrained(DistilBertForSequenceClassification, source, ignore_mismatched_sizes=True, **labels)
        return model, tokenizer
    tokenizer = train_wordpiece(train_texts)
    config = DistilBertConfig(vocab_size=len(tokenizer), max_position_embeddings=MAX_LENGTH[preset],
                              pad_token_id=tokenizer.pad_token_id, **DISTILBERT_SIZES[preset], **labels)
    return DistilBertForSequenceClassification(config), tokenizer


def build_t5(*, preset: str, class_names: Sequence[str], train_texts: Sequence[str], pretrained: bool,
             seed: int = 0, source: str | None = None) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """T5ForConditionalGeneration: pretrained (t5-small) or new, with its tokenizer; labels are words."""
    if pretrained:
        source = source or pretrained_source("t5-small")
        return _from_pretrained(T5ForConditionalGeneration, source), _from_pretrained(AutoTokenizer, source)
    tokenizer = train_sentencepiece(train_texts, extra_words=list(class_names), seed=seed)
    build = dict(dropout_rate=0.1, feed_forward_proj="relu", tie_word_embeddings=True) | T5_SIZES[preset]
    config = T5Config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id, **build)
    return T5ForConditionalGeneration(config), tokenizer

"""Tokenizers: the pretrained one where it can be had; offline, one trained on the dataset's training texts.

Both offline tokenizers are wrapped as transformers tokenizers, so a saved student loads with AutoTokenizer.
"""
from __future__ import annotations

import io
from typing import Sequence

from transformers import DistilBertTokenizer, T5Tokenizer


def train_wordpiece(texts: Sequence[str], vocab_size: int = 8000) -> DistilBertTokenizer:
    """A lower-casing WordPiece tokenizer (BERT's normaliser and pre-tokeniser) trained on `texts`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece.train_from_iterator(list(texts), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    return DistilBertTokenizer(vocab=wordpiece.get_vocab())


def train_sentencepiece(texts: Sequence[str], extra_words: Sequence[str], vocab_size: int = 1000,
                        seed: int = 0) -> T5Tokenizer:
    """A sentencepiece model trained on `texts` (plus the label words), with T5's special ids.

    sentencepiece's BPE trainer finds whole-word pieces on a small corpus, where its unigram trainer stops
    at a few hundred sub-word pieces. transformers' T5 tokenizer is a unigram model over (piece, score)
    pairs; giving every piece the same score makes it choose the segmentation with the fewest pieces.
    """
    import sentencepiece as spm

    corpus = list(texts) + [w for w in extra_words for _ in range(20)]
    spm.set_random_generator_seed(seed + 1)  # repeatable pieces for a repeatable job
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=proto, vocab_size=vocab_size, model_type="bpe",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, character_coverage=1.0,
        minloglevel=2, num_threads=1)
    processor = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    specials = {processor.pad_id(), processor.eos_id(), processor.unk_id()}
    vocab = [(processor.id_to_piece(i), 0.0 if i in specials else -1.0) for i in range(processor.get_piece_size())]
    return T5Tokenizer(vocab=vocab, extra_ids=0)

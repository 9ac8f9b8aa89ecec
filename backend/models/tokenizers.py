"""Tokenizers: the pretrained one where it can be had; offline, one trained on the dataset's training texts.

Both offline tokenizers are wrapped as transformers tokenizers, so a saved student loads with AutoTokenizer.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from transformers import DistilBertTokenizer, T5Tokenizer


def train_wordpiece(texts: Sequence[str], vocab_size: int = 8000) -> DistilBertTokenizer:
    """A lower-casing WordPiece vocabulary learnt from `texts` with BERT's normaliser and pre-tokeniser.

    The vocabulary is every character (as a word start and as a `##` continuation) plus the most frequent
    whole words, ties broken alphabetically. tokenizers' WordPieceTrainer breaks ties between equally
    frequent merges differently from run to run (measured: three runs, three vocabularies), which made
    the same job give different accuracies; this vocabulary is the same every time.
    """
    from collections import Counter

    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for w in words for c in w})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens = specials + chars + [f"##{c}" for c in chars]
    room = max(0, vocab_size - len(tokens))
    tokens += [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1][:room]
    return DistilBertTokenizer(vocab={t: i for i, t in enumerate(tokens)})


def train_sentencepiece(
    texts: Sequence[str], extra_words: Sequence[str], vocab_size: int = 1000, seed: int = 0
) -> T5Tokenizer:
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
        sentence_iterator=iter(corpus),
        model_writer=proto,
        vocab_size=vocab_size,
        model_type="bpe",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        hard_vocab_limit=False,
        character_coverage=1.0,
        minloglevel=2,
        num_threads=1,
    )
    processor = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    specials = {processor.pad_id(), processor.eos_id(), processor.unk_id()}
    vocab = [(processor.id_to_piece(i), 0.0 if i in specials else -1.0) for i in range(processor.get_piece_size())]
    return T5Tokenizer(vocab=vocab, extra_ids=0)

"""The T5 student: deep encoder, shallow decoder, that generates and survives save/reload unchanged."""

from __future__ import annotations

import torch
from transformers import T5Config, T5ForConditionalGeneration

from backend.models.zoo.t5_small import make_student as shrink_t5


def test_shallow_decoder_student_generates_and_reloads_identically(tmp_path, one_torch_thread):
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=40,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=4,
        num_decoder_layers=4,
        num_heads=2,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        feed_forward_proj="relu",
        dropout_rate=0.0,
    )
    teacher = T5ForConditionalGeneration(config).eval()
    student, summary = shrink_t5(teacher, 0.5, decoder_layers=1)
    assert summary["details"]["encoder_blocks_kept"] == [0, 3] and summary["details"]["decoder_blocks_kept"] == [3]
    assert (student.config.num_layers, student.config.num_decoder_layers) == (2, 1)
    # the dropped block 0 held the decoder's position bias: the kept block now carries the teacher's
    bias = student.decoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight
    assert torch.equal(bias, teacher.decoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight)
    ids = torch.randint(2, 40, (3, 9))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    generated = student.generate(**batch, max_new_tokens=3, do_sample=False, num_beams=1)
    assert generated.shape[0] == 3
    student.save_pretrained(tmp_path)
    reloaded = T5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    decoder_ids = torch.zeros(3, 2, dtype=torch.long)
    with torch.no_grad():
        before = student(**batch, decoder_input_ids=decoder_ids).logits
        after = reloaded(**batch, decoder_input_ids=decoder_ids).logits
    torch.testing.assert_close(after, before)  # nothing re-initialised on load

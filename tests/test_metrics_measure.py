"""measure_pair on a text-to-text pair: generation predictions with invalid answers, same conditions, strict JSON."""

from __future__ import annotations

import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from backend.metrics.jsonsafe import to_strict_json
from backend.metrics.measure import measure_pair

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def t5(layers: int) -> T5ForConditionalGeneration:
    return T5ForConditionalGeneration(
        T5Config(
            vocab_size=64,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=layers,
            num_heads=4,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
        )
    )


def predict(model, batch):
    """Like the T5 adapter: generate, map the first token to a class, -1 when it is no label word."""
    out = model.generate(**batch, max_new_tokens=2, min_new_tokens=2, do_sample=False)
    token = out[:, 1]
    return torch.where(token < 8, token % 3, torch.full_like(token, -1))


def example_batch(bs: int) -> dict:
    gen = torch.Generator().manual_seed(bs)
    return {"input_ids": torch.randint(2, 64, (bs, 10), generator=gen), "attention_mask": torch.ones(bs, 10).long()}


def test_t5_pair():
    torch.manual_seed(0)
    teacher, student = t5(2), t5(1)
    teacher.train(), student.eval()  # measuring must leave both as they are
    batches = [(example_batch(6 + i), torch.arange(6 + i) % 3) for i in range(2)]
    out = measure_pair(
        teacher,
        student,
        predict=predict,
        test_batches=batches,
        example_batch=example_batch,
        class_names=["neg", "neu", "pos"],
        batch_sizes=(1, 4),
    )
    assert teacher.training and not student.training
    assert teacher.config._attn_implementation == student.config._attn_implementation != "eager"
    pred = out["predictions"]
    assert pred["labels"] == [i % 3 for i in range(6)] + [i % 3 for i in range(7)]
    for who in ("teacher", "student"):
        eff = out[who]["effectiveness"]
        assert eff["invalid_predictions"] == sum(p == -1 for p in pred[who])
        assert eff["accuracy"] == pytest.approx(
            sum(p == y for p, y in zip(pred[who], pred["labels"], strict=True)) / 13
        )
        assert out[who]["complexity"]["flops"]["attention_implementation"] == "eager"
        assert out[who]["efficiency"]["full_pass_samples"] == 13
    assert out["teacher"]["compression"]["layers"]["transformer_block_types"] == {"T5Block": 4}
    cmp = out["comparison"]
    assert cmp["flops_ratio"] == pytest.approx(
        out["teacher"]["complexity"]["flops"]["flops_per_sample"]
        / out["student"]["complexity"]["flops"]["flops_per_sample"]
    )
    assert cmp["flops_ratio"] > 1 and set(cmp["speedup"]) == {"batch_1", "batch_4"}
    assert "NaN" not in to_strict_json(out)

"""ONNX export round trips on tiny models: ONNX Runtime gives PyTorch's outputs (and T5 its generated tokens)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    T5Config,
    T5ForConditionalGeneration,
)

from backend.models.onnx_export import OrtModel, export_onnx
from backend.models.zoo import mobilenetv2, resnet18

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny_distilbert() -> torch.nn.Module:
    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=100, max_position_embeddings=32, n_layers=2, dim=32, n_heads=2, hidden_dim=64, num_labels=3
    )
    return DistilBertForSequenceClassification(config).eval()


def _tiny_t5(decoder_layers: int = 1, tie: bool = False) -> torch.nn.Module:
    """Deep encoder, shallow decoder (2 + 1), weights wide enough (std 0.5) that greedy answers vary by input.

    EOS is token 22, which this seed generates early on some rows: the loop's pad-after-EOS path is exercised.
    """
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=40,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=decoder_layers,
        num_heads=2,
        pad_token_id=0,
        eos_token_id=22,
        decoder_start_token_id=0,
        feed_forward_proj="relu",
        tie_word_embeddings=tie,  # tied: one weight for embeddings and LM head, as the quick preset builds T5
        dropout_rate=0.0,
    )
    model = T5ForConditionalGeneration(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.5)
    return model


def _text_batch(n: int, length: int, vocab: int) -> dict[str, torch.Tensor]:
    ids = torch.randint(2, vocab, (n, length))
    mask = torch.ones_like(ids)
    mask[0, length // 2 :] = 0  # one padded row: the mask must travel through the export
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("model_id,build", [("resnet18", resnet18.build), ("mobilenetv2", mobilenetv2.build)])
def test_vision_round_trip(tmp_path, model_id, build):
    model = build(class_names=[str(i) for i in range(10)])[0].eval()
    exported = export_onnx(model_id, model, {"pixel_values": torch.randn(2, 3, 32, 32)}, tmp_path)
    ort_model = OrtModel.load(tmp_path, exported, threads=1)
    x = torch.randn(5, 3, 32, 32)  # another batch size than the export's: the batch axis is dynamic
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(ort_model.logits({"pixel_values": x}), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_distilbert_round_trip(tmp_path, dynamo):
    model = _tiny_distilbert()
    exported = export_onnx("distilbert", model, _text_batch(2, 12, 100), tmp_path, dynamo=dynamo)
    assert exported["exporter"]["model"] == ("dynamo" if dynamo else "torchscript")
    batch = _text_batch(3, 16, 100)
    with torch.no_grad():
        expected = model(**batch).logits.numpy()
    np.testing.assert_allclose(OrtModel.load(tmp_path, exported, 1).logits(batch), expected, atol=1e-5, rtol=1e-4)


def test_bert_round_trip(tmp_path):
    """The fifth model exports through the same sequence-classifier path, token_type_ids left to their default."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        max_position_embeddings=32,
        num_hidden_layers=2,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
    )
    model = BertForSequenceClassification(config).eval()
    exported = export_onnx("bert", model, _text_batch(2, 12, 100), tmp_path)
    batch = _text_batch(3, 16, 100)
    with torch.no_grad():
        expected = model(**batch).logits.numpy()
    np.testing.assert_allclose(OrtModel.load(tmp_path, exported, 1).logits(batch), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("decoder_layers,steps,tie", [(1, 4, False), (2, 8, False), (1, 6, True)])
def test_t5_generation_with_past_matches_generate(tmp_path, decoder_layers, steps, tie):
    """The cached greedy loop in ONNX Runtime gives generate's token ids, past lengths 0 to steps - 1."""
    model = _tiny_t5(decoder_layers=decoder_layers, tie=tie)
    exported = export_onnx("t5-small", model, _text_batch(2, 10, 40), tmp_path)
    assert set(exported["files"]) == {"encoder", "decoder"} and exported["generation"]["past_key_values"] is True
    torch.manual_seed(1)
    batch = _text_batch(6, 14, 40)
    ours = OrtModel.load(tmp_path, exported, 1).generate(batch["input_ids"], batch["attention_mask"], steps)
    with torch.no_grad():
        theirs = model.generate(**batch, max_new_tokens=steps, do_sample=False, num_beams=1).numpy()
    assert len({tuple(row) for row in theirs.tolist()}) > 1  # the answers differ between inputs: a real check
    assert ours.shape[1] > 2  # more than one step ran, so a past fed back from a present was used
    np.testing.assert_array_equal(ours, theirs)


def test_t5_decoder_graph_takes_past_key_values(tmp_path):
    """The decoder graph reads one new token and every layer's self- and cross-attention past; returns presents."""
    import onnxruntime as ort

    model = _tiny_t5(decoder_layers=2)
    exported = export_onnx("t5-small", model, _text_batch(2, 10, 40), tmp_path)
    decoder = ort.InferenceSession(str(tmp_path / exported["files"]["decoder"]), providers=["CPUExecutionProvider"])
    inputs = {arg.name: arg.shape for arg in decoder.get_inputs()}
    past = {
        f"past_key_values.{i}.{side}.{kv}" for i in (0, 1) for side in ("decoder", "encoder") for kv in ("key", "value")
    }
    assert set(inputs) == {"decoder_input_ids", "attention_mask"} | past
    assert inputs["decoder_input_ids"][1] == 1  # one token a step: the prefix is in the past, not re-read
    assert inputs["past_key_values.0.decoder.key"] == ["batch", 2, "past_length", 8]
    outputs = [o.name for o in decoder.get_outputs()]
    assert outputs == ["logits"] + [f"present.{i}.decoder.{kv}" for i in (0, 1) for kv in ("key", "value")]
    encoder = ort.InferenceSession(str(tmp_path / exported["files"]["encoder"]), providers=["CPUExecutionProvider"])
    assert {o.name for o in encoder.get_outputs()} == {"encoder_hidden_states"} | {p for p in past if "encoder." in p}


def test_timing_sessions_stop_spinning_after_each_run():
    """Timings alternate sessions on few cores: an idle session's spinning pool must not take the next one's."""
    from backend.models.onnx_export import session_options

    options = session_options(2)
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1

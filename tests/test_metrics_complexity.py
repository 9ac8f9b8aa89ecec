"""FLOPs, parameters and layers against published figures, and attention FLOPs for transformers."""

from __future__ import annotations

import pytest
import torch
import torchvision
from transformers import DistilBertConfig, DistilBertForSequenceClassification, T5Config, T5ForConditionalGeneration

from backend.metrics.complexity import count_flops, space_complexity
from backend.metrics.compression import count_layers, count_parameters

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def vision_predict(model, batch):
    return model(batch["pixel_values"]).argmax(-1)


def text_predict(model, batch):
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.argmax(-1)


@pytest.mark.parametrize(
    "builder, params, gflops",
    [
        (torchvision.models.resnet18, 11_689_512, 3.628),  # 2 x 1.814 GMACs
        (torchvision.models.mobilenet_v2, 3_504_872, 0.602),  # 2 x 0.301 GMACs
    ],
)
def test_torchvision_reference_figures(builder, params, gflops):
    torch.manual_seed(0)
    model = builder(weights=None)
    assert count_parameters(model)["total"] == params
    flops = count_flops(model, vision_predict, {"pixel_values": torch.zeros(1, 3, 224, 224)})
    assert flops["gflops_per_sample"] == pytest.approx(gflops, rel=0.02)
    assert flops["flops"] == 2 * flops["macs"]
    # Every FLOP of these CNNs is in a Conv or Linear layer, and the breakdown says so.
    assert flops["conv_linear_flops"] == flops["flops"]
    # An unpruned model: skipping zeros saves (almost) nothing; a random init can hold a rare exact zero.
    assert flops["sparse_flops"] <= 1e-6 * flops["flops"]


def test_resnet18_layers_and_per_sample_flops():
    model = torchvision.models.resnet18(weights=None)
    layers = count_layers(model)
    assert (layers["conv"], layers["linear"], layers["embedding"], layers["transformer_blocks"]) == (20, 1, 0, 0)
    assert layers["weight_layers"] == 21 and "Conv" in layers["counted"]
    one = count_flops(model, vision_predict, {"pixel_values": torch.zeros(1, 3, 64, 64)})
    two = count_flops(model, vision_predict, {"pixel_values": torch.zeros(2, 3, 64, 64)})
    assert two["flops"] == 2 * one["flops"] and two["flops_per_sample"] == one["flops_per_sample"]


DIM, LAYERS, HEADS, HIDDEN, LABELS, B, L = 32, 2, 4, 64, 3, 2, 16


def small_distilbert(**kwargs) -> DistilBertForSequenceClassification:
    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=100,
        dim=DIM,
        n_layers=LAYERS,
        n_heads=HEADS,
        hidden_dim=HIDDEN,
        max_position_embeddings=64,
        num_labels=LABELS,
        **kwargs,
    )
    return DistilBertForSequenceClassification(config)


def text_batch() -> dict:
    return {
        "input_ids": torch.randint(0, 100, (B, L), generator=torch.Generator().manual_seed(1)),
        "attention_mask": torch.ones(B, L, dtype=torch.long),
    }


def test_distilbert_counts_attention_matmuls_for_default_and_eager():
    default, eager = small_distilbert(), small_distilbert(attn_implementation="eager")
    assert default.config._attn_implementation != "eager"  # the default really is the SDPA path
    counts = [count_flops(m, text_predict, text_batch()) for m in (default, eager)]
    assert counts[0]["flops"] == counts[1]["flops"]
    # Hand count: Linear layers (q, k, v, out, two FFN per block on B*L rows; head layers on B rows) ...
    linear = LAYERS * (4 * 2 * B * L * DIM * DIM + 2 * 2 * B * L * DIM * HIDDEN) + 2 * B * DIM * (DIM + LABELS)
    # ... plus two attention matmuls per block (QK^T and AV), each B*L*L*DIM MACs over all heads.
    attention = LAYERS * 2 * 2 * B * L * L * DIM
    assert counts[0]["conv_linear_flops"] == linear
    assert counts[0]["flops"] == linear + attention
    assert counts[0]["attention_implementation"] == "eager"
    assert default.config._attn_implementation != "eager"  # counting used a copy; the model is unchanged


def test_distilbert_and_t5_layer_counts():
    layers = count_layers(small_distilbert())
    assert layers["transformer_blocks"] == LAYERS
    assert layers["transformer_block_types"] == {"TransformerBlock": LAYERS}
    assert layers["linear"] == LAYERS * 6 + 2 and layers["embedding"] == 2
    t5 = T5ForConditionalGeneration(
        T5Config(
            vocab_size=64,
            d_model=16,
            d_kv=4,
            d_ff=32,
            num_layers=2,
            num_decoder_layers=3,
            num_heads=4,
            decoder_start_token_id=0,
        )
    )
    assert count_layers(t5)["transformer_block_types"] == {"T5Block": 5}


def test_t5_generation_flops_same_for_eager_and_default():
    torch.manual_seed(0)
    config = dict(
        vocab_size=64,
        d_model=16,
        d_kv=4,
        d_ff=32,
        num_layers=2,
        num_heads=4,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    default = T5ForConditionalGeneration(T5Config(**config))
    eager = T5ForConditionalGeneration(T5Config(**config, attn_implementation="eager"))
    eager.load_state_dict(default.state_dict())

    def generate(model, batch):
        return model.generate(**batch, max_new_tokens=3, min_new_tokens=3, do_sample=False)[:, -1]

    batch = {"input_ids": torch.randint(2, 64, (2, 8)), "attention_mask": torch.ones(2, 8, dtype=torch.long)}
    counted = count_flops(default, generate, batch)
    assert counted["flops"] == count_flops(eager, generate, batch)["flops"] > 0
    # generate() calls the encoder directly, outside the root module's forward: its layers must still be counted.
    assert all(flops > 0 for flops in counted["per_layer_flops"].values())
    assert 0 < counted["conv_linear_flops"] < counted["flops"]  # the rest: attention matmuls


def test_space_complexity_counts_activations_not_weights():
    model = torch.nn.Sequential(torch.nn.Linear(100, 1000), torch.nn.ReLU(), torch.nn.Linear(1000, 10))
    space = space_complexity(model, lambda m, b: m(b["x"]).argmax(-1), {"x": torch.zeros(8, 100)})
    assert space["param_memory_mb"] == pytest.approx((100 * 1000 + 1000 + 1000 * 10 + 10) * 4 / 1e6)
    # The 8x1000 hidden activation (32 kB) must be seen; nothing close to the 440 kB of weights.
    assert 8 * 1000 * 4 / 1e6 <= space["peak_activation_mb"] < 0.2

"""Training defaults per (model, preset), sized on a 2-core CPU (DESIGN.md section 10)."""
from __future__ import annotations

# epochs: teacher; kd_epochs: structural student; finetune_epochs: after each pruning step.
DEFAULTS: dict[tuple[str, str], dict] = {
    ("resnet18", "quick"): dict(epochs=8, kd_epochs=5, finetune_epochs=1, batch_size=64, learning_rate=3e-3),
    ("mobilenetv2", "quick"): dict(epochs=10, kd_epochs=8, finetune_epochs=1, batch_size=64, learning_rate=3e-3),
    # post-LN from scratch: at 6e-4 the [CLS] output collapsed on 2 of 4 seeds; 3e-4 learnt on all (measured).
    # Its 2-block student needs more: at 3e-4 or 6e-4 it stalled at ~85% on seed 1, at 1e-3 it reached 98.7%.
    ("distilbert", "quick"): dict(epochs=7, kd_epochs=4, finetune_epochs=1, batch_size=32, learning_rate=3e-4,
                                  kd_learning_rate=1e-3),
    # T5 from scratch under AdamW: embeddings learn 30x faster (their init, std 1, is made for Adafactor).
    ("t5-small", "quick"): dict(epochs=6, kd_epochs=4, finetune_epochs=1, batch_size=64, learning_rate=2e-3,
                                embedding_lr_scale=30.0),
    # 224x224 CNNs: batches of 32. At 64 the training activations alone took ~2 GB and the whole service peaked at
    # 3.1 GB for a 6,000-image upload (benchmarks/memory.py); a CPU gains no throughput from larger batches.
    ("resnet18", "standard"): dict(epochs=10, kd_epochs=6, finetune_epochs=1, batch_size=32, learning_rate=1e-3),
    ("mobilenetv2", "standard"): dict(epochs=12, kd_epochs=8, finetune_epochs=1, batch_size=32, learning_rate=1e-3),
    ("distilbert", "standard"): dict(epochs=3, kd_epochs=3, finetune_epochs=1, batch_size=16, learning_rate=5e-5),
    ("t5-small", "standard"): dict(epochs=3, kd_epochs=3, finetune_epochs=1, batch_size=16, learning_rate=3e-4),
}
TEXT_SET_SIZE = 5000


def defaults(model_id: str, preset: str) -> dict:
    """A copy of the defaults of one model at one preset."""
    return dict(DEFAULTS[(model_id, preset)])

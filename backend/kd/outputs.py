"""What a model's forward pass gives a distillation loss: its logits and targets, and the extras a loss needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Outputs:
    """One forward pass, as the adapters return it (`outputs(model, batch, needs)`).

    `logits` are rows with their `targets` (-100: ignore). The extras are filled only when asked for:
    `hidden_states[stack]` and `attentions[stack]` are transformers' own `output_hidden_states` (embeddings
    first, then one per block) and `output_attentions` (one [batch, heads, query, key] per block), by stack
    ("encoder", and "decoder" for T5); `masks[stack]` marks the real (not padding) positions of that stack,
    [batch, length] booleans; `features[name]` is the output of the named module (forward hooks, CNN stages).
    """

    logits: Any
    targets: Any
    hidden_states: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    attentions: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    masks: dict[str, Any] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)

"""KD-Pruning Simulator backend: knowledge distillation plus pruning, measured."""

__version__ = "0.1.0"

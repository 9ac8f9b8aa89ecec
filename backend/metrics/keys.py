"""The names a report is made of: its sections, its effectiveness metrics and its loss terms, defined once.

Plain names, no torch: the API process lists them (GET /models `concepts`) without loading the measuring code.
"""

from __future__ import annotations

# The report's top-level sections, these names exactly (beside `metadata`).
SECTIONS = (
    "student_model_performance",
    "teacher_vs_student_comparison",
    "knowledge_distillation_analysis",
    "pruning_analysis",
    "efficiency_improvements",
    "learning_outcomes",
    "latency_target",
)
# The effectiveness metrics measured on the test split, teacher and student alike.
EFFECTIVENESS_KEYS = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
)
# The terms of a distillation loss beyond the logits, one per loss (backend/kd/: each loss's `term`); a history
# carries them only where the job's kd_loss has that loss.
LOSS_SPECIFIC_TERMS = ("hidden_cosine_loss", "hidden_mse_loss", "attention_loss", "features_loss")
# The loss values a history row may carry: the optimised total, the logits loss's two terms, then the others.
LOSS_VALUES = ("loss", "kd_loss", "ce_loss", *LOSS_SPECIFIC_TERMS)
# The columns of a loss-history row.
LOSS_TERMS = ("epoch", "step", *LOSS_VALUES, "lr", "pruning_step")
# The quantized students a job can ask for: dynamic_int8 is ONNX Runtime's quantize_dynamic of the exported student.
QUANTIZE_OPTIONS = ("none", "dynamic_int8")
# The runtimes a latency target (option target_runtime) is measured in.
TARGET_RUNTIMES = ("onnxruntime", "pytorch")

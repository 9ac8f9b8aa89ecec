"""Effectiveness: accuracy, precision, recall, F1, per-class figures and the confusion matrix (scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from .stats import (
    METHODS,
    bootstrap_intervals,
    paired_accuracy_difference,
    paired_bootstrap_differences,
    wilson_interval,
)

INVALID = -1  # a prediction that matched no class (e.g. a T5 generation that is no label word)


def _as_int_array(values: Sequence[int] | np.ndarray) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _averaged(y_true: np.ndarray, y_pred: np.ndarray, labels: list[int], average: str) -> dict:
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0)
    return {f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)}


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], class_names: list[str]) -> dict:
    """Accuracy, macro/weighted precision-recall-F1, per-class figures and confusion matrix; fractions in [0, 1]."""
    y_true, y_pred = _as_int_array(y_true), _as_int_array(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size} predictions")
    labels = list(range(len(class_names)))
    if y_true.size == 0:
        raise ValueError("no samples to score")
    # labels= pins the class set, so an invalid prediction (-1) is a miss for its true class and a hit for none.
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
    per_class = [
        {"name": name, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
        for i, name in enumerate(class_names)
    ]
    invalid = y_pred == INVALID
    correct = int((y_true == y_pred).sum())
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        **_averaged(y_true, y_pred, labels, "macro"),
        **_averaged(y_true, y_pred, labels, "weighted"),
        "accuracy_ci": list(wilson_interval(correct, int(y_true.size))),
        **{f"{k}_ci": v for k, v in bootstrap_intervals(y_true, y_pred, len(class_names)).items()},
        "intervals_note": f"accuracy: {METHODS['accuracy']}; the others: {METHODS['other']}",
        "num_samples": int(y_true.size),
        "num_correct": correct,
        "invalid_predictions": int(invalid.sum()),
        "invalid_predictions_note": "predictions that matched no class (-1) count as wrong; they are in no "
        "confusion-matrix column",
        "class_names": list(class_names),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "confusion_matrix_note": "rows: true class, columns: predicted class, in class_names order",
    }


def paired_differences(
    y_true: Sequence[int], pred_a: Sequence[int], pred_b: Sequence[int], class_names: list[str]
) -> dict[str, dict]:
    """B minus A, in points, for accuracy (McNemar + Newcombe) and the bootstrap metrics, on the same examples."""
    y, a, b = _as_int_array(y_true), _as_int_array(pred_a), _as_int_array(pred_b)
    return {
        "accuracy": paired_accuracy_difference(a == y, b == y),
        **paired_bootstrap_differences(y, a, b, len(class_names)),
    }

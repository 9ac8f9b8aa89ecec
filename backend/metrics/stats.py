"""Uncertainty of what was measured on a finite test split: intervals and paired tests, as pure functions.

- Accuracy: the Wilson score interval (Wilson 1927), which keeps its coverage near 0 and 1 where the normal
  approximation does not.
- Precision, recall and F1 (macro and weighted): a percentile bootstrap over the test examples, seeded, so the
  same predictions give the same interval.
- A difference between two models on the same examples is paired: the exact McNemar test on the discordant pairs
  (a two-sided binomial test, scipy.stats.binomtest) and Newcombe's hybrid-score interval for a difference of
  paired proportions (Newcombe 1998, method 10); other metrics' differences get a paired bootstrap interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import binomtest, norm
from scipy.stats import t as student_t

from .keys import EFFECTIVENESS_KEYS

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
BOOTSTRAP_METRICS = tuple(k for k in EFFECTIVENESS_KEYS if k != "accuracy")
METHODS = {
    "accuracy": f"Wilson score interval, {CONFIDENCE:.0%}",
    "other": f"percentile bootstrap, {BOOTSTRAP_RESAMPLES} resamples of the test split (seed {BOOTSTRAP_SEED}), "
    f"{CONFIDENCE:.0%}",
    "difference": "paired: exact McNemar test on the discordant examples (two-sided binomial) and Newcombe's "
    f"hybrid-score interval (method 10) for accuracy; a paired bootstrap interval for the other metrics; "
    f"{CONFIDENCE:.0%}",
}


def _z(confidence: float) -> float:
    return float(norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a proportion successes / n, as fractions."""
    if n <= 0:
        raise ValueError("a proportion of 0 trials has no interval")
    z, p = _z(confidence), successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (a right where b is wrong, and the reverse)."""
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    return float(binomtest(min(only_a, only_b), discordant, 0.5).pvalue)


def paired_accuracy_difference(
    correct_a: Sequence[bool], correct_b: Sequence[bool], confidence: float = CONFIDENCE
) -> dict:
    """B minus A in accuracy points on the same examples: {points, ci_points, p_value, test, within_noise, ...}."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("paired correctness vectors must have the same, non-zero length")
    n = int(a.size)
    both, only_a, only_b = int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum())
    neither = n - both - only_a - only_b
    p1, p2 = float(b.mean()), float(a.mean())  # difference d = p1 - p2 = accuracy(B) - accuracy(A)
    l1, u1 = wilson_interval(int(b.sum()), n, confidence)
    l2, u2 = wilson_interval(int(a.sum()), n, confidence)
    # phi: correlation of the two correctness indicators over the 2x2 table (0 when a margin is empty)
    r1, r2, c1, c2 = both + only_b, only_a + neither, both + only_a, only_b + neither
    denominator = math.sqrt(r1 * r2 * c1 * c2)
    phi = 0.0 if denominator == 0 else (both * neither - only_a * only_b) / denominator
    d = p1 - p2
    low = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = d + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    low, high = max(-1.0, low), min(1.0, high)
    return {
        "points": d * 100.0,
        "ci_points": [low * 100.0, high * 100.0],
        "p_value": mcnemar_exact(only_a, only_b),
        "test": "mcnemar_exact",
        "interval": "newcombe_hybrid_score",
        "discordant": {"only_first_correct": only_a, "only_second_correct": only_b},
        "samples": n,
        "within_noise": bool(low <= 0.0 <= high),
    }


def _resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _metrics_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Macro/weighted precision, recall, F1 per resample from confusion counts [R, K, K+1] (last column: invalid).

    The same definitions as scikit-learn's precision_recall_fscore_support with labels= and zero_division=0.
    """
    k = counts.shape[1]
    tp = np.einsum("rkk->rk", counts[:, :, :k]).astype(float)
    predicted = counts[:, :, :k].sum(axis=1).astype(float)  # column sums: predictions of each class
    support = counts.sum(axis=2).astype(float)  # row sums: true examples of each class (invalid ones included)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    weights = support / np.maximum(support.sum(axis=1, keepdims=True), 1.0)
    out = {}
    for name, values in (("precision", precision), ("recall", recall), ("f1", f1)):
        out[f"{name}_macro"] = values.mean(axis=1)
        out[f"{name}_weighted"] = (values * weights).sum(axis=1)
    return out


def _resampled_metrics(y_true: np.ndarray, y_pred: np.ndarray, k: int, idx: np.ndarray) -> dict[str, np.ndarray]:
    pred = np.where((y_pred >= 0) & (y_pred < k), y_pred, k)  # an invalid prediction (-1): its own column
    codes = y_true[idx] * (k + 1) + pred[idx]  # [R, N]
    offsets = np.arange(idx.shape[0])[:, None] * (k * (k + 1))
    counts = np.bincount((codes + offsets).ravel(), minlength=idx.shape[0] * k * (k + 1))
    return _metrics_from_counts(counts.reshape(idx.shape[0], k, k + 1))


def bootstrap_intervals(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    num_classes: int,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, list[float]]:
    """{metric: [low, high]} for macro/weighted precision, recall and F1, by percentile bootstrap."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    draws = _resampled_metrics(y_true, y_pred, num_classes, _resample_indices(len(y_true), resamples, seed))
    tail = (1 - confidence) / 2 * 100
    return {m: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))] for m, v in draws.items()}


def paired_bootstrap_differences(
    y_true: Sequence[int],
    pred_a: Sequence[int],
    pred_b: Sequence[int],
    num_classes: int,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, dict]:
    """B minus A in points for each bootstrap metric, both scored on the same resampled examples."""
    y = np.asarray(y_true, dtype=np.int64)
    idx = _resample_indices(len(y), resamples, seed)
    a = _resampled_metrics(y, np.asarray(pred_a, dtype=np.int64), num_classes, idx)
    b = _resampled_metrics(y, np.asarray(pred_b, dtype=np.int64), num_classes, idx)
    full_a = _resampled_metrics(y, np.asarray(pred_a, dtype=np.int64), num_classes, np.arange(len(y))[None, :])
    full_b = _resampled_metrics(y, np.asarray(pred_b, dtype=np.int64), num_classes, np.arange(len(y))[None, :])
    tail = (1 - confidence) / 2 * 100
    out = {}
    for m in BOOTSTRAP_METRICS:
        diff = (b[m] - a[m]) * 100.0
        low, high = float(np.percentile(diff, tail)), float(np.percentile(diff, 100 - tail))
        out[m] = {
            "points": float(full_b[m][0] - full_a[m][0]) * 100.0,
            "ci_points": [low, high],
            "p_value": None,
            "p_value_reason": "McNemar's test applies to per-example correctness (accuracy); this interval is a "
            "paired bootstrap",
            "test": "paired_bootstrap",
            "within_noise": bool(low <= 0.0 <= high),
        }
    return out


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """Mean, sample standard deviation and Student-t interval of the mean across repeats (e.g. seeds)."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    n = int(x.size)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci": None, "ci_reason": "no values"}
    mean = float(x.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "ci": None, "ci_reason": "one repeat: no spread to estimate"}
    std = float(x.std(ddof=1))
    half = float(student_t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci": [mean - half, mean + half]}


def paired_medians(a: Sequence[float], b: Sequence[float], **kwargs) -> dict:
    """Medians of two series timed in the same rounds (a_i and b_i in round i), each with its interval, and
    median(a) / median(b) with a percentile-bootstrap interval that resamples whole rounds, so the drift of the
    machine, which a round's two timings share, stays paired."""
    resamples = kwargs.get("resamples", BOOTSTRAP_RESAMPLES)
    seed, confidence = kwargs.get("seed", BOOTSTRAP_SEED), kwargs.get("confidence", CONFIDENCE)
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or x.size != y.size:
        raise ValueError(f"paired_medians needs two non-empty series of one length, got {x.size} and {y.size}")
    idx = _resample_indices(x.size, resamples, seed)
    med_x, med_y = np.median(x[idx], axis=1), np.median(y[idx], axis=1)
    tail = (1 - confidence) / 2 * 100

    def interval(values: np.ndarray) -> list[float]:
        return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]

    positive = med_y > 0
    return {
        "median_a": float(np.median(x)),
        "median_b": float(np.median(y)),
        "median_a_ci": interval(med_x),
        "median_b_ci": interval(med_y),
        "ratio": float(np.median(x) / np.median(y)) if np.median(y) > 0 else None,
        "ratio_ci": interval(med_x[positive] / med_y[positive]) if positive.any() else None,
        "rounds": int(x.size),
        "method": f"percentile bootstrap of the medians, {resamples} resamples of the paired rounds (seed {seed}), "
        f"{confidence:.0%}",
    }


def median_ratio_interval(numerator: Sequence[float], denominator: Sequence[float], **kwargs) -> list[float] | None:
    """Percentile-bootstrap interval of median(numerator) / median(denominator) over paired runs (run i of each
    was timed back to back, so runs are resampled together; paired_medians); None when fewer than 2 pairs."""
    if len(numerator) != len(denominator) or len(numerator) < 2:
        return None
    return paired_medians(numerator, denominator, **kwargs)["ratio_ci"]

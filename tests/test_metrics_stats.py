"""Interval arithmetic checked against published values, scipy and brute force."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import precision_recall_fscore_support

from backend.metrics.effectiveness import classification_metrics, paired_differences
from backend.metrics.stats import (
    bootstrap_intervals,
    mcnemar_exact,
    paired_accuracy_difference,
    t_interval,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),  # Newcombe (1998), Stat Med 17:857, Table I, Wilson score method
        (265, 270, 0.957, 0.992),  # 98.15% on 270 test images, as quoted in the issue that asked for intervals
        (0, 10, 0.0, 0.2775),  # 0/n: the upper bound is z^2 / (n + z^2) in closed form
        (1, 29, 0.0061, 0.1718),  # Newcombe (1998), Table I, 1/29
    ],
)
def test_wilson_matches_published_values(k, n, low, high):
    got = wilson_interval(k, n)
    assert got[0] == pytest.approx(low, abs=6e-4) and got[1] == pytest.approx(high, abs=6e-4)


@pytest.mark.parametrize(("only_a", "only_b"), [(0, 0), (3, 0), (10, 4), (17, 30), (120, 95)])
def test_mcnemar_exact_is_the_binomial_test_on_discordant_pairs(only_a, only_b):
    expected = 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b, 0.5).pvalue
    assert mcnemar_exact(only_a, only_b) == pytest.approx(expected)


def test_paired_difference_counts_and_sign():
    a = np.array([1] * 40 + [0] * 10 + [1] * 5 + [0] * 45, dtype=bool)  # 45% right
    b = np.array([1] * 40 + [1] * 10 + [0] * 5 + [0] * 45, dtype=bool)  # 50% right
    d = paired_accuracy_difference(a, b)
    assert d["points"] == pytest.approx(5.0) and d["discordant"] == {"only_first_correct": 5, "only_second_correct": 10}
    assert d["ci_points"][0] < 5.0 < d["ci_points"][1] and d["test"] == "mcnemar_exact"
    assert d["p_value"] == pytest.approx(binomtest(5, 15, 0.5).pvalue)
    assert d["within_noise"] == (d["ci_points"][0] <= 0 <= d["ci_points"][1])
    same = paired_accuracy_difference(a, a)
    assert same["points"] == 0 and same["p_value"] == 1.0 and same["within_noise"]


def test_paired_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    n, trials, covered = 300, 1500, 0
    # correlated correctness: B is right where A is, plus a few more (true difference +4 points)
    for _ in range(trials):
        a = rng.random(n) < 0.70
        flip = rng.random(n)
        b = a.copy()
        b[(~a) & (flip < 0.2)] = True
        b[a & (flip < 0.0286)] = False
        truth = (0.30 * 0.2 - 0.70 * 0.0286) * 100.0
        low, high = paired_accuracy_difference(a, b)["ci_points"]
        covered += low <= truth <= high
    assert 0.93 <= covered / trials <= 0.975


def test_bootstrap_metrics_agree_with_scikit_learn_and_are_seeded():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 400)
    pred = np.where(rng.random(400) < 0.7, y, rng.integers(-1, 5, 400))  # -1: an invalid (T5-style) prediction
    metrics = classification_metrics(y, pred, [str(i) for i in range(5)])
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y, pred, labels=list(range(5)), average=average, zero_division=0)
        for name, value in (("precision", p), ("recall", r), ("f1", f)):
            low, high = metrics[f"{name}_{average}_ci"]
            assert low < value < high and high - low < 0.15
    assert bootstrap_intervals(y, pred, 5) == bootstrap_intervals(y, pred, 5)
    low, high = metrics["accuracy_ci"]
    assert low < metrics["accuracy"] < high


def test_paired_differences_cover_every_metric():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 200)
    a, b = np.where(rng.random(200) < 0.6, y, 0), np.where(rng.random(200) < 0.9, y, 0)
    d = paired_differences(y, a, b, ["x", "y", "z"])
    assert set(d) == {"accuracy", "precision_macro", "recall_macro", "f1_macro", "precision_weighted",
                      "recall_weighted", "f1_weighted"}  # fmt: skip
    assert d["accuracy"]["points"] > 0 and not d["accuracy"]["within_noise"]
    assert d["f1_macro"]["test"] == "paired_bootstrap" and d["f1_macro"]["ci_points"][0] > 0


def test_t_interval_of_seeds():
    out = t_interval([0.80, 0.82, 0.79])
    assert out["mean"] == pytest.approx(0.80333, abs=1e-4) and out["std"] == pytest.approx(0.015275, abs=1e-5)
    assert out["ci"][0] == pytest.approx(0.80333 - 4.302653 * 0.015275 / 3**0.5, abs=1e-4)
    assert t_interval([0.5])["ci"] is None and t_interval([])["mean"] is None

"""Precision, recall and F1 on a hand-checkable confusion, matching scikit-learn; invalid predictions."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import f1_score, precision_score, recall_score

from backend.metrics.effectiveness import classification_metrics

# True 0 x4, 1 x3, 2 x3. The last prediction (-1) matched no class: a T5 answer that is no label word.
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
Y_PRED = [0, 0, 1, 2, 1, 1, 0, 2, 2, -1]


def test_hand_checked_figures():
    m = classification_metrics(Y_TRUE, Y_PRED, ["cat", "dog", "owl"])
    assert m["accuracy"] == pytest.approx(6 / 10)
    assert m["num_correct"] == 6 and m["num_samples"] == 10 and m["invalid_predictions"] == 1
    # class 0: TP 2 of 3 predicted, 2 of 4 true; classes 1 and 2: 2 of 3 both ways.
    per = {row["name"]: row for row in m["per_class"]}
    assert (per["cat"]["precision"], per["cat"]["recall"], per["cat"]["support"]) == pytest.approx((2 / 3, 1 / 2, 4))
    assert per["cat"]["f1"] == pytest.approx(4 / 7)
    assert (per["owl"]["precision"], per["owl"]["recall"]) == pytest.approx((2 / 3, 2 / 3))
    assert m["precision_macro"] == pytest.approx(2 / 3)
    assert m["recall_macro"] == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)
    assert m["f1_macro"] == pytest.approx((4 / 7 + 2 / 3 + 2 / 3) / 3)
    assert m["recall_weighted"] == pytest.approx((4 * 1 / 2 + 3 * 2 / 3 + 3 * 2 / 3) / 10)
    assert m["confusion_matrix"] == [[2, 1, 1], [1, 2, 0], [0, 0, 2]]  # the -1 is in no column


@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_matches_scikit_learn(average):
    m = classification_metrics(torch.tensor(Y_TRUE), torch.tensor(Y_PRED), ["a", "b", "c"])
    kwargs = dict(labels=[0, 1, 2], average=average, zero_division=0)
    assert m[f"precision_{average}"] == pytest.approx(precision_score(Y_TRUE, Y_PRED, **kwargs))
    assert m[f"recall_{average}"] == pytest.approx(recall_score(Y_TRUE, Y_PRED, **kwargs))
    assert m[f"f1_{average}"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, **kwargs))


def test_class_never_predicted_scores_zero_not_nan():
    m = classification_metrics([0, 1, 2], [0, 0, 0], ["a", "b", "c"])
    assert m["per_class"][1]["precision"] == 0.0 and m["per_class"][2]["f1"] == 0.0


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0], ["a", "b"])

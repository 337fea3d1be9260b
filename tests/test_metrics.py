"""MEGC 2019 UF1 / UAR from pooled confusion counts, checked against hand computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score

from mer_prep.evaluation.metrics import (
    accuracy,
    confusion_matrix,
    per_class_f1,
    per_class_recall,
    pooled_confusion,
    scores,
    uar,
    uf1,
)

# Two LOSO folds over 3 classes; class 2 never appears in fold A (neither true nor predicted),
# class 1 never in fold B.
FOLD_A = (np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
FOLD_B = (np.array([0, 2, 2, 2]), np.array([0, 2, 2, 0]))


def test_confusion_matrix_by_hand():
    assert confusion_matrix(*FOLD_A, 3).tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    assert confusion_matrix(*FOLD_B, 3).tolist() == [[1, 0, 0], [0, 0, 0], [1, 0, 2]]
    assert confusion_matrix(*FOLD_A, 3).dtype == np.int64


def test_pooled_scores_by_hand():
    conf = pooled_confusion([FOLD_A, FOLD_B], 3)
    assert conf.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 2]]
    # TP = 2, 2, 2; FP = 1, 1, 0; FN = 1, 0, 1
    assert np.allclose(per_class_f1(conf), [4 / 6, 4 / 5, 4 / 5])
    assert np.allclose(per_class_recall(conf), [2 / 3, 1.0, 2 / 3])
    assert uf1(conf) == pytest.approx(34 / 45)  # 0.7556
    assert uar(conf) == pytest.approx(7 / 9)
    assert accuracy(conf) == pytest.approx(6 / 8)  # 8 samples, 6 on the diagonal


def test_pooled_differs_from_per_fold_average():
    pooled = uf1(pooled_confusion([FOLD_A, FOLD_B], 3))
    # per fold: A -> F1 (2/3, 4/5, undefined), B -> (2/3, undefined, 4/5): both 11/15
    per_fold = np.mean([uf1(confusion_matrix(*f, 3)) for f in (FOLD_A, FOLD_B)])
    assert per_fold == pytest.approx(11 / 15)
    assert pooled == pytest.approx(34 / 45) and abs(pooled - per_fold) > 0.02
    per_fold_uar = np.mean([uar(confusion_matrix(*f, 3)) for f in (FOLD_A, FOLD_B)])
    assert per_fold_uar == pytest.approx((3 / 4 + 5 / 6) / 2)  # 0.7917, vs pooled 7/9
    assert uar(pooled_confusion([FOLD_A, FOLD_B], 3)) != pytest.approx(per_fold_uar)


def test_pooled_matches_sklearn_macro_scores_on_concatenated_folds():
    rng = np.random.default_rng(0)
    folds = [(rng.integers(0, 3, 7), rng.integers(0, 3, 7)) for _ in range(10)]
    t = np.concatenate([f[0] for f in folds])
    p = np.concatenate([f[1] for f in folds])
    conf = pooled_confusion(folds, 3)
    assert uf1(conf) == pytest.approx(f1_score(t, p, average="macro"))
    assert uar(conf) == pytest.approx(recall_score(t, p, average="macro"))


def test_class_absent_everywhere_is_excluded_not_zero():
    conf = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 3)
    f1 = per_class_f1(conf)
    assert np.isnan(f1[2]) and np.isnan(per_class_recall(conf)[2])
    assert uf1(conf) == pytest.approx((2 / 3 + 4 / 5) / 2)  # not divided by 3
    assert uar(conf) == pytest.approx((1 / 2 + 1) / 2)


def test_predicted_but_never_true_class_counts_zero_in_uf1():
    conf = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1]), 3)
    assert per_class_f1(conf)[2] == 0.0 and np.isnan(per_class_recall(conf)[2])
    assert uf1(conf) == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)
    assert uar(conf) == pytest.approx((1 / 2 + 1) / 2)


def test_perfect_and_chance():
    y = np.repeat([0, 1, 2], 5)
    perfect = confusion_matrix(y, y, 3)
    assert uf1(perfect) == uar(perfect) == accuracy(perfect) == 1.0
    always0 = confusion_matrix(y, np.zeros_like(y), 3)
    assert uar(always0) == pytest.approx(1 / 3)  # a constant guess is exactly chance UAR
    assert uf1(always0) == pytest.approx((2 * 5 / (2 * 5 + 10)) / 3)  # F1_0 = 0.5, others 0
    rng = np.random.default_rng(1)
    t, p = rng.integers(0, 3, 30000), rng.integers(0, 3, 30000)
    assert abs(uar(confusion_matrix(t, p, 3)) - 1 / 3) < 0.01


def test_scores_dict_is_json_able():
    s = scores(
        confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 3),
        class_names=("negative", "positive", "surprise"),
    )
    assert s["uf1"] == pytest.approx(11 / 15) and s["n"] == 4
    assert s["per_class_f1"] == {
        "negative": pytest.approx(2 / 3),
        "positive": pytest.approx(4 / 5),
        "surprise": None,
    }
    json.dumps(s)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="unlabelled"):
        confusion_matrix(np.array([0, -1]), np.array([0, 1]), 3)
    with pytest.raises(ValueError):
        confusion_matrix(np.array([0, 1]), np.array([0]), 3)
    with pytest.raises(ValueError, match="empty"):
        uf1(np.zeros((3, 3), dtype=np.int64))

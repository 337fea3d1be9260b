"""The trainer's pure parts, without a store: validation subjects and pooling fold results."""

from __future__ import annotations

import numpy as np
import pytest

from mer_prep.evaluation.metrics import confusion_matrix, uar, uf1
from mer_prep.train import (
    EpochLog,
    FoldResult,
    RunHeader,
    TrainSetupError,
    combine_folds,
)
from mer_prep.train.selection import validation_subjects


def _clips(n_subjects: int, per_subject: int = 3):
    subjects = np.repeat([f"d/s{i:02d}" for i in range(n_subjects)], per_subject)
    labels = (np.arange(subjects.size) + np.repeat(np.arange(n_subjects), per_subject)) % 3
    return subjects, labels


@pytest.mark.parametrize("n_subjects, expected", [(2, 1), (7, 1), (20, 2), (67, 7)])
def test_validation_takes_about_a_tenth_of_the_subjects(n_subjects, expected):
    subjects, labels = _clips(n_subjects)
    held = validation_subjects(subjects, labels, seed=0)
    assert len(held) == expected and set(held) <= set(subjects)
    assert held == validation_subjects(subjects, labels, seed=0)  # deterministic in the seed
    draws = {tuple(validation_subjects(subjects, labels, seed=s)) for s in range(6)}
    assert len(draws) > 1  # and the seed matters


def test_validation_is_stratified_where_the_subjects_allow():
    subjects, labels = _clips(40)
    held = validation_subjects(subjects, labels, seed=3)
    assert set(labels[np.isin(subjects, held)]) == {0, 1, 2}


def test_validation_needs_two_subjects_and_handles_one_class():
    subjects, labels = _clips(1)
    with pytest.raises(TrainSetupError, match="at least 2 training subjects"):
        validation_subjects(subjects, labels, seed=0)
    subjects, _ = _clips(5)
    assert len(validation_subjects(subjects, np.zeros(subjects.size, np.int64), seed=0)) == 1


def _fold(index, y_true, y_pred, k=3):
    n = len(y_true)
    proba = np.eye(k, dtype=np.float32)[y_pred]
    return FoldResult(index=index, name=f"s{index}", class_names=("a", "b", "c"),
                      rows=np.arange(n), sample_ids=np.array([f"x{index}-{i}" for i in range(n)]),
                      y_true=np.asarray(y_true), y_pred=np.asarray(y_pred), proba=proba,
                      curves=(EpochLog(1, 1.0, None, 0.1, 0.09, 1),), selection="last_epoch",
                      best_epoch=1, validation_metric=None, seed=index)


def test_pooled_metrics_sum_confusions_over_folds_first():
    header = RunHeader(run_id="r", created="2026-01-01T00:00:00+00:00", model="mbcc",
                       paper="000", variant="apex", config={}, training={}, unit="clip",
                       aggregation="", split="loso", split_kind="loso", leaky=False,
                       store={"class_names": ["a", "b", "c"], "version_id": "v-1",
                              "snapshot_id": "S"}, seed=0, code_version="0", device="cpu",
                       torch_version="", n_folds=2)
    folds = [_fold(1, [0, 1], [0, 0]), _fold(0, [2, 2, 1], [2, 1, 1])]
    record = combine_folds(folds, header)
    pooled = confusion_matrix(np.array([2, 2, 1, 0, 1]), np.array([2, 1, 1, 0, 0]), 3)
    assert record.uf1 == pytest.approx(uf1(pooled)) and record.uar == pytest.approx(uar(pooled))
    assert [f.index for f in record.folds] == [0, 1]  # any order in, fold order out
    assert record.metrics["confusion"] == pooled.tolist()
    table = record.fold_table()
    assert list(table["fold"]) == ["s0", "s1", "pooled"] and table["n"].iloc[-1] == 5
    assert len(record.predictions()) == 5

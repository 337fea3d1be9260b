"""Balancing only sees the training fold, and every SMOTE sample traces back to its parents."""

from __future__ import annotations

import numpy as np
import pytest
from imblearn.over_sampling import SMOTE

from mer_prep.evaluation.balance import SmotePlan, class_weights, rebuild_smote, smote_plan
from mer_prep.evaluation.splits import loso


def make_table(seed: int = 0):
    """6 subjects, imbalanced 3 classes (about 60/25/15 %), 0-2 augmented copies per clip."""
    rng = np.random.default_rng(seed)
    subj = np.repeat([f"casme2/sub{s}" for s in range(6)], 20)
    lab = rng.choice(3, size=subj.size, p=[0.6, 0.25, 0.15]).astype(np.int64)
    n_orig = subj.size
    par = np.concatenate([np.full(n_orig, -1), np.repeat(np.arange(n_orig), np.arange(n_orig) % 3)])
    subj = np.concatenate([subj, subj[par[n_orig:]]])
    lab = np.concatenate([lab, lab[par[n_orig:]]])
    x = rng.normal(size=(subj.size, 8))  # continuous: every row is a distinct vector
    x[n_orig:] = x[par[n_orig:]] + 1e-3 * rng.normal(size=(subj.size - n_orig, 8))
    return x, lab, par, subj


X, LAB, PAR, SUBJ = make_table()
NAME, TRAIN, TEST = next(loso(SUBJ, PAR).folds())


def test_class_weights_by_hand():
    # 6 labelled samples (the -1 is ignored): counts 3, 1, 2, 0 -> 6/3, 6/1, 6/2, absent -> 0.
    w = class_weights(np.array([0, 2, 0, 1, -1, 2, 0]), 4)
    assert w.dtype == np.float64
    assert np.array_equal(w, [2.0, 6.0, 3.0, 0.0])


def test_class_weights_of_a_training_fold():
    lab = np.array([0, 0, 1, 2, 2, 2, 0, 1, 1, 1])
    subj = np.array(["a", "a", "a", "a", "b", "b", "c", "c", "c", "c"])
    _, train, _ = next(f for f in loso(subj).folds() if f[0] == "c")
    # training rows are a's and b's: labels 0,0,1,2,2,2 -> N=6, n = 2, 1, 3
    assert np.allclose(class_weights(lab[train], 3), [3.0, 6.0, 2.0])
    with pytest.raises(ValueError):
        class_weights(np.array([0, 3]), 3)


@pytest.fixture
def smote_spy(monkeypatch):
    """Records exactly what imblearn's SMOTE.fit_resample receives and returns."""
    calls = []
    original = SMOTE.fit_resample

    def spy(self, x, y):
        out = original(self, x, y)
        calls.append((np.array(x, copy=True), np.array(y, copy=True), out[0].copy(), out[1].copy()))
        return out

    monkeypatch.setattr(SMOTE, "fit_resample", spy)
    return calls


def rows_of(vectors: np.ndarray) -> np.ndarray:
    """Row index in X of each vector (exact match; X's rows are all distinct)."""
    hits = [np.flatnonzero((X == v).all(axis=1)) for v in vectors]
    assert all(h.size == 1 for h in hits), "a SMOTE input is not a row of the table"
    return np.array([h[0] for h in hits])


def test_smote_inputs_are_training_originals_only(smote_spy):
    assert np.unique(SUBJ[TEST]).tolist() == [NAME] and TEST.size > 0
    plan = smote_plan(X, LAB, TRAIN, seed=0, parents=PAR)
    assert len(smote_spy) == 1
    x_in, y_in, _, _ = smote_spy[0]
    fed = rows_of(x_in)
    assert not np.isin(fed, TEST).any()
    expected = TRAIN[PAR[TRAIN] == -1]
    assert np.array_equal(np.sort(fed), expected)
    assert np.array_equal(y_in, LAB[fed])
    assert np.array_equal(plan.inputs, expected)


def test_without_parents_augmented_training_rows_are_inputs_too(smote_spy):
    smote_plan(X, LAB, TRAIN, seed=0)
    fed = rows_of(smote_spy[0][0])
    assert np.array_equal(np.sort(fed), TRAIN)
    assert (PAR[fed] >= 0).sum() > 0


def test_parents_are_training_rows_of_the_same_class_and_near_each_other():
    plan = smote_plan(X, LAB, TRAIN, seed=0, parents=PAR)
    assert len(plan) > 0 and plan.k_neighbors == 5
    for p in (plan.parent_a, plan.parent_b):
        assert np.isin(p, TRAIN).all() and np.all(PAR[p] == -1)
        assert np.array_equal(LAB[p], plan.label)
    assert np.all(plan.parent_a != plan.parent_b)
    assert np.all((plan.weight >= 0) & (plan.weight < 1))
    # parent_b is one of the 5 nearest same-class training inputs of parent_a
    for a, b, c in zip(plan.parent_a, plan.parent_b, plan.label, strict=True):
        pool = plan.inputs[LAB[plan.inputs] == c]
        d = np.linalg.norm(X[pool] - X[a], axis=1)
        assert b in pool[np.argsort(d)[1:6]]
    # every class is raised to the majority count of the inputs
    counts = np.bincount(LAB[plan.inputs], minlength=3) + np.bincount(plan.label, minlength=3)
    assert np.all(counts == counts.max())
    assert np.bincount(plan.label, minlength=3)[np.argmax(np.bincount(LAB[plan.inputs]))] == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rebuild_equals_imblearn_output(smote_spy, dtype):
    x = X.astype(dtype)
    plan = smote_plan(x, LAB, TRAIN, seed=4, parents=PAR)
    _, _, x_res, y_res = smote_spy[0]
    n_in = plan.inputs.size
    rebuilt = rebuild_smote(x, plan)
    assert rebuilt.dtype == dtype and rebuilt.shape == (len(plan), 8)
    assert np.allclose(rebuilt, x_res[n_in:], rtol=0, atol=1e-12 if dtype == np.float64 else 1e-6)
    assert np.array_equal(y_res[n_in:], plan.label)


def test_rebuild_any_per_row_array_reading_only_the_parents():
    plan = smote_plan(X, LAB, TRAIN, seed=1, parents=PAR)
    frames = np.random.default_rng(9).integers(0, 255, size=(X.shape[0], 2, 3), dtype=np.uint8)

    class Spy:
        shape, dtype = frames.shape, frames.dtype

        def __init__(self):
            self.read = []

        def __getitem__(self, idx):
            self.read.append(np.array(idx))
            return frames[idx]

    spy = Spy()
    out = rebuild_smote(spy, plan)
    assert out.shape == (len(plan), 2, 3) and out.dtype == np.float64
    j = len(plan) // 2
    a, b, w = plan.parent_a[j], plan.parent_b[j], plan.weight[j]
    want = frames[a].astype(float) + w * (frames[b].astype(float) - frames[a].astype(float))
    assert np.allclose(out[j], want)
    assert len(spy.read) == 1
    assert np.array_equal(spy.read[0], np.union1d(plan.parent_a, plan.parent_b))
    assert spy.read[0].size < X.shape[0]


def test_same_seed_same_plan_other_seed_other_plan():
    a = smote_plan(X, LAB, TRAIN, seed=7, parents=PAR)
    b = smote_plan(X, LAB, TRAIN, seed=7, parents=PAR)
    c = smote_plan(X, LAB, TRAIN, seed=8, parents=PAR)
    for f in ("parent_a", "parent_b", "weight", "label"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.weight, c.weight)


def test_small_class_lowers_k_and_singleton_class_refuses():
    lab = np.array([0] * 10 + [1] * 3 + [2] * 6)
    x = np.random.default_rng(0).normal(size=(lab.size, 4))
    plan = smote_plan(x, lab, np.arange(lab.size), seed=0, k_neighbors=5)
    assert isinstance(plan, SmotePlan) and plan.k_neighbors == 2
    assert np.array_equal(np.bincount(plan.label, minlength=3), [0, 7, 4])
    lab[10:12] = 0  # class 1 now has a single sample
    with pytest.raises(ValueError, match="single training sample"):
        smote_plan(x, lab, np.arange(lab.size), seed=0)

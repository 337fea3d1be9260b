"""Splits never put a subject, or an augmented copy and its parent, on both sides."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mer_prep.evaluation.splits import (
    Split,
    group_kfold,
    loso,
    megc2019_loso,
    random_split,
    stratified_group_kfold,
)


def make_table(n_subjects: int = 12, seed: int = 0, datasets=("casme2", "samm")):
    """Synthetic sample table: uneven clips per subject, 0-3 augmented children per clip,
    3 classes, rows shuffled so children are not simply appended after their parents."""
    rng = np.random.default_rng(seed)
    subj, ds, lab = [], [], []
    for s in range(n_subjects):
        d = datasets[s * len(datasets) // n_subjects]
        for _ in range(2 + (s * 7) % 6):  # 2..7 clips
            subj.append(f"{d}/sub{s:02d}")
            ds.append(d)
            lab.append(int(rng.integers(3)))
    n_orig = len(subj)
    par = [-1] * n_orig
    for i in range(n_orig):
        for _ in range(i % 4):
            subj.append(subj[i])
            ds.append(ds[i])
            lab.append(lab[i])
            par.append(i)
    perm = rng.permutation(len(subj))  # new row r holds old row perm[r]
    new_of_old = np.argsort(perm)
    par = np.asarray(par)[perm]
    par = np.where(par >= 0, new_of_old[np.maximum(par, 0)], -1)
    return (
        np.asarray(subj)[perm],
        np.asarray(lab, dtype=np.int64)[perm],
        par.astype(np.int64),
        np.asarray(ds)[perm],
    )


SUBJ, LAB, PAR, DS = make_table()
N = SUBJ.size
CHILD = np.flatnonzero(PAR >= 0)

GROUP_SPLITS = {
    "loso": lambda: loso(SUBJ, PAR),
    "group_kfold": lambda: group_kfold(SUBJ, 4, PAR),
    "group_kfold_seeded": lambda: group_kfold(SUBJ, 4, PAR, seed=3),
    "stratified_group_kfold": lambda: stratified_group_kfold(SUBJ, LAB, 4, seed=0, parents=PAR),
}


def test_table_is_what_the_tests_assume():
    assert np.unique(SUBJ).size == 12 and set(DS) == {"casme2", "samm"}
    assert CHILD.size > 50 and np.all(PAR[PAR[CHILD]] == -1)
    assert np.all(SUBJ[CHILD] == SUBJ[PAR[CHILD]])
    assert np.unique(np.unique(SUBJ[PAR == -1], return_counts=True)[1]).size > 3  # uneven


@pytest.mark.parametrize("make", GROUP_SPLITS.values(), ids=GROUP_SPLITS.keys())
def test_group_splits_never_share_a_subject(make):
    split = make()
    assert not split.leaky
    for _, train, test in split.folds():
        assert test.size > 0
        assert not set(SUBJ[train]) & set(SUBJ[test])


@pytest.mark.parametrize(
    "make",
    [*GROUP_SPLITS.values(), lambda: random_split(LAB, 4, seed=0, parents=PAR, leaky=True)],
    ids=[*GROUP_SPLITS.keys(), "random"],
)
def test_children_follow_parent_and_every_row_tested_once(make):
    split = make()
    assert split.test_fold.shape == (N,) and split.test_fold.dtype == np.int64
    assert np.array_equal(split.test_fold[CHILD], split.test_fold[PAR[CHILD]])
    tested = []
    for _, train, test in split.folds():
        assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)  # sorted, unique
        assert np.intersect1d(train, test).size == 0
        assert train.size + test.size == N
        test_set = set(test.tolist())
        # no augmented copy in train whose parent is tested, and vice versa
        assert not any(PAR[c] in test_set for c in train if PAR[c] >= 0)
        assert not any(PAR[c] in set(train.tolist()) for c in test if PAR[c] >= 0)
        tested.append(test)
    assert np.array_equal(np.sort(np.concatenate(tested)), np.arange(N))


def test_loso_one_fold_per_subject_named_by_it():
    split = loso(SUBJ, PAR)
    assert split.kind == "loso" and split.n_folds == 12
    assert split.fold_names == tuple(sorted(set(SUBJ)))
    for name, train, test in split.folds():
        assert set(SUBJ[test]) == {name}
        assert name not in set(SUBJ[train])
        assert test.size == np.sum(SUBJ == name)


def test_stratified_group_kfold_keeps_class_proportions():
    # 40 subjects so that whole-subject folds can be balanced at all.
    subj, lab, par, _ = make_table(n_subjects=40, seed=1)
    overall = np.bincount(lab[par == -1], minlength=3) / np.sum(par == -1)

    def worst_deviation(split):
        dev = 0.0
        for _, _, test in split.folds():
            orig = test[par[test] == -1]
            dev = max(dev, np.abs(np.bincount(lab[orig], minlength=3) / orig.size - overall).max())
        return dev

    strat = worst_deviation(stratified_group_kfold(subj, lab, 4, seed=0, parents=par))
    plain = worst_deviation(group_kfold(subj, 4, par))
    # Measured on this table: 0.034 stratified (0.017-0.035 over seeds 0-3) vs 0.0625 for
    # plain GroupKFold, i.e. every fold's class share within 3.5 points of the overall one.
    assert strat < 0.045
    assert strat < plain


def test_seeded_splits_are_deterministic():
    a = stratified_group_kfold(SUBJ, LAB, 4, seed=5, parents=PAR)
    b = stratified_group_kfold(SUBJ, LAB, 4, seed=5, parents=PAR)
    c = stratified_group_kfold(SUBJ, LAB, 4, seed=6, parents=PAR)
    assert np.array_equal(a.test_fold, b.test_fold) and a.seed == 5
    assert not np.array_equal(a.test_fold, c.test_fold)


def test_random_split_refuses_unless_leaky():
    with pytest.raises(ValueError, match="same subject"):
        random_split(LAB, 4, seed=0, parents=PAR)


def test_random_split_is_leaky_and_says_so():
    split = random_split(LAB, 4, seed=0, parents=PAR, leaky=True)
    assert split.leaky and split.kind == "random"
    shared = [set(SUBJ[train]) & set(SUBJ[test]) for _, train, test in split.folds()]
    assert all(shared)  # every fold tests on subjects it also trains on
    for _, _, test in split.folds():  # stratified over originals: within one clip per class
        orig = test[PAR[test] == -1]
        expected = np.bincount(LAB[PAR == -1], minlength=3) / 4
        assert np.all(np.abs(np.bincount(LAB[orig], minlength=3) - expected) <= 1)


def make_megc_table():
    """16 SMIC + 24 CASME II + 28 SAMM labelled subjects, plus rows the protocol must drop."""
    subj, ds, lab = [], [], []
    for d, k in (("smic", 16), ("casme2", 24), ("samm", 28)):
        for s in range(k):
            for c in range(1 + s % 3):
                subj.append(f"{d}/s{s:02d}")
                ds.append(d)
                lab.append(c % 3)
            subj.append(f"{d}/s{s:02d}")  # an 'others' clip the megc3 scheme dropped
            ds.append(d)
            lab.append(-1)
    for d, s in (("casme2", "casme2/only_others"), ("casme1", "casme1/sub01")):
        subj += [s, s]
        ds += [d, d]
        lab += [-1, -1] if d == "casme2" else [0, 1]
    n = len(subj)
    par = [-1] * n + [0, 0, 5, n - 1]  # children of two kept rows and of a casme1 row
    subj += [subj[0], subj[0], subj[5], subj[n - 1]]
    ds += [ds[0], ds[0], ds[5], ds[n - 1]]
    lab += [lab[0], lab[0], lab[5], lab[n - 1]]
    return np.asarray(subj), np.asarray(ds), np.asarray(lab, dtype=np.int64), np.asarray(par)


def test_megc2019_loso_has_68_folds_and_drops_the_rest():
    subj, ds, lab, par = make_megc_table()
    split = megc2019_loso(subj, ds, lab, parents=par)
    assert split.kind == "megc2019" and split.n_folds == 68
    assert "casme2/only_others" not in split.fold_names
    assert not any(f.startswith("casme1/") for f in split.fold_names)
    orig_out = (par == -1) & ((lab < 0) | (ds == "casme1"))
    out = orig_out | ((par >= 0) & orig_out[np.maximum(par, 0)])
    assert np.array_equal(split.test_fold == -1, out)
    assert out[-1] and not out[-2]  # the casme1 child is out, the smic children are in
    seen = []
    for name, train, test in split.folds():
        assert set(subj[test]) == {name} and name not in set(subj[train])
        assert not out[train].any() and not out[test].any()
        seen.append(test)
    assert np.array_equal(np.sort(np.concatenate(seen)), np.flatnonzero(~out))


def test_split_metadata_round_trips_and_array_is_read_only():
    split = stratified_group_kfold(SUBJ, LAB, 3, seed=2, parents=PAR)
    meta = json.loads(json.dumps(split.to_dict()))
    again = Split.from_dict(meta, np.array(split.test_fold))
    assert again.to_dict() == split.to_dict() == meta
    assert np.array_equal(again.test_fold, split.test_fold)
    with pytest.raises(ValueError):
        split.test_fold[0] = 1
    with pytest.raises(ValueError, match="rows"):
        Split.from_dict(meta, split.test_fold[:-1])


def test_bad_parents_are_refused():
    par = PAR.copy()
    par[CHILD[0]] = CHILD[1]  # a copy of a copy
    with pytest.raises(ValueError, match="original"):
        loso(SUBJ, par)
    subj = SUBJ.copy()
    subj[CHILD[0]] = "samm/someone_else"
    with pytest.raises(ValueError, match="augmented copy"):
        group_kfold(subj, 3, PAR)

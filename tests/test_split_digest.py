"""Stored splits are as safe as the features: a flipped bit in any file a split's commit wrote
raises a ``MerPrepError`` on read (and ``mer-prep verify`` reports it) or changes nothing; a
split never reads back as other folds, class weights or SMOTE plans. Splits written before
checksums still read, and verify calls them that rather than broken."""

from __future__ import annotations

from pathlib import Path

import pytest
import zarr
from click.testing import CliRunner
from flipped_bits import flip_bits, repository_files
from test_store import make_plan, write_version

from mer_prep.cli import main
from mer_prep.errors import CorruptDataError
from mer_prep.evaluation.splits import build_split
from mer_prep.store import open_store
from mer_prep.store.repo import open_repository
from mer_prep.store.splits import save_split
from mer_prep.store.verify import verify_store


def _split_store(path: Path, kind: str = "group_kfold") -> list[Path]:
    """9 clips of 3 subjects, labels alternating (5 happiness, 4 disgust), and a 3-fold split
    with SMOTE on the frames committed; the files the split's commit wrote (or rewrote: the ref
    of main)."""
    write_version(make_plan(path, n=9))
    version = repository_files(path)
    store = open_store(path)
    save_split(store, build_split(store.table, kind, n_splits=3), smote_features="frames")
    return sorted(p for p, data in repository_files(path).items() if version.get(p) != data)


def _everything(path: Path, name: str = "group_kfold"):
    """What a reader takes from the split: attributes, folds, class weights, SMOTE plans."""
    store = open_store(path)
    made = store.split(name)
    folds = [
        (fold, train.tolist(), test.tolist(), weights.tolist())
        for fold, train, test, weights in store.folds(name)
    ]
    plans = [store.smote(name, fold) for fold in made.fold_names]
    return (
        store.split_attrs(name),
        made.test_fold.tolist(),
        folds,
        [
            (p.parent_a.tolist(), p.parent_b.tolist(), p.weight.tolist(), p.label.tolist())
            for p in plans
        ],
    )


def test_every_flipped_bit_in_a_split_raises_or_changes_nothing(tmp_path):
    """Single bits flipped at random in the snapshot, manifest, chunk, ref and transaction
    files the split's commit wrote: 0 silent differences. Before split digests, 100 flips gave
    2 silent differences (other attributes) and 60 non-MerPrepError exceptions (exit 70)."""
    path = tmp_path / "s"
    written = _split_store(path)  # the split's arrays are small: inlined into its manifests
    assert any("manifests" in str(p) for p in written) and any("refs" in str(p) for p in written)
    expected = _everything(path)
    assert sum(len(plan[0]) for plan in expected[3]) > 0  # SMOTE made samples to protect
    assert verify_store(path) == []
    outcomes = flip_bits(written, 30, lambda: _everything(path), lambda back: back == expected)
    assert outcomes["raised"] >= 10, outcomes
    assert _everything(path) == expected and verify_store(path) == []


def test_a_changed_fold_assignment_is_caught_and_split_smote_says_what_it_made(tmp_path):
    """`split --smote` prints the SMOTE samples per fold and class it stored; a test_fold
    rewritten afterwards (what a lost chunk or a flipped manifest bit does) no longer reads."""
    path = tmp_path / "s"
    write_version(make_plan(path, n=9))
    result = CliRunner().invoke(main, ["split", str(path), "--kind", "loso", "--smote", "frames"])
    assert result.exit_code == 0, result.output
    store = open_store(path)
    made = {fold: len(store.smote("loso", fold).label) for fold in store.split("loso").fold_names}
    assert f"{sum(made.values())} synthetic samples over 3 training folds" in result.output
    assert sum(made.values()) > 0 and "disgust +" in result.output
    session = open_repository(path).writable_session("main")
    folds = zarr.open_group(session.store, mode="r+")["splits/loso/test_fold"]
    folds[0] = (folds[0] + 1) % 3
    session.commit("move row 0 to another fold")
    with pytest.raises(CorruptDataError, match="array 'test_fold' reads back other values"):
        open_store(path).split("loso")
    (finding,) = verify_store(path)
    assert finding.array == "splits/loso" and "test_fold" in finding.problem
    result = CliRunner().invoke(main, ["verify", str(path)])
    assert result.exit_code == 3 and "broken: main: splits/loso" in result.output

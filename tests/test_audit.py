"""Leakage audit: planted leaks on hand-made tables, pHash properties, synthetic faces."""

from __future__ import annotations

import numpy as np
import pytest

from mer_prep.evaluation.audit import (
    DEFAULT_HASH_THRESHOLD,
    audit_split,
    family_roots,
    hamming,
    perceptual_hash,
)

# 4 subjects x 2 originals, then 2 augmented copies (rows 8, 9) of rows 0 and 2.
SUBJECTS = np.array(
    ["d/s1", "d/s1", "d/s2", "d/s2", "d/s3", "d/s3", "d/s4", "d/s4", "d/s1", "d/s2"]
)
IDS = np.array([f"id{i}" for i in range(10)])
PARENTS = np.array([-1] * 8 + [0, 2], np.int64)
LOSO = np.array([0, 0, 1, 1, 2, 2, 3, 3, 0, 1], np.int64)
FOLDS = ["s1", "s2", "s3", "s4"]


def _checks(report):
    return {c: n for c, n in report.counts().items() if n}


def test_clean_loso_passes():
    smote = {0: (np.array([2, 4]), np.array([3, 6])), 3: (np.array([0]), np.array([5]))}
    report = audit_split(IDS, SUBJECTS, PARENTS, LOSO, FOLDS, smote=smote)
    assert report.ok, report.to_text()
    assert report.checks_run == ("subject_overlap", "parent_child", "smote_test_parent")
    assert "OK" in report.to_text() and "skipped" in report.to_text()


def test_subject_overlap_fires_on_planted_row_only():
    tf = LOSO.copy()
    tf[5] = 0  # s3's second clip tested with s1: s3 is on both sides of folds 0 and 2
    report = audit_split(IDS, SUBJECTS, PARENTS, tf, FOLDS)
    assert _checks(report) == {"subject_overlap": 2}
    f0, f2 = report.findings
    assert (f0.fold, set(f0.rows)) == ("s1", {5, 4})
    assert (f2.fold, set(f2.rows)) == ("s3", {4, 5})
    assert "d/s3" in f0.detail


def test_parent_child_fires_on_planted_row_only():
    subjects = SUBJECTS.copy()
    subjects[9] = "d/s9"  # keep the subject check quiet: only the family link leaks
    tf = LOSO.copy()
    tf[9] = 3  # augmented copy of row 2 (tested in fold 1) tested in fold 3
    report = audit_split(IDS, subjects, PARENTS, tf, FOLDS)
    assert _checks(report) == {"parent_child": 1}
    (f,) = report.findings
    assert f.rows == (9, 2) and f.fold == "s2, s4"
    # A child never tested while its parent is tested also leaks.
    tf[9] = -1
    (f,) = audit_split(IDS, subjects, PARENTS, tf, FOLDS).by_check("parent_child")
    assert f.rows == (9, 2) and "never tested" in f.detail


def test_smote_test_parent_fires_on_planted_sample_only():
    smote = {1: (np.array([0, 4, 6]), np.array([1, 3, 7]))}  # sample 1 uses row 3 (fold 1 test)
    report = audit_split(IDS, SUBJECTS, PARENTS, LOSO, FOLDS, smote=smote)
    assert _checks(report) == {"smote_test_parent": 1}
    (f,) = report.findings
    assert f.fold == "s2" and f.rows == (3,) and "synthetic sample 1" in f.detail
    with pytest.raises(ValueError):
        audit_split(IDS, SUBJECTS, PARENTS, LOSO, FOLDS, smote={7: ([0], [1])})


def _smooth_images(n, seed, size=64):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        img = np.zeros((size, size))
        for _ in range(6):
            fx, fy, ph = rng.uniform(0.5, 4, 2).tolist() + [rng.uniform(0, 2 * np.pi)]
            img += rng.normal() * np.cos(2 * np.pi * (fx * xx + fy * yy) + ph)
        out.append((img - img.min()) / (img.max() - img.min()))
    return np.stack(out)


def test_near_duplicate_fires_on_planted_copy_only():
    images = _smooth_images(10, seed=1)
    images[6] = np.clip(images[1] + 0.01 * np.random.default_rng(2).normal(size=(64, 64)), 0, 1)
    images[8] = images[0]  # augmented copy of row 0: same family, never a finding
    subjects = SUBJECTS.copy()
    subjects[6] = "d/s9"  # a relabelled duplicate: only the hash can catch it
    tf = LOSO.copy()
    report = audit_split(IDS, subjects, PARENTS, tf, FOLDS, images=images, hash_threshold=4)
    assert _checks(report) == {"near_duplicate": 2}, report.to_text()
    assert {(f.fold, f.rows) for f in report.findings} == {("s1", (1, 6)), ("s4", (6, 1))}
    assert "near_duplicate" in report.to_text() and "threshold 4" in report.to_text()


def test_family_roots():
    assert family_roots(np.array([-1, 0, 1, -1, 3])).tolist() == [0, 0, 0, 3, 3]
    with pytest.raises(ValueError):
        family_roots(np.array([1, 0]))
    with pytest.raises(ValueError):
        family_roots(np.array([5]))


def test_phash_properties():
    images = _smooth_images(20, seed=3)
    h = perceptual_hash(images)
    assert h.dtype == np.uint64 and h.shape == (20,)
    assert perceptual_hash(images[0]).shape == (1,)
    d = hamming(h, h)
    assert d.shape == (20, 20) and (np.diag(d) == 0).all() and (d == d.T).all()
    # Identical image, brightness/contrast change, float16 storage: same hash.
    assert hamming(perceptual_hash(images[:1]), perceptual_hash(0.5 * images[:1] + 0.2))[0, 0] == 0
    assert (perceptual_hash(images.astype(np.float16)) == h).all()
    # Small noise: small distance; other images: large distance.
    noisy = np.clip(images + 0.02 * np.random.default_rng(4).normal(size=images.shape), 0, 1)
    near = np.diag(hamming(h, perceptual_hash(noisy)))
    assert near.max() <= 6
    far = d[np.triu_indices(20, 1)]
    assert far.min() >= 12 and far.mean() > 24


def test_hamming_matches_bit_count():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 2**63, 7, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, 5, dtype=np.uint64)
    expect = [[bin(int(x) ^ int(y)).count("1") for y in b] for x in a]
    assert hamming(a, b).tolist() == expect


@pytest.fixture(scope="module")
def synthetic_onsets(synth_dataset):
    """Aligned onset frames of a synthetic CASME II look-alike (8 subjects x 3 clips, seed 0)."""
    from mer_prep.datasets import scan_dataset
    from mer_prep.pipeline.process import process_sample
    from mer_prep.recipes import load_recipe

    root, _ = synth_dataset("casme2", n_subjects=8, clips_per_subject=3, seed=0, size=(240, 320))
    samples = scan_dataset("casme2", root).samples
    frames = {}
    for name in ("mbcc64", "dacwb3d"):
        recipe = load_recipe(name)
        frames[name] = np.stack([process_sample(s, recipe).arrays["frames"][0] for s in samples])
    return [s.sample_id for s in samples], np.array([s.subject for s in samples]), frames


@pytest.mark.parametrize("recipe", ["mbcc64", "dacwb3d"])
def test_synthetic_loso_passes_and_random_split_is_flagged(synthetic_onsets, recipe):
    ids, subjects, frames = synthetic_onsets
    images = frames[recipe]
    assert images.shape[1:] == ((64, 64) if recipe == "mbcc64" else (128, 128))
    n = len(ids)
    parents = np.full(n, -1, np.int64)
    names = sorted(set(subjects.tolist()))
    loso = np.array([names.index(s) for s in subjects], np.int64)
    report = audit_split(ids, subjects, parents, loso, names, images=images)
    assert report.ok, report.to_text()
    assert report.hash_threshold == DEFAULT_HASH_THRESHOLD

    # Sample-level random 4-fold split: every subject ends up on both sides of some fold.
    random = np.random.default_rng(0).permutation(n) % 4
    report = audit_split(ids, subjects, parents, random, ["f0", "f1", "f2", "f3"], images=images)
    counts = report.counts()
    assert counts["subject_overlap"] > 0 and counts["near_duplicate"] > 0, report.to_text()
    for f in report.by_check("near_duplicate"):
        a, b = f.rows
        assert subjects[a] == subjects[b], f  # only true clip siblings are flagged

"""Leakage audit of a split: pure functions over the sample table's columns.

    report = audit_split(sample_ids, subjects, parents, split.test_fold, split.fold_names,
                         images=onset_frames, smote={0: (parent_a, parent_b)})
    print(report.to_text()); assert report.ok

Rows are the rows of the store's sample table. In fold ``f`` the rows with ``test_fold == f``
are tested and every other row is trained on. Four checks, each finding naming its rows:

``subject_overlap``
    a subject with rows on both sides of a fold;
``parent_child``
    an augmented row (``parents[i] >= 0``) on the other side of a fold from its parent;
``smote_test_parent``
    a synthetic sample of fold ``f`` (made for f's training set) interpolated from a row that
    is tested in fold ``f``;
``near_duplicate``
    a test row and a train row of the same fold whose perceptual hashes are within
    ``hash_threshold`` bits and that are not of one clip family (a row and its augmented copies,
    following ``parents`` to the root).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import scipy.fft

from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.splits import TRAIN_ONLY

__all__ = [
    "CHECKS",
    "DEFAULT_HASH_THRESHOLD",
    "AuditFinding",
    "AuditReport",
    "perceptual_hash",
    "hamming",
    "family_roots",
    "audit_split",
]

CHECKS = ("subject_overlap", "parent_child", "smote_test_parent", "near_duplicate")

# Threshold, MEASURED on aligned onset frames of synthetic CASME II look-alikes
# (generate_dataset("casme2", n_subjects=8, clips_per_subject=3, size=(240, 320)), seeds 0, 1, 2;
# 72 same-subject and 756 different-subject pairs per recipe). Distances are always even: every
# hash has exactly 31 of its 63 AC bits set.
#   same subject, other clip: often 0 bits, at most 4-8;
#   different subjects: at least 2-4 bits (mbcc64 64x64 and dacwb3d 128x128 masked alike),
#   mean 17-22.
# Every synthetic subject is one photograph; alignment undoes placement and identity warp, so
# what tells them apart is tone, gamma, lighting, mirroring and their shading patches
# (synth.faces.Subject.shading — without those, different subjects hashed identically on 2 of
# 3 seeds). The distributions still touch (2-4 vs up to 8), so the default flags identical
# hashes only (0 bits): it passes LOSO on all three seeds and flags a sample-level split,
# whose same-subject clips collide. Real recordings of different people should sit far
# higher; re-measure on real data before raising it.
DEFAULT_HASH_THRESHOLD = 0

_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], np.uint8)
_BIT_WEIGHTS = (np.uint64(1) << np.arange(64, dtype=np.uint64)).astype(np.uint64)


def perceptual_hash(images: np.ndarray) -> np.ndarray:
    """64-bit DCT perceptual hash (pHash) of each image.

    images: (n, H, W) or (H, W) grayscale, any real dtype (e.g. float16 in [0, 1]; the hash only
    depends on the ordering of DCT coefficients, so the scale does not matter). Each image is
    area-resized to 32x32, transformed by an orthonormal 2-D DCT-II, and the 8x8 lowest
    frequencies are compared with the median of its 63 non-DC coefficients: bit ``8*u + v`` is
    set when coefficient ``(u, v)`` is above that median. Bit 0 (the DC term, i.e. brightness)
    is always 0. Returns (n,) uint64 (a scalar-shaped (1,) array for one image).
    """
    arr = np.asarray(images)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InvalidArgumentError(f"images must be (n, H, W) or (H, W), got shape {arr.shape}")
    n = arr.shape[0]
    if n == 0:
        return np.zeros(0, np.uint64)
    small = np.empty((n, 32, 32), np.float64)
    for i in range(n):
        img = np.asarray(arr[i], np.float32)
        if not np.all(np.isfinite(img)):
            raise InvalidArgumentError(f"image {i} has non-finite pixels")
        small[i] = cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA)
    low = scipy.fft.dctn(small, type=2, axes=(1, 2), norm="ortho")[:, :8, :8].reshape(n, 64)
    ac = low[:, 1:]
    bits = np.zeros((n, 64), bool)
    bits[:, 1:] = ac > np.median(ac, axis=1, keepdims=True)
    return (bits.astype(np.uint64) * _BIT_WEIGHTS).sum(axis=1, dtype=np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances between 64-bit hashes: (n,) x (m,) uint64 -> (n, m) int64."""
    a = np.ascontiguousarray(np.asarray(a, np.uint64).reshape(-1))
    b = np.ascontiguousarray(np.asarray(b, np.uint64).reshape(-1))
    out = np.empty((a.size, b.size), np.int64)
    # XOR of a row block against all of b, bytes counted through a 256-entry table; blocks keep
    # the (rows, m, 8) byte view near 64 MiB.
    step = max(1, (8 << 20) // max(1, b.size))
    for start in range(0, a.size, step):
        x = a[start : start + step, None] ^ b[None, :]
        out[start : start + step] = _POPCOUNT8[x.view(np.uint8).reshape(*x.shape, 8)].sum(
            axis=-1, dtype=np.int64
        )
    return out


def family_roots(parents: np.ndarray) -> np.ndarray:
    """Root original of every row, following ``parents`` (-1 = original). (n,) int64.

    Raises ValueError on an out-of-range parent or a cycle.
    """
    parents = np.asarray(parents, np.int64).reshape(-1)
    n = parents.size
    bad = (parents < -1) | (parents >= n)
    if bad.any():
        raise InvalidArgumentError(
            f"parents out of range at rows {np.flatnonzero(bad)[:10].tolist()}"
        )
    roots = np.arange(n, dtype=np.int64)
    current = parents.copy()
    for _ in range(n + 1):
        has = current >= 0
        if not has.any():
            return roots
        roots[has] = current[has]
        current[has] = parents[current[has]]
    raise InvalidArgumentError("parents contain a cycle")


@dataclass(frozen=True)
class AuditFinding:
    """One leak: which check, in which fold (its name), what, and the table rows involved."""

    check: str
    fold: str
    detail: str
    rows: tuple[int, ...]


@dataclass
class AuditReport:
    """Findings of ``audit_split``; ``checks_run`` lists the checks that had their inputs."""

    findings: list[AuditFinding]
    n_folds: int
    n_rows: int
    checks_run: tuple[str, ...]
    hash_threshold: int | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def counts(self) -> dict[str, int]:
        c = Counter(f.check for f in self.findings)
        return {check: c.get(check, 0) for check in CHECKS}

    def by_check(self, check: str) -> list[AuditFinding]:
        return [f for f in self.findings if f.check == check]

    def to_text(self, max_examples: int = 5) -> str:
        lines = [
            f"leakage audit: {self.n_rows} rows, {self.n_folds} folds: "
            + ("OK" if self.ok else f"{len(self.findings)} finding(s)")
        ]
        counts = self.counts()
        for check in CHECKS:
            if check in self.checks_run:
                extra = (
                    f" (threshold {self.hash_threshold} bits)" if check == "near_duplicate" else ""
                )
                lines.append(f"  {check:<18} {counts[check]:>6}{extra}")
            else:
                lines.append(f"  {check:<18} skipped: {self.skipped.get(check, 'no input')}")
        for check in CHECKS:
            found = self.by_check(check)
            if not found:
                continue
            lines.append(f"{check}:")
            for f in found[:max_examples]:
                rows = ", ".join(map(str, f.rows[:12])) + (", ..." if len(f.rows) > 12 else "")
                lines.append(f"  [{f.fold}] {f.detail} (rows {rows})")
            if len(found) > max_examples:
                lines.append(f"  ... and {len(found) - max_examples} more")
        return "\n".join(lines)


def _fold_name(fold_names: Sequence[str], f: int) -> str:
    return str(fold_names[f])


def audit_split(
    sample_ids: Sequence[str] | np.ndarray,
    subjects: Sequence[str] | np.ndarray,
    parents: np.ndarray,
    test_fold: np.ndarray,
    fold_names: Sequence[str],
    *,
    images: np.ndarray | None = None,
    hashes: np.ndarray | None = None,
    smote: Mapping[int, tuple[np.ndarray, np.ndarray]] | None = None,
    hash_threshold: int = DEFAULT_HASH_THRESHOLD,
) -> AuditReport:
    """Audit a split for leaks between train and test (see the module docstring).

    sample_ids, subjects: (n,) str. parents: (n,) int64, -1 for originals. test_fold: (n,)
    int64 in ``[-2, len(fold_names))``; -1 = left out by the protocol (never trained on or
    tested), -2 (``TRAIN_ONLY``) = trained on in every fold, never tested.
    images: optional (n, H, W) per-row image (e.g. the aligned onset frame) for the
    near-duplicate check, or ``hashes`` (n,) uint64 from ``perceptual_hash`` directly.
    smote: optional {fold index: (parent_a (m,), parent_b (m,))} row indices each synthetic
    training sample of that fold was interpolated from. Pairs within ``hash_threshold`` bits
    (inclusive) are near-duplicates unless they share a clip family (``family_roots``).
    """
    ids = np.asarray(sample_ids).astype(str).reshape(-1)
    subj = np.asarray(subjects).astype(str).reshape(-1)
    parents = np.asarray(parents, np.int64).reshape(-1)
    test_fold = np.asarray(test_fold, np.int64).reshape(-1)
    n = ids.size
    n_folds = len(fold_names)
    for name, col in (("subjects", subj), ("parents", parents), ("test_fold", test_fold)):
        if col.size != n:
            raise InvalidArgumentError(f"{name} has {col.size} rows, sample_ids has {n}")
    if n and (test_fold.min() < TRAIN_ONLY or test_fold.max() >= n_folds):
        raise InvalidArgumentError(
            f"test_fold outside [{TRAIN_ONLY}, {n_folds}) for {n_folds} fold names"
        )
    roots = family_roots(parents)
    findings: list[AuditFinding] = []
    checks_run = ["subject_overlap", "parent_child"]
    skipped: dict[str, str] = {}

    # 1. subject overlap: in fold f a subject with test rows and train rows.
    for f in range(n_folds):
        test = test_fold == f
        if not test.any():
            continue
        test_subjects = set(subj[test].tolist())
        train_subjects = set(subj[~test].tolist())
        for s in sorted(test_subjects & train_subjects):
            rows_test = np.flatnonzero(test & (subj == s))
            rows_train = np.flatnonzero(~test & (subj == s))
            findings.append(
                AuditFinding(
                    "subject_overlap",
                    _fold_name(fold_names, f),
                    f"subject {s}: {rows_test.size} test row(s), {rows_train.size} train row(s)",
                    tuple(int(r) for r in np.concatenate([rows_test, rows_train])),
                )
            )

    # 2. parent/child: a child tested in another fold than its parent (or one never tested).
    for child in np.flatnonzero((parents >= 0) & (test_fold != test_fold[np.maximum(parents, 0)])):
        parent = int(parents[child])
        folds = sorted({int(test_fold[child]), int(test_fold[parent])} - {-1, TRAIN_ONLY})
        names = ", ".join(_fold_name(fold_names, f) for f in folds)
        findings.append(
            AuditFinding(
                "parent_child",
                names,
                f"augmented {ids[child]} (fold {_side(fold_names, test_fold[child])}) and its "
                f"parent {ids[parent]} (fold {_side(fold_names, test_fold[parent])}) are split "
                "apart",
                (int(child), parent),
            )
        )

    # 3. SMOTE parents tested in the fold the synthetic sample trains.
    if smote is None:
        skipped["smote_test_parent"] = "no SMOTE provenance given"
    else:
        checks_run.append("smote_test_parent")
        for f, (pa, pb) in sorted(smote.items()):
            f = int(f)
            if not 0 <= f < n_folds:
                raise InvalidArgumentError(
                    f"SMOTE provenance for fold {f}, split has {n_folds} folds"
                )
            pa = np.asarray(pa, np.int64).reshape(-1)
            pb = np.asarray(pb, np.int64).reshape(-1)
            if pa.size != pb.size:
                raise InvalidArgumentError(
                    f"fold {f}: parent_a has {pa.size} entries, parent_b {pb.size}"
                )
            both = np.concatenate([pa, pb])
            if both.size and (both.min() < 0 or both.max() >= n):
                raise InvalidArgumentError(f"fold {f}: SMOTE parent rows outside [0, {n})")
            leaked = (test_fold[pa] == f) | (test_fold[pb] == f)
            for k in np.flatnonzero(leaked):
                bad = [int(r) for r in (pa[k], pb[k]) if test_fold[r] == f]
                findings.append(
                    AuditFinding(
                        "smote_test_parent",
                        _fold_name(fold_names, f),
                        f"synthetic sample {int(k)} interpolated from test row(s) "
                        + ", ".join(ids[r] for r in bad),
                        tuple(bad),
                    )
                )

    # 4. near-duplicate frames across train/test of a fold, outside one clip family.
    if hashes is None and images is not None:
        images = np.asarray(images)
        if images.shape[0] != n:
            raise InvalidArgumentError(f"images has {images.shape[0]} rows, sample_ids has {n}")
        hashes = perceptual_hash(images)
    if hashes is None:
        skipped["near_duplicate"] = "no images given"
    else:
        hashes = np.asarray(hashes, np.uint64).reshape(-1)
        if hashes.size != n:
            raise InvalidArgumentError(f"hashes has {hashes.size} rows, sample_ids has {n}")
        checks_run.append("near_duplicate")
        for f in range(n_folds):
            test_rows = np.flatnonzero(test_fold == f)
            train_rows = np.flatnonzero((test_fold != f) & (test_fold != -1))
            if not test_rows.size or not train_rows.size:
                continue
            dist = hamming(hashes[test_rows], hashes[train_rows])
            close = (dist <= hash_threshold) & (roots[test_rows, None] != roots[None, train_rows])
            for i, j in zip(*np.nonzero(close), strict=True):
                a, b = int(test_rows[i]), int(train_rows[j])
                findings.append(
                    AuditFinding(
                        "near_duplicate",
                        _fold_name(fold_names, f),
                        f"test {ids[a]} ({subj[a]}) ~ train {ids[b]} ({subj[b]}): "
                        f"{int(dist[i, j])} bits",
                        (a, b),
                    )
                )

    return AuditReport(
        findings,
        n_folds,
        n,
        tuple(c for c in CHECKS if c in checks_run),
        hash_threshold if "near_duplicate" in checks_run else None,
        skipped,
    )


def _side(fold_names: Sequence[str], f: int) -> str:
    return "never tested" if f < 0 else _fold_name(fold_names, int(f))


def audit_store(store, split: str = "loso", array: str = "frames") -> AuditReport:
    """Audit split ``split`` of ``store`` (a ``FeatureStore``): subject overlap, augmented
    copies across folds, SMOTE parents from test folds, and near-duplicates by the perceptual
    hash of each sample's first ``array`` frame."""
    made = store.split(split)
    smote = None
    stored = store.split_info(split)
    if stored is not None and stored.smote is not None:
        smote = {}
        for fold in range(made.n_folds):
            plan = store.smote(split, fold)
            smote[fold] = (plan.parent_a, plan.parent_b)
    images = store.array(array, dtype="float32")
    images = images.reshape(len(images), -1, *images.shape[-2:])[:, 0]
    return audit_split(
        store.table["sample_id"].to_numpy(dtype=str),
        store.table["subject"].to_numpy(dtype=str),
        store.parents,
        made.test_fold,
        made.fold_names,
        images=images,
        smote=smote,
    )

"""Class balancing inside one training fold: inverse-frequency weights and traceable SMOTE.

Both functions only ever see the training rows of a fold, so nothing about the test fold (its
class counts, its feature vectors) can reach the model through balancing.

    w = class_weights(labels[train_idx], n_classes)
    plan = smote_plan(features, labels, train_idx, seed=0, parents=parents)
    x_syn = rebuild_smote(features, plan)        # == what imblearn generated
    flow_syn = rebuild_smote(store_flows, plan)  # same synthetic samples, any per-row array
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from imblearn.over_sampling import SMOTE
from numpy.typing import DTypeLike

from mer_prep.errors import EnvironmentProblem, InvalidArgumentError

if TYPE_CHECKING:
    from mer_prep.evaluation.splits import Split


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency weights ``W_k = N / n_k`` over the given (training) labels.

    ``labels`` (N,) int class indices; -1 (unlabelled) rows are ignored and not counted in N.
    Returns (n_classes,) float64. A class absent from ``labels`` gets weight 0 rather than
    inf: the fold has no sample of it, so there is nothing to weight, and an inf would poison
    a weighted loss the moment the class is predicted.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InvalidArgumentError("labels must be a 1-D integer array")
    labels = labels[labels != -1]
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise InvalidArgumentError(f"labels must lie in [0, {n_classes}) or be -1")
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.zeros(n_classes, dtype=np.float64)
    present = counts > 0
    weights[present] = labels.size / counts[present]
    return weights


def fold_class_weights(split: Split, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``class_weights`` over each fold's training rows: (n_folds, n_classes) float64, row ``i``
    for fold ``i`` (what ``mer-prep split`` stores; what a reader computes for a split it
    makes on demand)."""
    return np.stack([class_weights(labels[train], n_classes) for _, train, _ in split.folds()])


@dataclass(frozen=True, eq=False)
class SmotePlan:
    """How every synthetic sample of one fold was made, as row indices into the full table.

    For synthetic sample ``j``: ``x = x[parent_a[j]] + weight[j] * (x[parent_b[j]] -
    x[parent_a[j]])`` with ``parent_b[j]`` one of the ``k_neighbors`` nearest same-class
    neighbours of ``parent_a[j]``. Arrays are (m,): ``parent_a``/``parent_b`` int64,
    ``weight`` float64 in [0, 1), ``label`` int64. ``inputs`` (sorted int64) are the rows
    that were handed to SMOTE; ``k_neighbors`` is the k actually used.
    """

    parent_a: np.ndarray = field(repr=False)
    parent_b: np.ndarray = field(repr=False)
    weight: np.ndarray = field(repr=False)
    label: np.ndarray = field(repr=False)
    inputs: np.ndarray = field(repr=False)
    seed: int
    k_neighbors: int

    def __len__(self) -> int:
        return int(self.parent_a.size)


class _TracingSMOTE(SMOTE):
    """SMOTE that records which rows and step each synthetic sample came from.

    ``SMOTE._fit_resample`` calls ``_generate_samples`` once per class with ``X`` = that
    class's rows (in order) and ``nn_num`` indices into them; we keep the class, the base
    row, the neighbour row and the step. ``smote_plan`` checks the rebuild against imblearn's
    output, so a future imblearn that changes this contract fails loudly, not silently.
    """

    def _generate_samples(self, X, nn_data, nn_num, rows, cols, steps, y_type=None, y=None):
        self.trace_.append(
            (
                y_type,
                np.array(rows),
                np.array(nn_num[rows, cols]),
                np.asarray(steps, dtype=np.float64).ravel().copy(),
            )
        )
        return super()._generate_samples(X, nn_data, nn_num, rows, cols, steps, y_type, y)

    def _fit_resample(self, X, y):
        self.trace_ = []
        return super()._fit_resample(X, y)


def smote_plan(
    features: np.ndarray,
    labels: np.ndarray,
    train_idx: np.ndarray,
    seed: int,
    k_neighbors: int = 5,
    parents: np.ndarray | None = None,
) -> SmotePlan:
    """SMOTE every training class up to the majority count, traced back to parent rows.

    ``features`` (n, d) float for all rows of the table; only ``train_idx`` rows are passed to
    imblearn's ``SMOTE(random_state=seed)``, and of those only labelled ones (label >= 0).
    When ``parents`` (n,) is given, augmented rows are left out of SMOTE's inputs (they stay
    training data): a clip's nearest neighbours would be its own augmented copies, turning
    SMOTE into jitter around one clip, and they would inflate that clip's class count.

    A minority class with fewer than ``k_neighbors + 1`` inputs lowers k for the whole call
    to ``n_min - 1`` (imblearn uses one k for all classes); a class with a single input cannot
    be interpolated and raises ValueError.
    """
    features = np.asarray(features)
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.size
    if features.ndim != 2 or features.shape[0] != n:
        raise InvalidArgumentError(
            f"features must be (n, d) with n = {n} rows, got {features.shape}"
        )
    train_idx = np.unique(np.asarray(train_idx, dtype=np.int64))
    if train_idx.size and (train_idx[0] < 0 or train_idx[-1] >= n):
        raise InvalidArgumentError("train_idx holds row indices outside the table")
    keep = labels[train_idx] >= 0
    if parents is not None:
        keep &= np.asarray(parents, dtype=np.int64)[train_idx] == -1
    inputs = train_idx[keep]
    y = labels[inputs]
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise InvalidArgumentError(
            f"SMOTE needs at least two classes in the training rows, got {classes}"
        )
    minority = counts < counts.max()
    k = k_neighbors
    if minority.any():
        smallest = int(counts[minority].min())
        if smallest < 2:
            cls = classes[minority][counts[minority].argmin()]
            raise InvalidArgumentError(
                f"class {cls} has a single training sample: nothing to interpolate"
            )
        k = min(k_neighbors, smallest - 1)

    smote = _TracingSMOTE(random_state=seed, k_neighbors=k)
    x_res, y_res = smote.fit_resample(features[inputs], y)

    a, b, w, lab = [], [], [], []
    for cls, rows, nbrs, steps in smote.trace_:
        of_class = inputs[y == cls]  # SMOTE's X for this class, in the same row order
        a.append(of_class[rows])
        b.append(of_class[nbrs])
        w.append(steps)
        lab.append(np.full(rows.size, cls, dtype=np.int64))

    def cat(parts: list[np.ndarray], dt: DTypeLike) -> np.ndarray:
        return np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)

    plan = SmotePlan(
        cat(a, np.int64), cat(b, np.int64), cat(w, np.float64), cat(lab, np.int64), inputs, seed, k
    )

    synthetic = x_res[inputs.size :]
    if (
        synthetic.shape[0] != len(plan)
        or not np.array_equal(y_res[inputs.size :], plan.label)
        or not np.allclose(rebuild_smote(features, plan), synthetic, rtol=1e-6, atol=1e-9)
    ):
        raise EnvironmentProblem(
            "SMOTE trace does not reproduce imblearn's samples; "
            "the installed imbalanced-learn changed its sample generation"
        )
    return plan


def rebuild_smote(arrays, plan: SmotePlan, dtype: DTypeLike | None = None) -> np.ndarray:
    """The plan's synthetic samples of any per-row array ``arrays`` (n, ...): the one place a
    SMOTE sample is made from its parents (the trainer's folds, ``FeatureStore.to_torch``,
    ``mer-prep split --materialise`` all call it).

    ``arrays``: a numpy, h5py or zarr array, or a function ``read(rows) -> (len(rows), ...)``
    (e.g. rows of a store: ``lambda rows: store.array(name, rows=rows)``). Only the parent
    rows the plan needs are read (sorted, unique), so the table is never loaded whole.
    Computed as imblearn does: the difference in the array's dtype when it is floating
    (others, e.g. uint8 frames, in float64), the step in float64. Returns (m, ...) in ``dtype``
    (by default the floating array's own dtype, float64 for others).
    """
    needed = np.unique(np.concatenate([plan.parent_a, plan.parent_b]))
    if needed.size == 0 and not callable(arrays):
        return np.zeros((0, *arrays.shape[1:]), dtype=dtype or np.float64)
    rows = np.asarray(arrays(needed) if callable(arrays) else arrays[needed])
    if not np.issubdtype(rows.dtype, np.floating):
        rows = rows.astype(np.float64)
    xa = rows[np.searchsorted(needed, plan.parent_a)]
    xb = rows[np.searchsorted(needed, plan.parent_b)]
    step = plan.weight.reshape((-1,) + (1,) * (rows.ndim - 1))
    return (xa + step * (xb - xa)).astype(dtype or rows.dtype)

"""MEGC 2019 scores: UF1 and UAR from confusion counts pooled over all LOSO folds.

MEGC sums the per-class TP / FP / FN of every fold first and only then computes per-class F1
and recall. Averaging per-fold scores instead gives a different (and, with LOSO, noisy)
number, because most subjects lack some classes.

    conf = pooled_confusion(((y_true_f, y_pred_f) for each fold), n_classes=3)
    scores(conf, class_names=("negative", "positive", "surprise"))

A confusion matrix here is (K, K) int64 with rows = true class, columns = predicted class.

Undefined ratios: a class with no true samples and no predictions has F1 = 0/0 and recall
0/0. Both are NaN in the per-class arrays and left out of the UF1 / UAR means: the evaluated
set says nothing about that class, and scoring it 0 (or 1) would move the mean for a class
that was never in play. A class that is never true but is predicted still has F1 = 0 (its
false positives count against it) while its recall stays undefined.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from mer_prep.errors import InvalidArgumentError


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts; ``y_true``/``y_pred`` (n,) int in [0, n_classes)."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise InvalidArgumentError(f"y_true and y_pred must be 1-D of one length, got "
                         f"{y_true.shape} and {y_pred.shape}")
    for what, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0
                       or y.max() >= n_classes):
            raise InvalidArgumentError(f"{what} must hold class indices in [0, {n_classes}) "
                             "(drop unlabelled rows before scoring)")
    flat = y_true.astype(np.int64) * n_classes + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def pooled_confusion(fold_results: Iterable[tuple[np.ndarray, np.ndarray]],
                     n_classes: int) -> np.ndarray:
    """Sum of the per-fold confusion matrices of ``(y_true, y_pred)`` pairs (MEGC pooling)."""
    total = np.zeros((n_classes, n_classes), dtype=np.int64)
    for y_true, y_pred in fold_results:
        total += confusion_matrix(y_true, y_pred, n_classes)
    return total


def _check(confusion: np.ndarray) -> np.ndarray:
    c = np.asarray(confusion)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise InvalidArgumentError(f"a confusion matrix must be square, got shape {c.shape}")
    if c.sum() == 0:
        raise InvalidArgumentError("empty confusion matrix: no samples were scored")
    return c.astype(np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def per_class_f1(confusion: np.ndarray) -> np.ndarray:
    """(K,) float64 ``2TP / (2TP + FP + FN)``; NaN where the class is neither true nor predicted."""
    c = _check(confusion)
    tp = np.diag(c)
    fp = c.sum(axis=0) - tp
    fn = c.sum(axis=1) - tp
    return _ratio(2 * tp, 2 * tp + fp + fn)


def per_class_recall(confusion: np.ndarray) -> np.ndarray:
    """(K,) float64 ``TP_k / N_k``; NaN for a class with no true samples."""
    c = _check(confusion)
    return _ratio(np.diag(c), c.sum(axis=1))


def _mean_defined(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


def uf1(confusion: np.ndarray) -> float:
    """Unweighted F1: mean of the defined per-class F1 scores."""
    return _mean_defined(per_class_f1(confusion))


def uar(confusion: np.ndarray) -> float:
    """Unweighted average recall: mean of the defined per-class recalls."""
    return _mean_defined(per_class_recall(confusion))


def accuracy(confusion: np.ndarray) -> float:
    """Fraction of samples on the diagonal."""
    c = _check(confusion)
    return float(np.trace(c) / c.sum())


def scores(confusion: np.ndarray, class_names: Sequence[str] | None = None) -> dict:
    """UF1, UAR, accuracy, sample count and per-class F1 / recall (NaN -> None) as a JSON-able dict."""
    c = np.asarray(confusion)
    names = list(class_names) if class_names is not None else [str(k) for k in range(len(c))]
    if len(names) != len(c):
        raise InvalidArgumentError(f"{len(names)} class names for a {len(c)}-class confusion matrix")

    def per_class(values: np.ndarray) -> dict[str, float | None]:
        return {k: (None if np.isnan(v) else float(v)) for k, v in zip(names, values)}

    return {"uf1": uf1(c), "uar": uar(c), "accuracy": accuracy(c), "n": int(c.sum()),
            "per_class_f1": per_class(per_class_f1(c)),
            "per_class_recall": per_class(per_class_recall(c)),
            "confusion": c.astype(np.int64).tolist()}

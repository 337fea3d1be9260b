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


def _paired(
    y_true: np.ndarray, y_pred: np.ndarray, ndim: int, expected: str
) -> tuple[np.ndarray, np.ndarray]:
    """``y_true`` and ``y_pred`` as arrays of one shape with ``ndim`` dims;
    ``InvalidArgumentError`` saying they must be ``expected`` otherwise."""
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape or t.ndim != ndim:
        raise InvalidArgumentError(
            f"y_true and y_pred must be {expected}, got {t.shape} and {p.shape}"
        )
    return t, p


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts; ``y_true``/``y_pred`` (n,) int in [0, n_classes)."""
    y_true, y_pred = _paired(y_true, y_pred, 1, "1-D of one length")
    for what, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (
            not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_classes
        ):
            raise InvalidArgumentError(
                f"{what} must hold class indices in [0, {n_classes}) "
                "(drop unlabelled rows before scoring)"
            )
    flat = y_true.astype(np.int64) * n_classes + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def pooled_confusion(
    fold_results: Iterable[tuple[np.ndarray, np.ndarray]], n_classes: int
) -> np.ndarray:
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
    """UF1, UAR, accuracy, sample count and per-class F1 / recall (NaN -> None) as a JSON-able
    dict."""
    c = np.asarray(confusion)
    names = list(class_names) if class_names is not None else [str(k) for k in range(len(c))]
    if len(names) != len(c):
        raise InvalidArgumentError(
            f"{len(names)} class names for a {len(c)}-class confusion matrix"
        )

    def per_class(values: np.ndarray) -> dict[str, float | None]:
        return {k: (None if np.isnan(v) else float(v)) for k, v in zip(names, values, strict=True)}

    return {
        "uf1": uf1(c),
        "uar": uar(c),
        "accuracy": accuracy(c),
        "n": int(c.sum()),
        "per_class_f1": per_class(per_class_f1(c)),
        "per_class_recall": per_class(per_class_recall(c)),
        "confusion": c.astype(np.int64).tolist(),
    }


# --- action units as multi-label targets (the cross-dataset protocol) ---------------------------
#
# y_true / y_pred are (n, K) bool: sample x AU (mer_prep.datasets.aus.au_matrix). As for the
# classes above, counts are pooled over folds before any ratio is taken, and an AU that is
# neither present nor predicted anywhere has an undefined F1 (NaN), left out of the macro mean.


def au_counts(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(K, 3) int64 ``[TP, FP, FN]`` per AU of one fold; ``y_true``/``y_pred`` (n, K) bool."""
    t, p = _paired(y_true, y_pred, 2, "(n, K) of one shape")
    for what, y in (("y_true", t), ("y_pred", p)):
        if y.dtype != bool and not (
            np.issubdtype(y.dtype, np.integer) and np.isin(y, (0, 1)).all()
        ):
            raise InvalidArgumentError(f"{what} must be boolean (or 0/1) AU indicators")
    t, p = t.astype(bool), p.astype(bool)
    return np.stack([(t & p).sum(0), (~t & p).sum(0), (t & ~p).sum(0)], axis=1).astype(np.int64)


def pooled_au_counts(fold_results: Iterable[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Sum of ``au_counts`` over ``(y_true, y_pred)`` folds: (K, 3) int64."""
    total = None
    for y_true, y_pred in fold_results:
        counts = au_counts(y_true, y_pred)
        total = counts if total is None else total + counts
    if total is None:
        raise InvalidArgumentError("no folds to pool")
    return total


def _counts(counts_or_true: np.ndarray, y_pred: np.ndarray | None) -> np.ndarray:
    counts = au_counts(counts_or_true, y_pred) if y_pred is not None else np.asarray(counts_or_true)
    if counts.ndim != 2 or counts.shape[1] != 3:
        raise InvalidArgumentError(
            f"AU counts must be (K, 3) [TP, FP, FN], got shape {counts.shape}"
        )
    return counts.astype(np.float64)


def per_au_f1(counts_or_true: np.ndarray, y_pred: np.ndarray | None = None) -> np.ndarray:
    """(K,) F1 of each AU, ``2TP / (2TP + FP + FN)``, from (K, 3) counts or from ``(y_true,
    y_pred)``; NaN for an AU neither present nor predicted."""
    c = _counts(counts_or_true, y_pred)
    return _ratio(2 * c[:, 0], 2 * c[:, 0] + c[:, 1] + c[:, 2])


def macro_f1(counts_or_true: np.ndarray, y_pred: np.ndarray | None = None) -> float:
    """Mean of the defined per-AU F1 scores (NaN when none is defined)."""
    return _mean_defined(per_au_f1(counts_or_true, y_pred))


def au_scores(
    counts_or_true: np.ndarray,
    y_pred: np.ndarray | None = None,
    au_names: Sequence[str | int] | None = None,
) -> dict:
    """Macro F1, per-AU F1 (NaN -> None), support and counts as a JSON-able dict; AU names
    default to their column index (pass e.g. ``au_set("cross12")``)."""
    c = _counts(counts_or_true, y_pred)
    f1 = per_au_f1(c)
    names = (
        [f"AU{a}" if isinstance(a, (int, np.integer)) else str(a) for a in au_names]
        if au_names is not None
        else [str(k) for k in range(len(c))]
    )
    if len(names) != len(c):
        raise InvalidArgumentError(f"{len(names)} AU names for {len(c)} AU columns")
    return {
        "macro_f1": macro_f1(c),
        "per_au_f1": {
            k: (None if np.isnan(v) else float(v)) for k, v in zip(names, f1, strict=True)
        },
        "support": {k: int(tp + fn) for k, (tp, _, fn) in zip(names, c, strict=True)},
        "counts": {k: [int(x) for x in row] for k, row in zip(names, c, strict=True)},
    }

"""Bootstrap over test subjects (and seeds) of the pooled AU macro F1 of multi-label runs
(``--target aus``), scored as ``train.au_target.pooled_au_scores`` scores a run: counts pooled
over every clip first, F1 per AU ``2TP / (2TP + FP + FN)``, the macro F1 the mean over the AUs
that occur in the (resampled) truth. A resample draws test subjects with replacement, each
bringing all its clips, exactly as ``bootstrap`` does for UF1 / UAR:

    counts = subject_au_counts(views, subjects)   # (n_seeds, S, K, 3) int64: TP, FP, FN
    macro = observed_macro_f1(counts)             # (n_seeds,) float64
    boot = group_macro_f1(counts, w, picks)       # (R,) float64: mean over the picked seeds
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from mer_prep.evaluation.run_view import RunView


def subject_au_counts(views: Sequence[RunView], subjects: Sequence[str]) -> np.ndarray:
    """(n_views, S, K, 3) int64 per-AU [TP, FP, FN] of each view's clips of each subject (the
    subjects in the order given); the views' ``y_true`` / ``y_pred`` are (n, K) 0/1."""
    k = views[0].y_true.shape[1]
    index = {s: i for i, s in enumerate(subjects)}
    out = np.zeros((len(views), len(subjects), k, 3), dtype=np.int64)
    for v, view in enumerate(views):
        truth, guess = view.y_true.astype(bool), view.y_pred.astype(bool)
        rows = np.array([index[s] for s in view.subjects], dtype=np.int64)
        for column, hits in enumerate((truth & guess, ~truth & guess, truth & ~guess)):
            np.add.at(out[v, :, :, column], rows, hits.astype(np.int64))
    return out


def macro_f1_of_counts(counts: np.ndarray) -> np.ndarray:
    """The macro F1 of pooled counts (..., K, 3): (...) float64, NaN where no AU occurs."""
    tp, fp, fn = (counts[..., i].astype(np.float64) for i in range(3))
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0)
    occurs = (tp + fn) > 0
    with warnings.catch_warnings():  # no AU occurs: NaN, as pooled_au_scores gives None
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.where(occurs, f1, 0.0).sum(-1) / occurs.sum(-1)


def observed_macro_f1(counts: np.ndarray) -> np.ndarray:
    """(n_seeds,) macro F1 of each seed on all its clips (no resampling)."""
    return macro_f1_of_counts(counts.sum(axis=1))


def group_macro_f1(counts: np.ndarray, weights: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """(R,) mean macro F1 over the picked seeds of each resample: ``counts`` (n_seeds, S, K, 3),
    ``weights`` (R, S) times each subject is drawn, ``picks`` (R, n_seeds) seed indices."""
    pooled = np.einsum("rs,nskc->rnkc", weights, counts)  # (R, n_seeds, K, 3)
    macro = macro_f1_of_counts(pooled)
    return macro[np.arange(len(picks))[:, None], picks].mean(axis=1)

"""Bootstrap over test subjects (and seeds) of MEGC-pooled UF1 / UAR.

A resample draws the test subjects with replacement; each drawn subject brings all its scored
clips (a subject drawn twice counts twice), and the resample's confusion counts are pooled as
MEGC pools folds before UF1 / UAR are taken (``mer_prep.evaluation.metrics``). With several
seeds, a resample also draws the seeds of a group with replacement and scores the group by the
mean of its drawn seeds' pooled scores. Everything is vectorised over resamples:

    conf = subject_confusions(views, subjects)   # (n_seeds, S, K, K) int64
    w = subject_weights(S, 2000, rng)            # (R, S) int64: times each subject is drawn
    picks = seed_picks(n_seeds, 2000, rng)       # (R, n_seeds) int64 indices into the seeds
    uf1, uar = group_scores(conf, w, picks)      # (R,) float64 each
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.run_view import RunView

DEFAULT_RESAMPLES = 2000
CI_LEVEL = 0.95


def batch_scores(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UF1 and UAR of confusion matrices (..., K, K) (rows true): each (...) float64, with
    ``metrics.uf1`` / ``metrics.uar``'s rule that undefined classes are left out of the mean."""
    c = np.asarray(confusion, dtype=np.float64)
    tp = np.diagonal(c, axis1=-2, axis2=-1)
    true_n = c.sum(axis=-1)
    f1_den = true_n + c.sum(axis=-2)  # 2TP + FP + FN
    f1 = np.divide(2 * tp, f1_den, out=np.full(tp.shape, np.nan), where=f1_den > 0)
    recall = np.divide(tp, true_n, out=np.full(tp.shape, np.nan), where=true_n > 0)
    with warnings.catch_warnings():  # all classes undefined: NaN, as metrics gives
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(f1, axis=-1), np.nanmean(recall, axis=-1)


def subject_confusions(views: Sequence[RunView], subjects: Sequence[str]) -> np.ndarray:
    """(n_views, S, K, K) int64 confusion counts of each view's clips of each subject, the
    subjects in the order given."""
    k = len(views[0].class_names)
    index = {s: i for i, s in enumerate(subjects)}
    out = np.zeros((len(views), len(subjects), k, k), dtype=np.int64)
    for v, view in enumerate(views):
        rows = np.array([index[s] for s in view.subjects], dtype=np.int64)
        np.add.at(out[v], (rows, view.y_true, view.y_pred), 1)
    return out


def subject_weights(n_subjects: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(R, S) int64: how often each subject is drawn in each resample (rows sum to S)."""
    if n_subjects < 1 or n_resamples < 1:
        raise InvalidArgumentError(
            f"a bootstrap needs subjects and resamples, got "
            f"{n_subjects} subjects and {n_resamples} resamples"
        )
    return rng.multinomial(n_subjects, np.full(n_subjects, 1.0 / n_subjects), size=n_resamples)


def seed_picks(n_seeds: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(R, n_seeds) int64 seed indices drawn with replacement (all 0 for a single seed)."""
    return rng.integers(0, n_seeds, size=(n_resamples, n_seeds))


def group_scores(
    confusions: np.ndarray, weights: np.ndarray, picks: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(R,) mean UF1 and (R,) mean UAR over the picked seeds of each resample:
    ``confusions`` (n_seeds, S, K, K), ``weights`` (R, S), ``picks`` (R, n_seeds)."""
    pooled = np.einsum("rs,nskl->rnkl", weights, confusions)  # (R, n_seeds, K, K)
    uf1, uar = batch_scores(pooled)
    rows = np.arange(len(picks))[:, None]
    return uf1[rows, picks].mean(axis=1), uar[rows, picks].mean(axis=1)


def observed_scores(confusions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n_seeds,) pooled UF1 and UAR of each seed on all its clips (no resampling)."""
    return batch_scores(confusions.sum(axis=1))


def interval(values: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """The percentile interval of ``values`` (R,) at ``level`` (NaN resamples left out)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def tested_subjects(views: Sequence[RunView]) -> list[str]:
    """The sorted test subjects of ``views`` (every clip's subject)."""
    return sorted(set().union(*(set(v.subjects.tolist()) for v in views)))

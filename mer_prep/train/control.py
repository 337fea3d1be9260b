"""The shuffled-label control: the same run trained on labels permuted at random.

A model that learns the expression scores well above chance; the same model, settings and folds
on permuted labels must not (if it does, something other than the expression carries the
label: a leak, a per-subject cue). ``chance_uar`` is what guessing scores.

    control = shuffled_control(plan, seed=0)        # a RunRecord, never saved on the store
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mer_prep.train.plan import RunPlan, run_folds
from mer_prep.train.progress import RunEvent
from mer_prep.train.records import RunRecord, combine_folds


def shuffled_labels(labels: np.ndarray, parents: np.ndarray, seed: int) -> np.ndarray:
    """``labels`` (n,) int64 of the original rows (``parents`` < 0) permuted with a generator
    seeded by ``seed``; an augmented copy (``parents`` >= 0: its original's row) takes its
    original's new label, so a clip and its copies stay one class."""
    shuffled = np.asarray(labels, dtype=np.int64).copy()
    originals = np.flatnonzero(parents < 0)
    shuffled[originals] = np.random.default_rng(seed).permutation(shuffled[originals])
    copies = np.flatnonzero(parents >= 0)
    shuffled[copies] = shuffled[parents[copies]]
    return shuffled


def shuffled_control(
    plan: RunPlan, seed: int = 0, report: Callable[[RunEvent], None] | None = None
) -> RunRecord:
    """Train ``plan`` (every fold, here) on :func:`shuffled_labels` and return the pooled
    record. It is not saved: a record does not say its labels were permuted."""
    data = plan.data
    control = plan.with_labels(shuffled_labels(data.labels, data.parents, seed))
    return combine_folds(run_folds(control, report=report), control.header)


def chance_uar(n_classes: int) -> float:
    """The UAR of guessing (any constant or random prediction) over ``n_classes`` classes that
    occur: 1 / classes (a class with no clip has no recall and does not count)."""
    return 1.0 / n_classes

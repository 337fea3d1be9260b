"""Model selection: the validation part of a fold (about 10 % of its *training subjects*, never
a test subject) and the best epoch on it (:class:`BestEpoch`).

Model selection (best epoch on the preset's validation metric) must not see the held-out
subjects — picking each fold's epoch on its test subject is the leak this module makes
impossible. The validation subjects are drawn from the training subjects only, whole subjects
at a time (subject-disjoint from what the model fits on), stratified by class where the
subjects allow it (sklearn ``StratifiedGroupKFold`` over the original clips with about
``1 / fraction`` groups, whose first fold is taken), at least one subject, at least one left
to train on, and the same draw for the same seed.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from mer_prep.train.errors import TrainSetupError

VALIDATION_FRACTION = 0.1


def validation_subjects(
    subjects: np.ndarray, labels: np.ndarray, seed: int, fraction: float = VALIDATION_FRACTION
) -> list[str]:
    """Sorted subjects of the validation part, chosen among ``subjects`` (the fold's training
    clips: (n,) subject per original training clip, ``labels`` (n,) int class per clip).

    About ``fraction`` of the distinct subjects (at least 1, at most all but 1), with the
    clips' class mix as close to the whole as whole subjects allow. Deterministic in ``seed``.
    """
    subjects = np.asarray(subjects).astype(str)
    labels = np.asarray(labels, dtype=np.int64)
    if subjects.shape != labels.shape or subjects.ndim != 1:
        raise TrainSetupError("subjects and labels must be 1-D arrays of one length")
    distinct = np.unique(subjects)
    if distinct.size < 2:
        raise TrainSetupError(
            f"a validation part needs at least 2 training subjects, the fold "
            f"has {distinct.size}; use the preset's last epoch "
            f"(selection='last_epoch')"
        )
    if not 0 < fraction < 1:
        raise TrainSetupError(f"validation fraction must lie in (0, 1), got {fraction}")
    n_splits = int(min(distinct.size, max(2, round(1 / fraction))))
    x = np.zeros((subjects.size, 1))
    with warnings.catch_warnings():  # "least populated class has fewer members than n_splits"
        warnings.simplefilter("ignore")
        try:
            splitter = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
            _, held = next(splitter.split(x, labels, subjects))
        except ValueError:  # e.g. a single class: stratification is meaningless
            rank = {s: i for i, s in enumerate(np.random.default_rng(seed).permutation(distinct))}
            groups = np.array([rank[s] for s in subjects])
            _, held = next(GroupKFold(n_splits).split(x, None, groups))
    chosen = sorted(set(subjects[held]))
    if not chosen:  # cannot happen with n_splits <= subjects; keep the contract explicit
        chosen = [str(np.random.default_rng(seed).choice(distinct))]
    if len(chosen) >= distinct.size:
        chosen = chosen[: distinct.size - 1]
    return chosen


class BestEpoch:
    """The checkpoint of the epoch with the best validation score so far.

    :meth:`offer` after each epoch's score: the model's ``state_dict`` is copied (deep) when the
    score beats the best one, or when nothing is kept yet (a first epoch scoring ``-inf`` is
    still kept, so that a checkpoint always exists); ties keep the earlier epoch.
    """

    def __init__(self) -> None:
        self.score = float("-inf")
        self.state: Mapping[str, Any] | None = None
        self.epoch = 0

    def offer(self, score: float, epoch: int, model: Any) -> bool:
        """Keep a deep copy of ``model.state_dict()`` as epoch ``epoch``'s if ``score`` is the
        best; whether it was kept."""
        if score > self.score or self.state is None:
            self.score, self.state, self.epoch = score, copy.deepcopy(model.state_dict()), epoch
            return True
        return False

"""Every fold cut out of a store's data as the trainer cuts it (``build_fold``): what
bench/codec.py and bench/train.py time."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mer_prep.train.data import StoreData, build_fold


def loso_folds(data: StoreData) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(subject, train rows, test rows) of each leave-one-subject-out fold."""
    return [
        (s, np.flatnonzero(data.subjects != s), np.flatnonzero(data.subjects == s))
        for s in np.unique(data.subjects)
    ]


def cut_every_fold(
    data: StoreData,
    folds: Iterable[tuple[str, np.ndarray, np.ndarray]],
    *,
    augmented: bool,
    weighted: bool,
) -> None:
    """``build_fold`` of each (name, train rows, test rows), clip unit, with a validation part,
    fold ``i`` seeded ``i``."""
    for index, (name, train, test) in enumerate(folds):
        build_fold(
            data,
            index,
            name,
            train,
            test,
            unit="clip",
            augmented=augmented,
            weighted=weighted,
            validation=True,
            seed=index,
        )

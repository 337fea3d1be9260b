"""The recognition side of spot-then-recognise: a clip model trained on one fold's training
subjects' annotated micro-expressions, predicting the classes of the intervals spotted in the
test subject's videos. The model, its preset and the fold's parts are the recognition
engine's (``train.data.build_fold``, ``train.engine.train_fold``): the same seeds, epoch choice
(a validation part of training subjects where the preset selects on validation) and leak checks
as a training run; the test subject's intervals are read only after the model is final.

    settings = RecognizerSettings(model="ststnet", epochs=200, seed=0)
    classes = fit_and_predict(train, test, class_names, settings, fold=3)   # (m,) int64
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from mer_prep.errors import InvalidArgumentError
from mer_prep.models import get_model
from mer_prep.train.data import StoreData, build_fold
from mer_prep.train.engine import train_fold

#: per-sample dims of the arrays an onset -> apex flow recipe gives
DIMS = {"flow": ("frame", "y", "x", "uv"), "strain": ("frame", "y", "x")}


@dataclass(frozen=True)
class RecognizerSettings:
    """The recognition model and how it is trained: ``model`` (a registered family),
    ``recipe`` (the clip recipe its intervals are processed with), ``epochs`` (None: the
    preset's), ``seed`` (fold ``i`` trains with ``seed + i``), ``device``."""

    model: str = "ststnet"
    recipe: str = "ststnet28"
    epochs: int | None = None
    seed: int = 0
    device: str = "cpu"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LabelledIntervals:
    """Processed intervals: ``arrays`` name -> (n, ...), ``labels`` (n,) int64 class indices
    (or a placeholder for intervals to predict), ``subjects`` (n,) str, ``ids`` (n,) str."""

    arrays: dict[str, np.ndarray] = field(repr=False)
    labels: np.ndarray
    subjects: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.size)


def fit_and_predict(
    train: LabelledIntervals,
    test: LabelledIntervals,
    class_names: tuple[str, ...],
    settings: RecognizerSettings,
    *,
    fold: int,
) -> np.ndarray:
    """Train ``settings.model`` on ``train`` (the training subjects' annotated intervals) and
    return the predicted class index of each of ``test``'s intervals: (m,) int64."""
    if not len(test):
        return np.zeros(0, np.int64)
    overlap = set(train.subjects.tolist()) & set(test.subjects.tolist())
    if overlap:
        raise InvalidArgumentError(
            f"fold {fold}: subjects {sorted(overlap)} would be trained on and tested"
        )
    if len(np.unique(train.labels)) < 2:
        raise InvalidArgumentError(
            f"fold {fold}: the training subjects' micro-expressions show "
            f"{len(np.unique(train.labels))} class(es); a recogniser needs two at least"
        )
    spec = get_model(settings.model)
    preset = spec.training
    if settings.epochs is not None:
        preset = dataclasses.replace(preset, epochs=settings.epochs)
    n = len(train)
    data = StoreData(
        arrays={k: np.concatenate([train.arrays[k], test.arrays[k]]) for k in train.arrays},
        # the intervals to predict have no class: 0 stands in, so that the engine scores them
        # (it drops rows labelled -1); nothing reads that placeholder back
        labels=np.concatenate([train.labels, np.zeros(len(test), np.int64)]),
        subjects=np.concatenate([train.subjects, test.subjects]).astype(str),
        sample_ids=np.concatenate([train.ids, test.ids]).astype(str),
        parents=np.full(n + len(test), -1, np.int64),
        class_names=class_names,
        dims={k: DIMS[k] for k in train.arrays},
    )
    seed = settings.seed + fold
    part = build_fold(
        data,
        fold,
        f"fold{fold}",
        np.arange(n),
        np.arange(n, n + len(test)),
        unit="clip",
        augmented=False,
        weighted=False,
        validation=preset.selection == "validation",
        seed=seed,
    )
    result = train_fold(part, spec, spec.config({}), preset, seed, settings.device)
    order = np.argsort(result.rows - n)  # the engine returns the test rows in its order
    return result.y_pred[order].astype(np.int64)

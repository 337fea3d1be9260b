"""Action units as the training target (``--target aus``): which AUs, their positive weights
and their scores. numpy only (records and listings read it without PyTorch); the loss and the
forward passes are in :mod:`mer_prep.train.au_loss`.

    columns = au_columns(store)                  # the cross-dataset AUs the store codes
    weights = positive_weights(fit_aus, columns.names)
    scores = pooled_au_scores([(y_true, y_pred), ...], columns.names)

**Which AUs.** The cross-dataset set (``au_set("cross12")``: AU1, 2, 4, 5, 6, 7, 9, 10, 12, 14,
15, 17, the 12 AUs of meb's CrossDataset protocol), restricted to the AUs the store's ``aus``
array has columns for: on every store, LOSO or ``cross6``'s leave-one-dataset-out alike, so that
runs on different stores predict the same columns. A store that codes no AU at all (SMIC) is
refused in one line before any training.

**Positive weights.** BCE's ``pos_weight`` of AU k is ``negatives / positives`` over the clips of
the fold's fit part (the training subjects minus the validation ones; never a test or validation
clip), capped at :data:`POS_WEIGHT_CAP` so that a rare AU does not swamp the loss; an AU with no
positive clip there gets weight 1 (its positive term never occurs) and is named in the fold's
``info["aus_without_positives"]``.

**Scores.** A clip's AU is predicted present when its probability is >= :data:`THRESHOLD`
(fixed: no threshold is chosen on any part of the data). Counts are pooled over folds first (all
folds' predictions together), then F1 per AU (``2TP / (2TP + FP + FN)``); the macro F1 is the
mean over the AUs that occur in the pooled test truth (an AU absent from every test clip has no
recall to speak of: its F1 is reported, 0 when it was predicted, but not averaged).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mer_prep.evaluation.metrics import au_counts
from mer_prep.labels import au_set
from mer_prep.train.errors import TrainSetupError

#: the AU set trained and scored (meb's CrossDataset 12)
AU_SET = "cross12"
#: the largest positive weight (negatives / positives) an AU gets
POS_WEIGHT_CAP = 10.0
#: probability at and above which an AU is predicted present
THRESHOLD = 0.5
#: the validation metric of an AU run's epoch choice (the macro F1 of the validation part)
AU_VALIDATION_METRIC = "au_macro_f1"


@dataclass(frozen=True)
class AUColumns:
    """The AUs a run predicts: ``numbers`` (AU numbers, in ``AU_SET`` order) and ``columns``
    (their indexes in the store's ``aus`` array / ``au_list``)."""

    numbers: tuple[int, ...]
    columns: tuple[int, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """``("AU1", "AU2", ...)``: the run's output names."""
        return tuple(f"AU{n}" for n in self.numbers)


def au_columns(store: Any) -> AUColumns:
    """The ``AU_SET`` AUs that ``store`` (a ``FeatureStore``) has columns for; a one-line
    :class:`TrainSetupError` naming the store when it codes no action unit at all."""
    au_list = list(store.au_list)
    numbers = tuple(n for n in au_set(AU_SET) if n in au_list)
    columns = tuple(au_list.index(n) for n in numbers)
    aus = np.asarray(store.aus, dtype=bool)
    if not numbers or aus.size == 0 or not aus.any():
        raise TrainSetupError(
            f"--target aus: store {store.path} has no `aus` array with an action unit coded "
            f"(dataset {store.info.dataset}); train it with --target emotion"
        )
    if len(numbers) < 2:  # the models' heads are built for at least two outputs
        raise TrainSetupError(
            f"--target aus: store {store.path} has only {len(numbers)} of the {AU_SET} AUs"
        )
    return AUColumns(numbers, columns)


def check_au_variant(model: str, variant: str, preset: Any) -> None:
    """Refuse a variant whose training is built on class targets (SMOTE samples are made per
    class; class weights weigh classes): one line naming what to use instead."""
    if preset.smote or preset.class_weights:
        what = "SMOTE samples" if preset.smote else "class-weighted cross-entropy"
        raise TrainSetupError(
            f"--target aus: variant {variant} of {model} trains with {what}, which need "
            f"emotion classes; AU targets are weighted per AU: choose another variant"
        )


@dataclass(frozen=True)
class PositiveWeights:
    """BCE's per-AU ``weights`` (K,) float32 = min(negatives / positives, cap), 1 for an AU with
    no positive; ``positives`` / ``negatives`` (K,) int64 clip counts they came from;
    ``without_positives``: the names of the AUs with none."""

    weights: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    without_positives: tuple[str, ...]

    def info(self, names: Sequence[str]) -> dict[str, Any]:
        """What the fold's record says of them (JSON-able)."""
        return {
            "au_positive_weights": {n: float(w) for n, w in zip(names, self.weights, strict=True)},
            "au_fit_positives": {n: int(p) for n, p in zip(names, self.positives, strict=True)},
            "aus_without_positives": list(self.without_positives),
        }


def positive_weights(
    aus: np.ndarray, names: Sequence[str], cap: float = POS_WEIGHT_CAP
) -> PositiveWeights:
    """The positive weights of (n, K) bool ``aus``: the fit part's clips (one row per clip,
    never a test or validation clip); see the module docstring."""
    aus = np.asarray(aus, dtype=bool)
    if aus.ndim != 2 or aus.shape[1] != len(names):
        raise TrainSetupError(f"AU targets must be (clips, {len(names)}), got {aus.shape}")
    positives = aus.sum(0).astype(np.int64)
    negatives = (len(aus) - positives).astype(np.int64)
    ratio = np.divide(negatives, positives, out=np.ones(len(names)), where=positives > 0)
    weights = np.minimum(ratio, cap).astype(np.float32)
    missing = tuple(n for n, p in zip(names, positives, strict=True) if p == 0)
    return PositiveWeights(weights, positives, negatives, missing)


def pooled_au_scores(
    folds: Iterable[tuple[np.ndarray, np.ndarray]], names: Sequence[str]
) -> dict[str, Any]:
    """Per-AU F1 and macro F1 of ``(y_true, y_pred)`` pairs ((m, K) 0/1 each), counts pooled
    over them first; see the module docstring. JSON-able: ``macro_f1`` (None when no AU occurs
    in the truth), ``per_au_f1`` (None where undefined), ``support`` (test clips with the AU),
    ``counts`` ([TP, FP, FN]), ``n`` clips, ``threshold``, ``averaged`` (the AUs in the macro
    mean)."""
    total = np.zeros((len(names), 3), np.int64)
    n = 0
    for y_true, y_pred in folds:
        if len(y_true):
            total += au_counts(np.asarray(y_true, bool), np.asarray(y_pred, bool))
            n += len(y_true)
    tp, fp, fn = total[:, 0], total[:, 1], total[:, 2]
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.full(len(names), np.nan), where=denominator > 0)
    occurs = (tp + fn) > 0
    return {
        "macro_f1": float(f1[occurs].mean()) if occurs.any() else None,
        "per_au_f1": {
            k: (None if np.isnan(v) else float(v)) for k, v in zip(names, f1, strict=True)
        },
        "support": {k: int(s) for k, s in zip(names, tp + fn, strict=True)},
        "counts": {k: [int(x) for x in row] for k, row in zip(names, total, strict=True)},
        "n": n,
        "threshold": THRESHOLD,
        "averaged": [k for k, on in zip(names, occurs, strict=True) if on],
    }


def au_report(scores: dict[str, Any]) -> list[str]:
    """Lines for a terminal: the macro F1 and the AUs it averages, then per-AU F1 and support."""
    macro = scores.get("macro_f1")
    lines = [
        f"AU macro F1 {'-' if macro is None else f'{macro:.3f}'} over "
        f"{len(scores.get('averaged', []))} AUs present in the test truth "
        f"(threshold {scores.get('threshold', THRESHOLD)}; {scores.get('n', 0)} clips)"
    ]
    for name, value in scores.get("per_au_f1", {}).items():
        shown = "-" if value is None else f"{value:.3f}"
        lines.append(f"  {name:<6} F1 {shown:>6}  support {scores['support'][name]}")
    return lines


def au_markdown(record: Any) -> str:
    """An AU run's Prefect artifact (``record``: a ``RunRecord`` with AU targets): what ran,
    the pooled macro F1, the per-AU F1 and support, and each fold's macro F1."""
    scores = record.au_metrics or {}
    macro = scores.get("macro_f1")
    lines = [
        f"# train {record.name} (target aus)",
        "",
        f"- run: `{record.run_id}`",
        f"- settings: {record.settings()}",
        f"- split: `{record.split}`",
        f"- store version: `{record.store.get('version_id', '')}`",
        f"- AU macro F1 {'n/a' if macro is None else f'{macro:.3f}'} over "
        f"{len(scores.get('averaged', []))} AUs present in the test truth "
        f"(threshold {scores.get('threshold', THRESHOLD)}; {scores.get('n', 0)} clips, "
        f"all folds pooled)",
        "",
        "| AU | F1 | support |",
        "|---|---:|---:|",
    ]
    for name, value in (scores.get("per_au_f1") or {}).items():
        shown = "n/a" if value is None else f"{value:.3f}"
        lines.append(f"| {name} | {shown} | {scores['support'][name]} |")
    lines += ["", "| fold | n | macro F1 | epoch |", "|---|---:|---:|---:|"]
    for fold in record.folds:
        value = (fold.metrics or {}).get("macro_f1")
        shown = "n/a" if value is None else f"{value:.3f}"
        lines.append(f"| {fold.name} | {len(fold.y_true)} | {shown} | {fold.best_epoch} |")
    return "\n".join(lines) + "\n"

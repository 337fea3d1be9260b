"""What the comparison, per-dataset and leaderboard modules read of a run record, in one place.

Run records (``mer_prep.train.records.RunRecord``) are being reshaped; every attribute the
evaluation side needs is read here, by :func:`run_view`, into a :class:`RunView` of plain arrays,
so that a renamed field touches this file only. A view pools the scored (original) test clips
of all folds in fold order:

    view = run_view(record, table=open_run_store(store, record).table)
    view.y_true, view.y_pred      # (n,) int64 class indices
    view.subjects, view.datasets  # (n,) str: each clip's test subject and source dataset

``table`` is the sample table of the store version the record names (``sample_id``,
``subject``, ``dataset`` columns); without it, a clip's subject is its fold's only test subject
(LOSO-style folds) and its dataset is unknown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from mer_prep.errors import InvalidArgumentError

# ``training`` selections whose epoch choice looked at the test subject (the published numbers'
# protocol): such a run is LEAKY even on a subject-independent split.
LEAKY_SELECTIONS = frozenset({"test-oracle", "test_oracle", "oracle"})
# header fields that identify a configuration (with ``training``, the store version and the
# target); the seed, run id, time, code version and device do not
_CONFIGURATION = (
    "model",
    "variant",
    "config",
    "overrides",
    "unit",
    "aggregation",
    "split",
    "split_kind",
    "leaky",
)


class RunViewError(InvalidArgumentError):
    """A record that cannot be viewed: a clip missing from the sample table, a fold without a
    single test subject and no table to say whose clips it scored, a multi-label target."""


def leak_text(leaky_split: bool, leaky_selection: bool) -> str:
    """``""`` for a clean run, else ``LEAKY (sample-level split)`` and/or ``LEAKY (test-subject
    epoch selection)`` (both: joined by ``; `` in one pair of brackets)."""
    parts = [
        what
        for what, on in (
            ("sample-level split", leaky_split),
            ("test-subject epoch selection", leaky_selection),
        )
        if on
    ]
    return f"LEAKY ({'; '.join(parts)})" if parts else ""


@dataclass(frozen=True, eq=False)
class RunView:
    """The fields of one run that scoring and comparing need.

    ``y_true`` / ``y_pred`` (n,) int64 (a multi-label view's: (n, K) 0/1), ``sample_ids`` /
    ``subjects`` / ``folds`` (n,) str, ``datasets`` (n,) str or None without a sample table;
    ``fold_sets`` maps each fold name to the sorted tuple of its scored sample ids (what "the
    same folds" means); ``group_key`` is a JSON string of everything that identifies the
    configuration but the seed; ``group_id`` the seed group the run recorded (runs of one
    ``--seeds N``), None for a single-seed run."""

    run_id: str
    model: str
    variant: str
    overrides: dict | None
    epochs: int | None
    seed: int
    split: str
    split_kind: str
    selection: str
    leaky_split: bool
    target: str
    version_id: str
    snapshot_id: str
    class_names: tuple[str, ...]
    sample_ids: np.ndarray
    subjects: np.ndarray
    datasets: np.ndarray | None
    folds: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    fold_sets: dict
    group_key: str
    group_id: str | None = None  # the recorded seed group (``--seeds N``), None before groups

    @property
    def leaky_selection(self) -> bool:
        """True when each fold's epoch was chosen on its test subject."""
        return self.selection in LEAKY_SELECTIONS

    @property
    def leaky(self) -> bool:
        return self.leaky_split or self.leaky_selection

    @property
    def leak_label(self) -> str:
        """``""`` for a clean run, else ``LEAKY (sample-level split)`` and/or ``LEAKY
        (test-subject epoch selection)``."""
        return leak_text(self.leaky_split, self.leaky_selection)

    def describe(self) -> str:
        """One line of what the numbers came from (model, variant, overrides, epochs, seed,
        split, selection, store version) and the LEAKY label where there is one."""
        if self.overrides is None:
            changed = "not recorded"
        else:
            changed = ", ".join(f"{k}={v}" for k, v in sorted(self.overrides.items())) or "none"
        text = (
            f"{self.model}/{self.variant}; overrides {changed}; "
            f"{self.epochs if self.epochs is not None else '?'} epochs; split {self.split}; "
            f"selection {self.selection}; target {self.target}; store version "
            f"{self.version_id}"
        )
        return f"{text}  {self.leak_label}" if self.leak_label else text


# --- accessors: the only places that read record attributes ------------------------------------


def _training(record) -> dict:
    return dict(getattr(record, "training", None) or {})


def _record_folds(record) -> tuple:
    return tuple(record.folds)


def _fold_arrays(fold) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, list]:
    """(name, sample_ids, y_true, y_pred, test subjects) of one fold result."""
    return (
        str(fold.name),
        np.asarray(fold.sample_ids).astype(str),
        np.asarray(fold.y_true),
        np.asarray(fold.y_pred),
        list((fold.info or {}).get("test_subjects") or []),
    )


def _overrides(record) -> dict | None:
    """The config and training settings the run changed from its preset; None for records
    written before overrides were recorded (unknown, not "none")."""
    given = getattr(record, "overrides", None)
    if not given:
        return None
    return {**(given.get("config") or {}), **(given.get("training") or {})}


def record_target(record) -> str:
    """What the run predicts: ``emotion`` classes unless the record says otherwise."""
    return str(getattr(record, "target", None) or _training(record).get("target") or "emotion")


def record_selection(record) -> str:
    return str(_training(record).get("selection", "?"))


def group_key(record) -> str:
    """Everything that identifies a run's configuration except its seed (and the run's own
    id, time, code and device): two seeds of one configuration share it."""
    key = {name: getattr(record, name, None) for name in _CONFIGURATION}
    key["training"] = _training(record)
    key["version_id"] = record.store["version_id"]
    key["target"] = record_target(record)
    return json.dumps(key, sort_keys=True, default=str)


# ------------------------------------------------------------------------------------------------


def _lookup(table: pd.DataFrame, sample_ids: np.ndarray, column: str, run_id: str) -> np.ndarray:
    indexed = table.drop_duplicates("sample_id").set_index("sample_id")[column]
    missing = [str(s) for s in sample_ids if s not in indexed.index]
    if missing:
        raise RunViewError(
            f"run {run_id}: {len(missing)} scored clip(s) are not in the store "
            f"version's sample table (first {missing[0]!r})"
        )
    return indexed.loc[sample_ids].to_numpy().astype(str)


def run_view(record, table: pd.DataFrame | None = None, *, multilabel: bool = False) -> RunView:
    """The :class:`RunView` of ``record``; ``table``: the sample table of the store version it
    read (gives each clip's subject and source dataset). A multi-label run (``--target aus``)
    is refused unless ``multilabel``: its view then holds (n, K) 0/1 ``y_true`` / ``y_pred``
    and its AU names as ``class_names`` (for the AU leaderboard, never for UF1 / UAR)."""
    names, ids, trues, preds, subjects = [], [], [], [], []
    fold_sets = {}
    for fold in _record_folds(record):
        name, sample_ids, y_true, y_pred, tested = _fold_arrays(fold)
        if y_true.ndim != 1 and not multilabel:
            raise RunViewError(
                f"run {record.run_id}: target {record_target(record)!r} is "
                f"multi-label; UF1/UAR comparisons need class targets"
            )
        if table is None:
            if len(tested) != 1 and len(sample_ids):
                raise RunViewError(
                    f"run {record.run_id}: fold {name} tests {len(tested)} "
                    f"subjects; give the store's sample table to tell them apart"
                )
            subjects.append(np.full(len(sample_ids), tested[0] if tested else "", dtype=object))
        names.append(np.full(len(sample_ids), name, dtype=object))
        ids.append(sample_ids)
        trues.append(y_true.astype(np.int64))
        preds.append(y_pred.astype(np.int64))
        fold_sets[name] = tuple(sorted(sample_ids.tolist()))

    def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    sample_ids = cat(ids, str)
    if table is not None:
        subject_of = _lookup(table, sample_ids, "subject", record.run_id)
        dataset_of = _lookup(table, sample_ids, "dataset", record.run_id)
    else:
        subject_of, dataset_of = cat(subjects, str), None
    training = _training(record)
    classes = record.store["class_names"]
    if record_target(record) == "aus":  # the columns are the AUs the run predicts
        classes = training.get("aus") or classes
    return RunView(
        run_id=record.run_id,
        model=record.model,
        variant=record.variant,
        overrides=_overrides(record),
        epochs=training.get("epochs"),
        seed=int(record.seed),
        split=record.split,
        split_kind=record.split_kind,
        selection=record_selection(record),
        leaky_split=bool(record.leaky),
        target=record_target(record),
        version_id=record.store["version_id"],
        snapshot_id=record.store["snapshot_id"],
        class_names=tuple(classes),
        sample_ids=sample_ids,
        subjects=subject_of,
        datasets=dataset_of,
        folds=cat(names, str),
        y_true=cat(trues, np.int64),
        y_pred=cat(preds, np.int64),
        fold_sets=fold_sets,
        group_key=group_key(record),
        group_id=getattr(record, "group_id", None),
    )


def restrict(view: RunView, keep: np.ndarray) -> RunView:
    """``view`` with only the clips where ``keep`` (n,) bool is True (e.g. one dataset)."""
    keep = np.asarray(keep, bool)
    fold_sets = {}
    for name in dict.fromkeys(view.folds[keep].tolist()):
        fold_sets[name] = tuple(sorted(view.sample_ids[keep & (view.folds == name)].tolist()))
    return replace(
        view,
        sample_ids=view.sample_ids[keep],
        subjects=view.subjects[keep],
        datasets=None if view.datasets is None else view.datasets[keep],
        folds=view.folds[keep],
        y_true=view.y_true[keep],
        y_pred=view.y_pred[keep],
        fold_sets=fold_sets,
    )

"""Commit a split of a store version into the store (``mer-prep split``), with class weights and
SMOTE provenance per training fold (the split itself comes from ``evaluation.splits``).

Folds are computed over the reader's ``table`` rows (the processed samples, augmented copies
included): augmented rows follow their parent, SMOTE is fitted on each fold's training rows
only, and its synthetic samples are stored as (parent_a, parent_b, weight) — rebuilt on read
unless asked to be materialised.
"""

from __future__ import annotations

import numpy as np

from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.balance import fold_class_weights, rebuild_smote, smote_plan
from mer_prep.evaluation.splits import Split
from mer_prep.store.layout import SmoteAttrs
from mer_prep.store.writer import write_split


def save_split(store, split: Split, *, smote_features: str | None = None, k_neighbors: int = 5,
               smote_seed: int = 0, materialise: tuple[str, ...] = ()) -> str:
    """Commit ``split`` into ``store`` (a ``FeatureStore`` at the tip of main); snapshot id.

    smote_features: array whose flattened samples SMOTE interpolates (e.g. ``"frames"``);
    None stores no SMOTE. materialise: arrays whose synthetic samples are written out in full
    (``smote_<array>``) instead of being rebuilt from their parents on read.
    """
    table = store.table
    labels = table["label"].to_numpy(dtype=np.int64)
    arrays = {"test_fold": split.test_fold.astype(np.int64),
              "class_weights": fold_class_weights(split, labels, len(store.class_names))}
    smote = None
    if smote_features is not None:
        features = store.array(smote_features, dtype="float32").reshape(len(table), -1)
        parents = store.parents
        plans = [_fold_smote(store, name, features, labels, train, smote_seed, k_neighbors,
                             parents) for name, train, _ in split.folds()]
        arrays.update({
            "smote_fold": np.concatenate([np.full(len(p), f, np.int64)
                                          for f, p in enumerate(plans)]),
            "smote_parent_a": np.concatenate([p.parent_a for p in plans]).astype(np.int64),
            "smote_parent_b": np.concatenate([p.parent_b for p in plans]).astype(np.int64),
            "smote_weight": np.concatenate([p.weight for p in plans]).astype(np.float64),
            "smote_label": np.concatenate([p.label for p in plans]).astype(np.int64),
        })
        for name in materialise:
            values = store.array(name, dtype="float32")
            arrays[f"smote_{name}"] = np.concatenate(
                [rebuild_smote(values, plan) for plan in plans]).astype(store.group[name].dtype)
        smote = SmoteAttrs(features=smote_features,
                           k_neighbors=int(min(p.k_neighbors for p in plans)), seed=smote_seed,
                           materialised=list(materialise)).model_dump()
    attrs = {**split.to_dict(), "version_id": store.version_id, "smote": smote}
    return write_split(store.location, attrs, arrays)


def _fold_smote(store, fold: str, features: np.ndarray, labels: np.ndarray, train: np.ndarray,
                seed: int, k_neighbors: int, parents: np.ndarray):
    """One training fold's SMOTE plan; a class too small to interpolate is named, with what to
    do, instead of imblearn's or our bare message."""
    try:
        return smote_plan(features, labels, train, seed, k_neighbors, parents=parents)
    except InvalidArgumentError as error:
        counts = np.bincount(labels[train][(labels[train] >= 0) & (parents[train] < 0)],
                             minlength=len(store.class_names))
        present = {store.class_names[k]: int(c) for k, c in enumerate(counts) if c}
        raise InvalidArgumentError(
            f"SMOTE on training fold {fold}: {error} (original clips per class there: "
            f"{present}); SMOTE needs two clips of every class it oversamples in every "
            f"training fold: use fewer folds, a coarser label scheme (e.g. --labels megc3 when "
            f"preprocessing), or no --smote") from None

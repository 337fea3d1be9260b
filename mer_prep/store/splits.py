"""Commit a split of a store version into the store (``mer-prep split``), with class weights and
SMOTE provenance per training fold (the split itself comes from ``evaluation.splits``).

``write_split`` commits it on ``main`` on top of the version: group ``splits/<name>``, checked
against ``storage_schemas/split.v1.json`` and sealed with the digests of its attributes and
arrays (``mer_prep.store.split_digest``).

Folds are computed over the reader's ``table`` rows (the processed samples, augmented copies
included): augmented rows follow their parent, SMOTE is fitted on each fold's training rows
only, and its synthetic samples are stored as (parent_a, parent_b, weight) — rebuilt on read
unless asked to be materialised.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import zarr

from mer_prep.errors import InvalidArgumentError, VersionConflictError
from mer_prep.evaluation.balance import fold_class_weights, rebuild_smote, smote_plan
from mer_prep.evaluation.splits import Split
from mer_prep.store.layout import MAIN, SPLIT_SCHEMA_NAME, SPLITS_GROUP, SmoteAttrs, SplitAttrs
from mer_prep.store.repo import Location, open_repository
from mer_prep.store.schema import validate_split
from mer_prep.store.split_digest import DIGESTED_SCHEMA_VERSION as SPLIT_SCHEMA_VERSION
from mer_prep.store.split_digest import seal_split
from mer_prep.store.writer import COMPRESSORS


def save_split(
    store,
    split: Split,
    *,
    smote_features: str | None = None,
    k_neighbors: int = 5,
    smote_seed: int = 0,
    materialise: tuple[str, ...] = (),
) -> str:
    """Commit ``split`` into ``store`` (a ``FeatureStore`` at the tip of main); snapshot id.

    smote_features: array whose flattened samples SMOTE interpolates (e.g. ``"frames"``);
    None stores no SMOTE. materialise: arrays whose synthetic samples are written out in full
    (``smote_<array>``) instead of being rebuilt from their parents on read.
    """
    table = store.table
    labels = table["label"].to_numpy(dtype=np.int64)
    arrays = {
        "test_fold": split.test_fold.astype(np.int64),
        "class_weights": fold_class_weights(split, labels, len(store.class_names)),
    }
    smote = None
    if smote_features is not None:
        features = store.array(smote_features, dtype="float32").reshape(len(table), -1)
        parents = store.parents
        plans = [
            _fold_smote(store, name, features, labels, train, smote_seed, k_neighbors, parents)
            for name, train, _ in split.folds()
        ]
        arrays.update(
            {
                "smote_fold": np.concatenate(
                    [np.full(len(p), f, np.int64) for f, p in enumerate(plans)]
                ),
                "smote_parent_a": np.concatenate([p.parent_a for p in plans]).astype(np.int64),
                "smote_parent_b": np.concatenate([p.parent_b for p in plans]).astype(np.int64),
                "smote_weight": np.concatenate([p.weight for p in plans]).astype(np.float64),
                "smote_label": np.concatenate([p.label for p in plans]).astype(np.int64),
            }
        )
        for name in materialise:
            values = store.array(name, dtype="float32")
            arrays[f"smote_{name}"] = np.concatenate(
                [rebuild_smote(values, plan) for plan in plans]
            ).astype(store.group[name].dtype)
        smote = SmoteAttrs(
            features=smote_features,
            k_neighbors=int(min(p.k_neighbors for p in plans)),
            seed=smote_seed,
            materialised=list(materialise),
        ).model_dump()
    attrs = {**split.to_dict(), "version_id": store.version_id, "smote": smote}
    return write_split(store.location, attrs, arrays)


def _fold_smote(
    store,
    fold: str,
    features: np.ndarray,
    labels: np.ndarray,
    train: np.ndarray,
    seed: int,
    k_neighbors: int,
    parents: np.ndarray,
):
    """One training fold's SMOTE plan; a class too small to interpolate is named, with what to
    do, instead of imblearn's or our bare message."""
    try:
        return smote_plan(features, labels, train, seed, k_neighbors, parents=parents)
    except InvalidArgumentError as error:
        counts = np.bincount(
            labels[train][(labels[train] >= 0) & (parents[train] < 0)],
            minlength=len(store.class_names),
        )
        present = {store.class_names[k]: int(c) for k, c in enumerate(counts) if c}
        raise InvalidArgumentError(
            f"SMOTE on training fold {fold}: {error} (original clips per class there: "
            f"{present}); SMOTE needs two clips of every class it oversamples in every "
            f"training fold: use fewer folds, a coarser label scheme (e.g. --labels megc3 when "
            f"preprocessing), or no --smote"
        ) from None


def write_split(location: Location, attrs: dict, arrays: dict[str, np.ndarray]) -> str:
    """Commit split ``attrs["name"]`` (attributes + arrays) onto ``main``; snapshot id.

    ``attrs``: the fields of ``layout.SplitAttrs`` the writer does not set (a ``Split``'s
    ``to_dict`` plus ``version_id`` and ``smote``). Refuses when ``main`` no longer holds the
    version the split was computed for, and when another commit lands first (Icechunk's
    commit conflict) — never a split of other rows.
    """
    attrs = {
        "schema": SPLIT_SCHEMA_NAME,
        "schema_version": SPLIT_SCHEMA_VERSION,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **attrs,
    }
    validate_split(attrs, arrays)
    split = SplitAttrs.model_validate(attrs)
    arrays = {name: np.ascontiguousarray(values) for name, values in arrays.items()}
    sealed = seal_split(
        split.model_dump(
            mode="json",
            by_alias=True,  # checked on every read
            exclude={"array_digests", "attrs_digest"},
        ),
        arrays,
    )
    repo = open_repository(location)
    session = repo.writable_session(MAIN)
    root = zarr.open_group(session.store, mode="r+")
    on_main = root.attrs.get("version_id")  # None: main holds no version
    if on_main != split.version_id:
        raise VersionConflictError(
            f"store {location}: split {split.name!r} was computed for "
            f"{split.version_id} but main holds {on_main}"
        )
    group = root.require_group(SPLITS_GROUP).create_group(split.name, overwrite=True)
    for name, values in arrays.items():
        array = group.create_array(
            name,
            shape=values.shape,
            dtype=values.dtype,
            compressors=COMPRESSORS,
            # one chunk; a 0-d array: zarr's own choice (a chunk of shape ())
            chunks=tuple(max(d, 1) for d in values.shape) or "auto",
        )
        if values.size:
            array[...] = values
    group.attrs.update(sealed)
    return session.commit(
        f"split {split.name} of {split.version_id}",
        metadata={"version_id": split.version_id, "split": split.name},
    )

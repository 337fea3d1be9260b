"""The reader's splits: stored ones checked against their digests, folds with class weights,
and each training fold's SMOTE plan. ``FeatureStore`` (``mer_prep.store.reader``) mixes
``SplitReader`` in; nothing else uses it.

A stored split is group ``splits/<name>`` of the version (``mer_prep.store.layout``); ``loso``
and ``megc2019`` are computed on demand when the store holds none of that name.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
import zarr
from pydantic import ValidationError

from mer_prep.errors import CorruptDataError, SplitNotFoundError
from mer_prep.evaluation.balance import SmotePlan, fold_class_weights
from mer_prep.evaluation.splits import Split, build_split, fold_index, parent_rows
from mer_prep.store.layout import SPLITS_GROUP, SplitAttrs
from mer_prep.store.nodes import array_at, group_at, read_orthogonal, read_values
from mer_prep.store.repo import StoreLocation
from mer_prep.store.split_digest import check_split_array, check_split_attrs

# Splits a reader computes on demand when the store holds none of that name: deterministic and
# subject-independent. Any other split (k-fold with a seed, the leaky random one) must be made
# with ``mer-prep split`` so that the store records it.
ON_DEMAND_SPLITS = ("loso", "megc2019")


class Fold(NamedTuple):
    """One fold of a split: its name, training and test rows (sorted int64 indices into the
    reader's ``table`` and every array view) and the class weights of its training rows
    ((n_classes,) float64, W_k = N / n_k). A tuple, so ``name, train, test, weights = fold``."""

    name: str
    train: np.ndarray
    test: np.ndarray
    class_weights: np.ndarray


class SplitReader:
    """The split side of ``FeatureStore``: needs its ``group``, ``location``, ``version_id``,
    ``table``, ``labels`` and ``class_names``."""

    group: zarr.Group
    location: StoreLocation
    table: pd.DataFrame

    if TYPE_CHECKING:  # FeatureStore's read-only properties

        @property
        def version_id(self) -> str: ...

        @property
        def labels(self) -> np.ndarray: ...

        @property
        def class_names(self) -> list[str]: ...

    @cached_property
    def parents(self) -> np.ndarray:
        """Row of each ``table`` row's parent (augmented copies), -1 for originals: (n,) int64."""
        return parent_rows(
            self.table["sample_id"].to_numpy(dtype=str),
            self.table["aug_parent"].to_numpy(dtype=str),
        )

    @property
    def split_names(self) -> list[str]:
        """Names of the splits stored with this version."""
        try:
            return (
                sorted(group_at(self.group, SPLITS_GROUP).group_keys())
                if SPLITS_GROUP in self.group
                else []
            )
        except Exception as error:  # unreadable metadata of the splits group
            raise CorruptDataError(
                f"store {self.location}: the splits of {self.version_id} "
                f"cannot be listed ({type(error).__name__}); run `mer-prep "
                f"verify {self.location}`"
            ) from error

    def split(self, name: str = "loso") -> Split:
        """A stored split over ``table`` rows (checked against its digests: ``split_digest``),
        or ``loso`` / ``megc2019`` computed on demand."""
        if name in self.split_names:
            return Split.from_dict(self.split_attrs(name), self.split_array(name, "test_fold"))
        if name in ON_DEMAND_SPLITS:
            return build_split(self.table, name)
        raise SplitNotFoundError(
            f"store {self.location} has no split {name!r} (stored: "
            f"{self.split_names}); make it with `mer-prep split`"
        )

    def split_attrs(self, name: str) -> dict:
        """Attributes of a stored split (kind, leaky, seed, SMOTE settings...), checked against
        their digest; {} if computed."""
        if name not in self.split_names:
            return {}
        attrs = dict(self._split_group(name).attrs)
        check_split_attrs(attrs, self._split_where(name))
        if attrs.get("name") != name:
            raise CorruptDataError(
                f"{self._split_where(name)}: the group holds split "
                f"{attrs.get('name')!r} (corrupt metadata); run `mer-prep "
                f"verify {self.location}`"
            )
        return attrs

    def split_info(self, name: str) -> SplitAttrs | None:
        """The attributes of a stored split, typed and checked as ``split_attrs``; None for a
        split computed on demand."""
        attrs = self.split_attrs(name)
        if not attrs:
            return None
        try:
            return SplitAttrs.model_validate(attrs)
        except ValidationError as error:
            raise CorruptDataError(
                f"{self._split_where(name)}: its attributes are not a "
                f"split's ({error.errors()[0]['loc']}); run `mer-prep "
                f"verify {self.location}`"
            ) from None

    def split_array(self, split: str, name: str) -> np.ndarray:
        """Array ``name`` of stored split ``split``, read whole and checked against the digest
        written with it (a chunk failing its CRC or a lost chunk is a ``CorruptDataError``)."""
        where = self._split_where(split)
        group = self._split_group(split)
        digests = check_split_attrs(dict(group.attrs), where)
        try:
            values = read_values(array_at(group, name))
        except Exception as error:  # missing, failing its CRC, bad manifest
            raise CorruptDataError(
                f"{where}: array {name!r} cannot be read ({type(error).__name__}"
                f": {error}); run `mer-prep verify {self.location}`"
            ) from error
        return check_split_array(digests, name, values, where)

    def _split_where(self, name: str) -> str:
        return f"store {self.location}: split {name!r} of {self.version_id}"

    def _split_group(self, name: str) -> zarr.Group:
        try:
            return group_at(group_at(self.group, SPLITS_GROUP), name)
        except Exception as error:  # its zarr.json no longer parses
            raise CorruptDataError(
                f"{self._split_where(name)}: cannot be opened "
                f"({type(error).__name__}); run `mer-prep verify "
                f"{self.location}`"
            ) from error

    def folds(self, split: str = "loso", *, tta: bool = False) -> Iterator[Fold]:
        """Yield every ``Fold`` of a split: ``(fold name, train rows, test rows, class weights)``.

        Rows index ``table`` and every array view; class weights (n_classes,) float64 are
        W_k = N / n_k over the fold's training rows (stored with the split when it is stored).
        The test rows are the fold's original clips only: an augmented copy of a test clip is
        not a test clip of its own (scoring it would count its clip twice). ``tta=True``
        (test-time augmentation) adds the copies; ``parents[row]`` names each one's original.
        The training rows keep the copies: whether to train on them is the trainer's choice.
        """
        made = self.split(split)
        weights = (
            self.split_array(split, "class_weights")
            if split in self.split_names
            else fold_class_weights(made, self.labels, len(self.class_names))
        )
        original = self.parents < 0
        for i, (name, train, test) in enumerate(made.folds()):
            yield Fold(name, train, test if tta else test[original[test]], weights[i])

    def fold(self, split: str, fold: str | int, *, tta: bool = False) -> Fold:
        """One fold of ``split`` by name or index (``InvalidArgumentError`` naming the folds
        there are otherwise); equal to that element of ``folds``."""
        folds = list(self.folds(split, tta=tta))
        return folds[fold_index([f.name for f in folds], fold, split)]

    def smote(self, split: str, fold: str | int) -> SmotePlan | None:
        """The SMOTE provenance of one training fold of a stored split (None without SMOTE)."""
        info = self.split_info(split)
        if info is None or info.smote is None:
            return None
        index = fold_index(info.fold_names, fold, split)
        mine = self.smote_rows(split, index)
        plan = {
            name: self.split_array(split, f"smote_{name}")[mine]
            for name in ("parent_a", "parent_b", "weight", "label")
        }
        return SmotePlan(
            **plan,
            inputs=np.empty(0, np.int64),
            seed=info.smote.seed,
            k_neighbors=info.smote.k_neighbors,
        )

    def smote_rows(self, split: str, index: int) -> np.ndarray:
        """Positions of fold ``index``'s SMOTE samples among the split's ``smote_*`` arrays."""
        return np.flatnonzero(self.split_array(split, "smote_fold") == index)

    def materialised_smote(
        self, split: str, index: int, arrays: list[str]
    ) -> dict[str, np.ndarray]:
        """Fold ``index``'s synthetic samples of those ``arrays`` the split stored in full
        (``smote_<array>``, ``mer-prep split --materialise``): name -> (m, ...), stored dtype."""
        info = self.split_info(split)
        stored = info.smote.materialised if info is not None and info.smote is not None else []
        group = self._split_group(split)
        mine = self.smote_rows(split, index)
        return {
            name: read_orthogonal(array_at(group, f"smote_{name}"), mine)
            for name in arrays
            if name in stored
        }

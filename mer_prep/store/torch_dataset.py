"""The PyTorch adapter of the reader: one fold of a split as a ``torch.utils.data.Dataset``.

torch is an optional extra (``pip install 'mer-prep[torch]'``); nothing else imports this module.
Items are dicts: one float32 tensor per requested array, ``label`` (int64 scalar: the class;
with ``target="aus"`` a float32 (n_AU,) multi-hot vector over ``store.au_list``), ``row`` (the
``table`` row, -1 for a SMOTE sample), ``synthetic`` (bool), ``copy`` (bool: an augmented
copy) and ``original`` (int64: the ``table`` row of the original clip the item is, or was copied
from; -1 for a SMOTE sample). A test part holds original clips only unless test-time
augmentation is asked for (``tta=True``), and then ``original`` groups each clip's copies with it.
"""

from __future__ import annotations

import numpy as np

from mer_prep.errors import EnvironmentProblem, InvalidArgumentError
from mer_prep.evaluation.balance import rebuild_smote
from mer_prep.evaluation.splits import fold_index

try:
    import torch
    from torch.utils.data import DataLoader, Dataset
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise EnvironmentProblem(
        "FeatureStore.to_torch needs PyTorch: pip install 'mer-prep[train]'"
    ) from error

BALANCES = (None, "weights", "smote")
TARGETS = ("label", "aus")
# fold_dataset's keyword arguments: FeatureStore.loader passes these to it, the rest to DataLoader
DATASET_OPTIONS = ("arrays", "balance", "split", "target", "tta")


class FoldDataset(Dataset):
    """Rows of one fold part, plus (``balance="smote"``) the fold's synthetic samples.

    Every array of the part is read from the store once, in bulk, when the dataset is made;
    items are then views of memory. That is what makes it safe in a ``DataLoader`` with worker
    processes under Linux's default ``fork``: the storage runtime does not survive a fork, and
    workers never touch it. A synthetic sample ``j`` is ``x[a_j] + w_j (x[b_j] - x[a_j])`` over
    its two stored parents read as float32 (``balance.rebuild_smote``), or the materialised
    ``smote_<array>`` when the split stored it.
    ``class_weights`` (float32 tensor, one per class) is the fold's W_k = N / n_k. With
    ``target="aus"`` the labels are the rows' AU vectors (``store.aus``), float32 (n, n_AU).
    """

    def __init__(
        self,
        store,
        rows: np.ndarray,
        arrays: list[str],
        class_weights: np.ndarray,
        smote=None,
        materialised: dict | None = None,
        target: str = "label",
    ) -> None:
        self.rows, self.arrays = np.asarray(rows, np.int64), list(arrays)
        parents = np.asarray(store.parents, np.int64)[self.rows]
        self.originals = np.where(parents >= 0, parents, self.rows)
        self.class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
        self.smote = smote
        labels = store.labels[self.rows] if target == "label" else store.aus[self.rows]
        values = {name: store.array(name, rows=self.rows) for name in self.arrays}
        if smote is not None and len(smote):
            materialised = materialised or {}
            labels = np.concatenate([labels, smote.label.astype(np.int64)])
            for name in self.arrays:
                if name in materialised:
                    extra = np.asarray(materialised[name])
                else:
                    extra = rebuild_smote(
                        lambda rows, name=name: store.array(name, "float32", rows=rows),
                        smote,
                        dtype=np.float32,
                    )
                values[name] = np.concatenate(
                    [values[name].astype(np.float32), extra.astype(np.float32)]
                )
        self.values = {
            name: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
            for name, v in values.items()
        }
        self.labels = torch.from_numpy(
            np.asarray(labels, np.int64 if target == "label" else np.float32)
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        real = index < len(self.rows)
        row = int(self.rows[index]) if real else -1
        original = int(self.originals[index]) if real else -1
        return {
            **{name: values[index] for name, values in self.values.items()},
            "label": self.labels[index],
            "row": row,
            "synthetic": not real,
            "copy": real and original != row,
            "original": original,
        }


def fold_dataset(
    store,
    fold: str | int,
    *,
    part: str = "train",
    arrays: list[str] | None = None,
    balance: str | None = None,
    split: str = "loso",
    target: str = "label",
    tta: bool = False,
) -> FoldDataset:
    """``FeatureStore.to_torch``: the Dataset of one fold's ``part`` of ``split``; the test part
    holds the fold's original clips, plus their augmented copies with ``tta=True``."""
    if part not in ("train", "test"):
        raise InvalidArgumentError(f"part must be 'train' or 'test', got {part!r}")
    if balance not in BALANCES:
        raise InvalidArgumentError(f"balance must be one of {BALANCES}, got {balance!r}")
    if target not in TARGETS:
        raise InvalidArgumentError(f"target must be one of {TARGETS}, got {target!r}")
    if target == "aus" and balance == "smote":
        raise InvalidArgumentError(
            "SMOTE samples have a class, not AUs: target='aus' takes balance None or 'weights'"
        )
    if tta and part != "test":
        raise InvalidArgumentError(
            "tta (test-time augmentation) applies to part='test'; the "
            "training part always holds the copies"
        )
    index = fold_index(list(store.split(split).fold_names), fold, split)
    chosen = store.fold(split, index, tta=tta)
    arrays = arrays or [n for n in store.array_names if n != "landmarks"]
    smote, materialised = None, {}
    if balance == "smote" and part == "train":
        smote = store.smote(split, index)
        if smote is None:
            raise InvalidArgumentError(
                f"split {split!r} stores no SMOTE samples: make it with `mer-prep split --smote`"
            )
        materialised = store.materialised_smote(split, index, arrays)
    return FoldDataset(
        store,
        chosen.train if part == "train" else chosen.test,
        arrays,
        chosen.class_weights,
        smote=smote,
        materialised=materialised,
        target=target,
    )


def fold_loader(
    dataset: FoldDataset,
    *,
    train: bool,
    batch_size: int = 32,
    shuffle: bool | None = None,
    num_workers: int = 0,
    seed: int = 0,
    **loader_options,
) -> DataLoader:
    """``FeatureStore.loader``: a ``DataLoader`` over a fold part's ``dataset``, safe with worker
    processes (the fold is in memory before any worker starts). ``shuffle`` defaults to True
    for the training part (``train``); ``seed`` fixes its order."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train if shuffle is None else shuffle,
        num_workers=num_workers,
        generator=generator,
        **loader_options,
    )

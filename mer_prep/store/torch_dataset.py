"""The PyTorch adapter of the reader: one fold of a split as a ``torch.utils.data.Dataset``.

torch is an optional extra (``pip install 'mer-prep[torch]'``); nothing else imports this module.
Items are dicts: one float32 tensor per requested array, ``label`` (int64 scalar), ``row``
(the ``table`` row, -1 for a SMOTE sample) and ``synthetic`` (bool).
"""

from __future__ import annotations

import numpy as np

from mer_prep.errors import EnvironmentProblem, InvalidArgumentError

try:
    import torch
    from torch.utils.data import Dataset
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise EnvironmentProblem("FeatureStore.to_torch needs PyTorch: pip install "
                             "'mer-prep[train]'") from error

BALANCES = (None, "weights", "smote")


class FoldDataset(Dataset):
    """Rows of one fold part, plus (``balance="smote"``) the fold's synthetic samples.

    A synthetic sample ``j`` is ``x[a_j] + w_j (x[b_j] - x[a_j])`` over the array's stored
    samples, read from its two parents (or from the materialised ``smote_<array>`` when the split
    stored it). ``class_weights`` (float32 tensor, one per class) is the fold's W_k = N / n_k.
    """

    def __init__(self, store, rows: np.ndarray, arrays: list[str], class_weights: np.ndarray,
                 smote=None, materialised: dict | None = None) -> None:
        self.store, self.rows, self.arrays = store, np.asarray(rows, np.int64), list(arrays)
        self.labels = store.labels
        self.class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
        self.smote, self.materialised = smote, materialised or {}

    def __len__(self) -> int:
        return len(self.rows) + (len(self.smote) if self.smote is not None else 0)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        if index < len(self.rows):
            row = int(self.rows[index])
            item = {name: torch.from_numpy(values.astype(np.float32))
                    for name, values in self.store.sample(row, self.arrays).items()}
            return {**item, "label": torch.tensor(self.labels[row]), "row": row,
                    "synthetic": False}
        j = index - len(self.rows)
        plan = self.smote
        item = {name: torch.from_numpy(np.asarray(self.materialised[name][j], np.float32))
                for name in self.arrays if name in self.materialised}
        rebuilt = [name for name in self.arrays if name not in self.materialised]
        if rebuilt:
            a = self.store.sample(int(plan.parent_a[j]), rebuilt)
            b = self.store.sample(int(plan.parent_b[j]), rebuilt)
            for name in rebuilt:
                xa, xb = a[name].astype(np.float32), b[name].astype(np.float32)
                item[name] = torch.from_numpy(xa + np.float32(plan.weight[j]) * (xb - xa))
        return {**item, "label": torch.tensor(int(plan.label[j])), "row": -1, "synthetic": True}


def fold_dataset(store, fold: str | int, *, part: str = "train", arrays: list[str] | None = None,
                 balance: str | None = None, split: str = "loso") -> FoldDataset:
    """``FeatureStore.to_torch``: the Dataset of one fold's ``part`` of ``split``."""
    if part not in ("train", "test"):
        raise InvalidArgumentError(f"part must be 'train' or 'test', got {part!r}")
    if balance not in BALANCES:
        raise InvalidArgumentError(f"balance must be one of {BALANCES}, got {balance!r}")
    folds = list(store.folds(split))
    names = [name for name, *_ in folds]
    index = names.index(fold) if isinstance(fold, str) else int(fold)
    _, train, test, weights = folds[index]
    arrays = arrays or [n for n in store.array_names if n != "landmarks"]
    smote, materialised = None, {}
    if balance == "smote" and part == "train":
        smote = store.smote(split, index)
        if smote is None:
            raise InvalidArgumentError(f"split {split!r} stores no SMOTE samples: make it with "
                             f"`mer-prep split --smote`")
        attrs = store.split_attrs(split)
        group = store.group["splits"][split]
        mine = np.flatnonzero(group["smote_fold"][:] == index)
        materialised = {name: group[f"smote_{name}"].get_orthogonal_selection((mine,))
                        for name in arrays if name in attrs["smote"]["materialised"]}
    return FoldDataset(store, train if part == "train" else test, arrays, weights,
                       smote=smote, materialised=materialised)

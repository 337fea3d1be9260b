"""What a training run checks before its first fold, each refusal one line naming the problem.

- :func:`check_settings`: the seed and the training preset's numbers (a NaN or infinite
  learning rate trains to NaN losses and predictions, which used to be recorded as a result);
- :func:`check_trainable` / :func:`check_split_fits`: a store and split that can give a
  score at all (no processed sample, one class only, ``megc2019`` on a store that is not the
  MEGC 2019 composite);
- :func:`check_finite_inputs`: the arrays read for the run hold no NaN / infinity (naming the
  first sample that does);
- :func:`portable_location`: the store location a record keeps, never naming the user's home.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from mer_prep.labels import COMPOSITES
from mer_prep.train.errors import NonFiniteError, TrainSetupError

#: The largest seed: numpy's and Python's generators take any, torch's and the fold seeds' are
#: 32-bit words here (``fold_seed``), and a negative one is refused by numpy.
MAX_SEED = 2**32 - 1
_FINITE_BLOCK_BYTES = 64 << 20  # rows checked per step: bounds the boolean scratch array


def check_settings(seed: int, preset) -> None:
    """Refuse a seed outside 0..2**32-1 and a preset whose epochs, batch size, lr, eps or betas
    are out of range (``preset``: a ``TrainingPreset`` with overrides applied)."""
    if not 0 <= int(seed) <= MAX_SEED:
        raise TrainSetupError(f"seed must be between 0 and {MAX_SEED}, got {seed}")
    if int(preset.epochs) < 1 or int(preset.batch_size) < 1:
        raise TrainSetupError(
            f"epochs and batch size must be >= 1, got {preset.epochs}, {preset.batch_size}"
        )
    lr = float(preset.lr)
    if not (math.isfinite(lr) and lr > 0):  # NaN fails every comparison: test for it first
        raise NonFiniteError(f"lr must be a finite number > 0, got {preset.lr}")
    numbers = {
        "eps": preset.eps,
        "weight_decay": preset.weight_decay,
        **{f"betas[{i}]": b for i, b in enumerate(preset.betas)},
    }
    bad = {
        name: value
        for name, value in numbers.items()
        if not math.isfinite(float(value)) or float(value) < 0
    }
    if bad:
        raise NonFiniteError(f"training settings must be finite and >= 0: {bad}")


def check_trainable(store, labels: np.ndarray) -> None:
    """Refuse a run that cannot give a score: ``store`` (a ``FeatureStore``) without processed
    samples, or fewer than two classes among its labelled samples. ``labels`` (n,) int64, -1
    unlabelled."""
    where = f"store {store.path}"
    if len(labels) == 0:
        raise TrainSetupError(
            f"{where} holds no processed sample (every sample failed or none "
            f"was found): nothing to train on; see `mer-prep show {store.path}`"
        )
    classes = np.unique(labels[labels >= 0])
    if len(classes) < 2:
        present = [store.class_names[k] for k in classes]
        raise TrainSetupError(
            f"{where}: its labelled samples are of {len(classes)} class(es) "
            f"({', '.join(present) or 'none'}): a classifier needs two or "
            f"more, and a score over one class is meaningless"
        )


def check_split_fits(store, split: str, made) -> None:
    """Refuse the ``megc2019`` protocol (``made``: the split) on a store that is not the MEGC
    2019 composite under the ``megc3`` labels: it would quietly be LOSO over whatever the
    store holds, recorded as "megc2019"."""
    where = f"store {store.path}"
    if made.kind == "megc2019":
        parts = COMPOSITES["megc2019"]
        datasets = set(store.table["dataset"].astype(str))
        missing = [part for part in parts if part not in datasets]
        scheme = store.info.labels
        if missing or scheme != "megc3":
            raise TrainSetupError(
                f"split {split!r} is the MEGC 2019 protocol (LOSO over {' + '.join(parts)} "
                f"under the megc3 labels), but {where} holds {', '.join(sorted(datasets))} "
                f"under the {scheme} labels"
                + (f" (no {', '.join(missing)})" if missing else "")
                + ": use --split loso, or preprocess the megc2019 composite with --labels megc3"
            )


def check_finite_inputs(arrays: dict[str, np.ndarray], sample_ids: np.ndarray, where: str) -> None:
    """Raise :class:`NonFiniteError` naming the array and the first sample (row) of
    ``arrays`` (name -> (n, ...) as read) that holds a NaN or infinity. Float arrays only,
    checked in blocks of rows so that the scratch memory stays small."""
    for name, values in arrays.items():
        if values.dtype.kind not in "fc" or values.size == 0:
            continue
        row_bytes = max(1, values[0].nbytes)
        block = max(1, _FINITE_BLOCK_BYTES // row_bytes)
        for start in range(0, len(values), block):
            part = values[start : start + block].reshape(min(block, len(values) - start), -1)
            bad = np.flatnonzero(~np.isfinite(part).all(axis=1))
            if bad.size:
                row = start + int(bad[0])
                count = int((~np.isfinite(values[row])).sum())
                raise NonFiniteError(
                    f"{where}: array {name!r}, sample {sample_ids[row]} (row "
                    f"{row}) holds {count} NaN/infinite value(s): training "
                    f"would give NaN losses; re-run the preprocessing of "
                    f"that sample or drop it"
                )


def portable_location(location: str) -> str:
    """The store location as a record keeps it: an ``s3://`` URL as is; a local path relative
    to the working directory when under it, else ``~/...`` when under the home directory, else
    absolute (it then names no home directory)."""
    if "://" in location:
        return location
    path = Path(location)
    cwd, home = Path.cwd(), Path.home()
    under_cwd, under_home = _relative(path, cwd), _relative(path, home)
    # relative to a working directory above the home directory would name the user: "~" then
    if under_cwd is not None and (under_home is None or _relative(cwd, home) is not None):
        return under_cwd
    if under_home is not None:
        return "~" if under_home == "." else f"~/{under_home}"
    return os.path.normpath(path)


def _relative(path: Path, base: Path) -> str | None:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return None

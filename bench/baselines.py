"""CPU cost of the reference baselines (STSTNet, OFF-ApexNet, HTNet) on MEGC 2019-sized folds.

    python bench/baselines.py [--folds 4] [--epochs 500] [--family-epochs 2] [--repeats 3]

Arrays of ``ststnet28``'s shapes (flow (2, 28, 28, 2), strain (2, 28, 28) float32; HTNet's
56x56 by 2x nearest upsampling) for 442 clips of 68 subjects (SMIC 16 / 164, CASME II 24 / 145,
SAMM 28 / 133), 3 classes; random values, not clips written through the pipeline: the
training cost depends on the shapes, not the values. Each fold is cut and trained as a run
does (``build_fold``, ``train_fold``, preset batch size, last epoch), torch on one thread.

  ststnet   ``--folds`` LOSO folds at ``--epochs`` (the preset's 500): the median fold's
            seconds, and that x 68 as the whole run's estimate (scaled, not a 68-fold run);
  families  seconds per epoch per fold of each baseline at its preset batch size, the
            families alternated ``--repeats`` times, medians and ratios to STSTNet.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np
import torch

from mer_prep.models import get_model
from mer_prep.train.data import StoreData, build_fold
from mer_prep.train.engine import train_fold

SIZES = ((16, 164), (24, 145), (28, 133))  # (subjects, clips) of SMIC, CASME II, SAMM


def megc_data(side: int, seed: int = 0) -> StoreData:
    rng = np.random.default_rng(seed)
    subjects = []
    for k, (n_subjects, clips) in enumerate(SIZES):
        owners = np.arange(clips) % n_subjects
        subjects += [f"d{k}s{o}" for o in owners]
    n = len(subjects)
    flow = rng.standard_normal((n, 2, side, side, 2)).astype(np.float32)
    strain = rng.random((n, 2, side, side)).astype(np.float32)
    return StoreData(
        arrays={"flow": flow, "strain": strain},
        labels=rng.integers(0, 3, n).astype(np.int64),
        subjects=np.array(subjects),
        sample_ids=np.array([f"clip{i}" for i in range(n)]),
        parents=np.full(n, -1, np.int64),
        class_names=("negative", "positive", "surprise"),
        dims={"flow": ("frame", "y", "x", "uv"), "strain": ("frame", "y", "x")},
    )


def fold_seconds(model: str, data: StoreData, subject: str, index: int, epochs: int) -> float:
    """Seconds to cut and train one fold; per epoch when ``epochs`` is small."""
    spec = get_model(model)
    config = spec.config({})
    preset = dataclasses.replace(spec.training, epochs=epochs, selection="last_epoch")
    start = time.perf_counter()
    test = data.subjects == subject
    fold = build_fold(
        data,
        index,
        subject,
        np.flatnonzero(~test),
        np.flatnonzero(test),
        unit="clip",
        augmented=False,
        weighted=False,
        validation=False,
        seed=index,
    )
    train_fold(fold, spec, config, preset, index, "cpu")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--family-epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data28, data56 = megc_data(28), megc_data(56)
    subjects = sorted(set(data28.subjects.tolist()))
    picked = subjects[:: max(len(subjects) // args.folds, 1)][: args.folds]
    times = [fold_seconds("ststnet", data28, s, i, args.epochs) for i, s in enumerate(picked)]
    median = statistics.median(times)
    print(
        f"ststnet, {args.epochs} epochs, {len(picked)} of {len(subjects)} LOSO folds: median "
        f"{median:.1f} s per fold ({', '.join(f'{t:.1f}' for t in times)}); x {len(subjects)} "
        f"folds = {median * len(subjects) / 60:.1f} min for the whole run (scaled)"
    )
    families = {"ststnet": data28, "offapexnet": data28, "htnet": data56}
    per_epoch: dict[str, list[float]] = {name: [] for name in families}
    for _ in range(args.repeats):  # alternated: the VM's drift hits every family alike
        for name, data in families.items():
            seconds = fold_seconds(name, data, subjects[0], 0, args.family_epochs)
            per_epoch[name].append(seconds / args.family_epochs)
    base = statistics.median(per_epoch["ststnet"])
    for name, values in per_epoch.items():
        m = statistics.median(values)
        preset = get_model(name).training.epochs
        hours = m * preset * len(subjects) / 3600
        print(
            f"{name:<11} {m:8.3f} s/epoch/fold  x{m / base:7.1f} of ststnet  "
            f"preset {preset} epochs x {len(subjects)} folds = {hours:.1f} h"
        )


if __name__ == "__main__":
    main()

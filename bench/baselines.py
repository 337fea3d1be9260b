"""CPU cost of the reference baselines (STSTNet, OFF-ApexNet, HTNet) on MEGC 2019-sized folds.

    python bench/baselines.py [--folds 4] [--epochs 500] [--family-epochs 2] [--repeats 3]
                              [--reference] [--all-folds [--workers 2]]

Arrays of ``ststnet28``'s shapes (flow (2, 28, 28, 2), strain (2, 28, 28) float32; HTNet's
56x56 by 2x nearest upsampling) for 442 clips of 68 subjects (SMIC 16 / 164, CASME II 24 / 145,
SAMM 28 / 133), 3 classes; random values, not clips written through the pipeline: the
training cost depends on the shapes, not the values. Each fold is cut and trained as a run
does (``build_fold``, ``train_fold``, preset batch size, last epoch), torch on one thread.

  ststnet   ``--folds`` LOSO folds at ``--epochs`` (the preset's 500): the median fold's
            seconds, and that x 68 as the whole run's estimate (scaled, not a 68-fold run);
  families  seconds per epoch per fold of each baseline at its preset batch size, the
            families alternated ``--repeats`` times, medians and ratios to STSTNet;
  reference with ``--reference`` every measurement above is also taken, alternated with the
            current code in the same process, on the code paths before issue 22's speed-up
            (:func:`reference_paths`: PyTorch's default Adam, new tensors' memory filled in
            deterministic mode, STSTNet's three streams one by one), and the ratio old / new
            is printed: on a machine shared with other work the absolute seconds drift, the
            ratio of alternated runs much less;
  all folds with ``--all-folds`` the 68 folds are trained at ``--epochs`` in ``--workers``
            processes of one thread each (as ``flows.train``'s Dask workers train) and the
            whole run's wall time is printed: the estimate measured, not scaled.

Measured (issue 22, ``--folds 3 --repeats 3 --reference``) on the project's two-core VM while
other engineers' test suites kept both cores busy (one-minute load 6-9): the seconds were ~2.2x
a quiet machine's and drift, so only the ratio is kept here: STSTNet's fold took x2.39 less
time than on the old paths (folds x2.41, x2.39, x1.98; an earlier run without the memory-fill
change x1.94, x1.94, x1.92). The families' per-epoch ratios (OFF-ApexNet x1.03 and x1.17,
HTNet x1.17 and x1.04 in the two runs) are within the noise. ``--all-folds --workers 2
--epochs 500`` on the quiet VM, after the heap change (``mer_prep.train.heap``): the whole
68-fold run in 8.2 min wall (fold median 14.0 s), 9.8 min before it. Figures and method:
docs/models.md, "CPU cost of the baselines".
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import multiprocessing
import statistics
import time
from collections.abc import Iterator

import numpy as np
import torch

from mer_prep.models import get_model
from mer_prep.models.ststnet import STSTNet
from mer_prep.train import engine
from mer_prep.train.data import StoreData, build_fold
from mer_prep.train.engine import train_fold

SIZES = ((16, 164), (24, 145), (28, 133))  # (subjects, clips) of SMIC, CASME II, SAMM


@functools.cache
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


def _plain_adam(model, preset):
    return torch.optim.Adam(
        model.parameters(),
        lr=preset.lr,
        eps=preset.eps,
        betas=tuple(preset.betas),
        weight_decay=preset.weight_decay,
    )


def _streams_one_by_one(self, x):
    return torch.cat([stream(x) for stream in self.streams], dim=1)


@contextlib.contextmanager
def reference_paths(on: bool = True) -> Iterator[None]:
    """Within it (when ``on``), the code paths before issue 22's speed-up: the engine's Adam is
    PyTorch's default implementation (not the fused kernel), deterministic mode fills new
    tensors' memory (PyTorch's default) and STSTNet runs its three streams one by one (conv,
    ReLU, max-pool each, on a contiguous map). Same maths either way."""
    if not on:
        yield
        return
    adam, fused, fill = engine.adam, STSTNet.fused_streams, engine.FILL_UNINITIALIZED_MEMORY
    engine.adam = _plain_adam  # type: ignore[assignment]
    STSTNet.fused_streams = _streams_one_by_one  # type: ignore[method-assign]
    engine.FILL_UNINITIALIZED_MEMORY = True
    try:
        yield
    finally:
        engine.adam = adam  # type: ignore[assignment]
        STSTNet.fused_streams = fused  # type: ignore[method-assign]
        engine.FILL_UNINITIALIZED_MEMORY = fill


def fold_seconds(
    model: str, data: StoreData, subject: str, index: int, epochs: int, reference: bool = False
) -> float:
    """Seconds to cut and train one fold (on the :func:`reference_paths` when ``reference``)."""
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
    with reference_paths(reference):
        train_fold(fold, spec, config, preset, index, "cpu")
    return time.perf_counter() - start


def _versions(reference: bool) -> tuple[bool, ...]:
    return (False, True) if reference else (False,)


def _label(old: bool) -> str:
    return "before" if old else "now"


def ststnet_folds(data: StoreData, subjects: list[str], args) -> None:
    picked = subjects[:: max(len(subjects) // args.folds, 1)][: args.folds]
    times: dict[bool, list[float]] = {old: [] for old in _versions(args.reference)}
    for old in times:  # warm-up: the first fold of a process pays one-off set-up
        fold_seconds("ststnet", data, picked[0], 0, 2, old)
    for i, subject in enumerate(picked):  # alternated per fold
        for old in times:
            times[old].append(fold_seconds("ststnet", data, subject, i, args.epochs, old))
    for old, values in times.items():
        median = statistics.median(values)
        print(
            f"ststnet {_label(old):<6} {args.epochs} epochs, {len(picked)} of {len(subjects)} "
            f"LOSO folds: median {median:.1f} s per fold "
            f"({', '.join(f'{t:.1f}' for t in values)}); x {len(subjects)} folds = "
            f"{median * len(subjects) / 60:.1f} min for the whole run (scaled)"
        )
    if args.reference:
        ratios = [b / a for a, b in zip(times[False], times[True], strict=True)]
        print(
            f"ststnet before / now per fold: median x{statistics.median(ratios):.2f} "
            f"({', '.join(f'{r:.2f}' for r in ratios)})"
        )


def families(data28: StoreData, data56: StoreData, subject: str, args) -> None:
    datasets = {"ststnet": data28, "offapexnet": data28, "htnet": data56}
    keys = [(name, old) for name in datasets for old in _versions(args.reference)]
    per_epoch: dict[tuple[str, bool], list[float]] = {key: [] for key in keys}
    for name, old in keys:  # warm-up
        fold_seconds(name, datasets[name], subject, 0, 1, old)
    for _ in range(args.repeats):  # alternated: the VM's drift hits every family alike
        for name, old in keys:
            seconds = fold_seconds(name, datasets[name], subject, 0, args.family_epochs, old)
            per_epoch[name, old].append(seconds / args.family_epochs)
    base = statistics.median(per_epoch["ststnet", False])
    for name, old in keys:
        m = statistics.median(per_epoch[name, old])
        preset = get_model(name).training.epochs
        hours = m * preset * 68 / 3600
        ratio = (
            f"  before / now x{m / statistics.median(per_epoch[name, False]):.2f}" if old else ""
        )
        print(
            f"{name:<11}{_label(old):<7}{m:8.3f} s/epoch/fold  x{m / base:7.1f} of ststnet now  "
            f"preset {preset} epochs x 68 folds = {hours:.1f} h{ratio}"
        )


def _one_fold(job: tuple[str, int, int]) -> float:
    subject, index, epochs = job
    torch.set_num_threads(1)
    return fold_seconds("ststnet", megc_data(28), subject, index, epochs)


def all_folds(subjects: list[str], args) -> None:
    jobs = [(s, i, args.epochs) for i, s in enumerate(subjects)]
    start = time.perf_counter()
    if args.workers > 1:
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            times = pool.map(_one_fold, jobs, chunksize=1)
    else:
        times = [_one_fold(job) for job in jobs]
    wall = time.perf_counter() - start
    print(
        f"ststnet all {len(jobs)} LOSO folds, {args.epochs} epochs, {args.workers} worker(s) of "
        f"one thread: {wall / 60:.1f} min wall; per fold median {statistics.median(times):.1f} s "
        f"(min {min(times):.1f}, max {max(times):.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--family-epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference", action="store_true", help="also time the old paths")
    parser.add_argument("--all-folds", action="store_true", help="train all 68 folds")
    parser.add_argument("--workers", type=int, default=1, help="processes for --all-folds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data28, data56 = megc_data(28), megc_data(56)
    subjects = sorted(set(data28.subjects.tolist()))
    if args.all_folds:
        all_folds(subjects, args)
        return
    ststnet_folds(data28, subjects, args)
    families(data28, data56, subjects[0], args)


if __name__ == "__main__":
    main()

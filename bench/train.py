"""Training-engine speed on CPU: throughput per model, the engine's overhead, and the bulk read.

    python bench/train.py [--repeats 5] [--epochs 3] [--threads 1] [--subjects 16] [--clips 8]

In one run it measures, each figure the median of ``--repeats``:

  engine    per model family (tiny configs, random inputs of the shapes below, 64 clips of 8
            subjects, batch 16, ``--epochs`` epochs, selection = last epoch): training rows per
            second (a row is a clip, or a frame for the frames-as-samples models) and the share
            of each epoch spent outside forward + backward + optimiser step (batch indexing on
            the device, the shuffle, the loss bookkeeping; target <= 5 %);
  bulk read a ``dacwb3d`` store (16 x 128 x 128 float16 per clip) of the bench's synthetic
            CASME II look-alike: the whole ``frames`` array through ``FeatureStore.array`` (what
            a run does once), against ``np.load`` of the same array saved as ``.npy`` (page
            cache warm for both), and the cost of cutting every LOSO fold out of memory.

torch runs on ``--threads`` threads (default 1: on a shared two-core machine two threads spin
against each other's load and an epoch takes many times longer).
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from folds import cut_every_fold
from pipeline import bench_parser, ensure_dataset

from mer_prep.models import get_model
from mer_prep.pipeline.local import commit_version
from mer_prep.store import open_store
from mer_prep.train.data import StoreData, build_fold, load_store_data
from mer_prep.train.engine import train_fold

HALVES = {
    "upper": ((8, 16, 32), ("frame", "y_half", "x")),
    "lower": ((8, 16, 32), ("frame", "y_half", "x")),
}
FRAMES = ("frame", "y", "x")
# model -> (config, {array: (per-sample shape, dims)}): test_models.py's tiny sizes
TINY = {
    "mbcc": ({"inputs": "onset_apex"}, {"frames": ((2, 32, 32), FRAMES)}),
    "broadbent": ({}, {"frames": ((8, 32, 32), FRAMES)}),
    "dp3dnet": ({"head": "gap", "filters": 8}, HALVES),
    "ha3dnet": ({"head": "flatten", "filters": 4, "dense": 16}, HALVES),
    "se3dnet": ({"head": "gap", "filters": 16}, HALVES),
    "ha3dsenet": ({"head": "gap", "filters": 8}, HALVES),
    "msres3d": (
        {"block": "basic", "width": 0.125, "depth": (1, 1, 1, 1), "strain": True},
        {"flow": ((8, 32, 32, 2), ("frame", "y", "x", "uv")), "strain": ((8, 32, 32), FRAMES)},
    ),
    "mer3dcnn": ({"head": "flatten", "filters": 4, "dense": 16}, {"frames": ((8, 32, 32), FRAMES)}),
}
N_SUBJECTS, CLIPS, BATCH = 8, 8, 16


def synthetic_data(arrays: dict, seed: int = 0) -> StoreData:
    """64 random clips of 8 subjects and 3 classes, in memory (float16, as stores hold them)."""
    rng = np.random.default_rng(seed)
    n = N_SUBJECTS * CLIPS
    return StoreData(
        arrays={
            name: rng.random((n, *shape), dtype=np.float32).astype(np.float16)
            for name, (shape, _) in arrays.items()
        },
        labels=np.arange(n, dtype=np.int64) % 3,
        subjects=np.repeat([f"s{i}" for i in range(N_SUBJECTS)], CLIPS),
        sample_ids=np.array([f"clip{i}" for i in range(n)]),
        parents=np.full(n, -1, np.int64),
        class_names=("a", "b", "c"),
        dims={name: dims for name, (_, dims) in arrays.items()},
    )


def engine_figures(model: str, epochs: int, repeats: int) -> dict:
    config, arrays = TINY[model]
    spec = get_model(model)
    resolved = spec.config(config)
    data = synthetic_data(arrays)
    test = data.subjects == "s0"
    fold = build_fold(
        data,
        0,
        "s0",
        np.flatnonzero(~test),
        np.flatnonzero(test),
        unit=spec.unit(resolved),
        augmented=False,
        weighted=False,
        validation=False,
        seed=0,
    )
    preset = dataclasses.replace(
        spec.training, epochs=epochs, batch_size=BATCH, selection="last_epoch"
    )
    rates, shares = [], []
    train_fold(fold, spec, resolved, preset, 0, "cpu")  # warm-up: first-call kernel setup
    for repeat in range(repeats):
        result = train_fold(fold, spec, resolved, preset, repeat, "cpu")
        curves = result.curves[1:] or result.curves  # the first epoch pays allocations
        seconds = sum(c.seconds for c in curves)
        rates.append(fold.fit.n_rows * len(curves) / seconds)
        shares.append(sum(c.seconds - c.step_seconds for c in curves) / seconds)
    return {
        "rows": fold.fit.n_rows,
        "unit": spec.unit(resolved),
        "rate": statistics.median(rates),
        "outside": statistics.median(shares),
    }


def write_store(root: Path, path: Path) -> None:
    """A ``dacwb3d`` store of ``root``, written in this process through the real writer."""
    shutil.rmtree(path, ignore_errors=True)
    commit_version("casme2", root, "dacwb3d", path)


def median_seconds(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bulk_figures(work: Path, subjects: int, clips: int, repeats: int) -> dict:
    root = ensure_dataset(work, subjects, clips)
    path = work / "train" / "dacwb3d"
    write_store(root, path)
    store = open_store(path)
    frames = store.array("frames")
    npy = path.parent / "frames.npy"
    np.save(npy, frames)
    # interleaved, so that the VM's drift hits all three alike
    cold_s, cached_s, npy_s = [], [], []
    store.array("frames", cache=True)  # fills the decoded-array cache once
    for _ in range(repeats):  # the store open, as a run has it: its table is read once
        cold_s.append(median_seconds(lambda: store.array("frames"), 1))
        cached_s.append(median_seconds(lambda: store.array("frames", cache=True), 1))
        npy_s.append(median_seconds(lambda: np.load(npy), 1))
    store_s, cache_s, npy_s = (statistics.median(x) for x in (cold_s, cached_s, npy_s))
    data = load_store_data(store, ["frames"])
    folds = [(name, train, test) for name, train, test, _ in store.folds("loso")]

    def cut_folds():
        cut_every_fold(data, folds, augmented=False, weighted=False)

    return {
        "n": len(frames),
        "mib": frames.nbytes / 2**20,
        "shape": frames.shape[1:],
        "store_s": store_s,
        "cache_s": cache_s,
        "npy_s": npy_s,
        "folds": len(folds),
        "fold_s": median_seconds(cut_folds, repeats),
    }


def main() -> None:
    parser = bench_parser(__doc__, repeats=5, epochs=3, threads=1, subjects=16, clips=8)
    parser.add_argument("--models", nargs="*", default=list(TINY))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(
        f"engine on CPU ({args.threads} thread(s)), {N_SUBJECTS * (CLIPS - 1)} training clips,"
        f" batch {BATCH}, {args.epochs} epochs, median of {args.repeats}"
    )
    print(f"{'model':<10} {'unit':<5} {'rows':>5} {'rows/s':>9} {'outside step':>13}")
    for model in args.models:
        f = engine_figures(model, args.epochs, args.repeats)
        flag = "" if f["outside"] <= 0.05 else "  > 5 %"
        print(
            f"{model:<10} {f['unit']:<5} {f['rows']:>5} {f['rate']:>9.1f} "
            f"{100 * f['outside']:>12.1f}%{flag}"
        )

    b = bulk_figures(args.work, args.subjects, args.clips, args.repeats)
    shape = "x".join(str(s) for s in b["shape"])
    print(
        f"\nbulk read of frames ({b['n']} clips x {shape} float16, {b['mib']:.1f} MiB), "
        f"median of {args.repeats}"
    )
    print(f"{'reader':<28} {'seconds':>8} {'MiB/s':>8} {'speed vs .npy':>14}")
    for label, seconds in (
        ("store, decoded (first read)", b["store_s"]),
        ("store, decoded-array cache", b["cache_s"]),
        ("np.load (.npy)", b["npy_s"]),
    ):
        print(
            f"{label:<28} {seconds:>8.3f} {b['mib'] / seconds:>8.0f} {b['npy_s'] / seconds:>8.2f}x"
        )
    print(
        f"cutting {b['folds']} LOSO folds from memory (fit / validation / test parts): "
        f"{b['fold_s']:.3f} s"
    )


if __name__ == "__main__":
    main()

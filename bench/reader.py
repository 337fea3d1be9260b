"""Read throughput of the trainer-facing reader, and what SMOTE costs on disk.

    python bench/reader.py [--subjects 10] [--clips 5] [--work bench/.work]

On a synthetic CASME II look-alike (640x480) it writes an ``ha3d`` store in this process (no
Prefect: the store is the subject here), then measures, in one run:
  reads     samples/second for random-order reads of one LOSO fold's training samples
            (``frames``, ``upper``, ``lower``: one sample per chunk, Blosc zstd) through
            ``FeatureStore.sample`` and through ``to_torch``, against the same arrays read
            from plain ``.npy`` memory maps (the page cache warm for both);
  disk      the store's size, and after committing a LOSO split with SMOTE stored as
            provenance (parents + weights) versus materialised in full.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from pipeline import ensure_dataset

from mer_prep.evaluation.splits import build_split
from mer_prep.pipeline.local import commit_version
from mer_prep.store import open_store
from mer_prep.store.splits import save_split

ARRAYS = ("frames", "upper", "lower")


def write_store(root: Path, store: Path) -> None:
    """The ``ha3d`` store of ``root``, written in this process through the real writer."""
    shutil.rmtree(store, ignore_errors=True)
    commit_version("casme2", root, "ha3d", store)


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def samples_per_second(read_one, rows: np.ndarray, repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for row in rows:
            read_one(int(row))
        best = min(best, time.perf_counter() - start)
    return len(rows) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / ".work")
    args = parser.parse_args()

    root = ensure_dataset(args.work, args.subjects, args.clips)
    path = args.work / "reader" / "ha3d"
    write_store(root, path)
    store = open_store(path)
    name, train, _, _ = next(store.folds("loso"))
    order = np.random.default_rng(0).permutation(train)
    print(
        f"ha3d store: {len(store.table)} samples; fold {name}: {len(train)} training samples, "
        f"read in random order; arrays {', '.join(ARRAYS)}"
    )

    memmaps = {}
    for a in ARRAYS:
        np.save(path.parent / f"{a}.npy", store.array(a))
        memmaps[a] = np.load(path.parent / f"{a}.npy", mmap_mode="r")
    dataset = store.to_torch(name, arrays=list(ARRAYS))
    position = {int(r): i for i, r in enumerate(train)}

    store_rate = samples_per_second(lambda r: store.sample(r, list(ARRAYS)), order)
    torch_rate = samples_per_second(lambda r: dataset[position[r]], order)
    npy_rate = samples_per_second(lambda r: [np.array(memmaps[a][r]) for a in ARRAYS], order)
    print(f"{'reader':>22s} {'samples/s':>10s} {'vs .npy':>8s}")
    for label, rate in (
        ("store.sample", store_rate),
        ("to_torch Dataset", torch_rate),
        (".npy memmap", npy_rate),
    ):
        print(f"{label:>22s} {rate:10.0f} {rate / npy_rate:8.2f}")

    base = disk_bytes(path)
    sizes = {}
    for label, materialise in (("provenance", ()), ("materialised", ARRAYS)):
        copy = path.parent / f"ha3d-{label}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(path, copy)
        opened = open_store(copy)
        save_split(
            opened,
            build_split(opened.table, "loso"),
            smote_features="frames",
            materialise=materialise,
        )
        sizes[label] = disk_bytes(copy)
        n_smote = int(open_store(copy).group["splits"]["loso"]["smote_fold"].shape[0])
    print(
        f"\nstore on disk: {base / 2**20:.1f} MiB; with a LOSO split and its {n_smote} SMOTE "
        f"samples as provenance: {sizes['provenance'] / 2**20:.1f} MiB "
        f"({sizes['provenance'] / base:.3f}x); materialised: "
        f"{sizes['materialised'] / 2**20:.1f} MiB ({sizes['materialised'] / base:.2f}x)"
    )


if __name__ == "__main__":
    main()

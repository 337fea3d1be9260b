"""Fold fan-out of the ``train`` flow: the same CPU training run on 1 and on 2 Dask workers.

    python bench/train_flow.py [--repeats 3] [--subjects 8] [--clips 3] [--epochs 40]

An ``mbcc64`` store of the bench's synthetic CASME II look-alike (``--subjects`` LOSO folds),
MBCC in a small config (``difference`` inputs), PyTorch on one thread per worker. Each cluster
(1, then 2 single-threaded worker processes, loopback) is warmed by one run (imports, the store
read into each worker's plan cache), then timed over ``--repeats`` runs: the median seconds of
``flows.train.run_train`` from call to record, and the 2-over-1 speed-up (target >= 1.7 on two
free cores; the folds are independent and coarse). Also printed: the folds' own seconds
(``FoldResult.timings``) and the load average, since the machine may be shared.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from flows.runtime import prefect_environment

MBCC = {"filters": [16, 32], "dense": 64}


def main() -> None:
    prefect_environment(tempfile.mkdtemp(prefix="bench-train-flow-"), logging_level="WARNING")

    from distributed import LocalCluster
    from pipeline import bench_parser, ensure_dataset

    from flows.cluster import configure_local_workers, local_cluster_kwargs
    from flows.runtime import prefect_api
    from flows.train import run_train
    from mer_prep.pipeline.local import commit_version
    from mer_prep.store import open_store

    args = bench_parser(__doc__, repeats=3, subjects=8, clips=3, epochs=40).parse_args()
    root = ensure_dataset(args.work, args.subjects, args.clips).resolve()
    store = (args.work / "train-flow" / f"mbcc64-{args.subjects}x{args.clips}").resolve()
    commit_version("casme2", root, "mbcc64", store)
    n_folds = open_store(store).split("loso").n_folds
    run = {
        "variant": "difference",
        "config": MBCC,
        "epochs": args.epochs,
        "batch_size": 8,
        "lr": 1e-3,
        "seed": 0,
    }
    rows = {}
    load_before = os.getloadavg()
    with prefect_api():
        for workers in (1, 2):
            configure_local_workers()
            kwargs = {k: v for k, v in local_cluster_kwargs(workers).items() if k != "security"}
            with LocalCluster(**kwargs) as cluster:
                address = cluster.scheduler_address
                run_train(str(store), "mbcc", dask_address=address, **run)  # warm-up
                walls, fold_s = [], []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    record = run_train(str(store), "mbcc", dask_address=address, **run)
                    walls.append(time.perf_counter() - start)
                    fold_s.append(sum(f.timings["total_s"] for f in record.folds))
                    assert len(record.folds) == n_folds
                    used = set(record.timings["fold_workers"].values())
                    assert len(used) == workers, used
                rows[workers] = (statistics.median(walls), statistics.median(fold_s), walls)
    load_after = os.getloadavg()

    print(
        f"train flow fan-out: mbcc/difference {MBCC}, {args.epochs} epochs, {n_folds} LOSO "
        f"folds of {store.name}; median of {args.repeats}; torch on 1 thread per worker"
    )
    print(f"{'workers':>7s} {'run s':>7s} {'folds s':>8s}  runs")
    for workers, (wall, folds, walls) in rows.items():
        print(f"{workers:7d} {wall:7.2f} {folds:8.2f}  {', '.join(f'{w:.2f}' for w in walls)}")
    print(f"2-over-1-worker speed-up: {rows[1][0] / rows[2][0]:.2f} (target >= 1.7)")
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"({os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()

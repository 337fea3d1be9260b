"""Speed of the face pipeline, as ratios measured in one run.

    python bench/pipeline.py [--subjects 10] [--clips 5] [--work bench/.work]

On a synthetic CASME II look-alike at 640x480 it measures, per recipe:
  floor     decoding exactly the frames the recipe reads + one dlib HOG detection + one
            68-point fit per sample, sequentially in this process (the least any pipeline does);
  library   ``process_sample`` per sample, sequentially in this process;
  flow      the whole ``preprocess`` flow (scan, fingerprint, Prefect tasks on Dask, writes,
            validation, commit) on warmed 1- and 2-worker local clusters, per sample;
and prints library/floor, flow(1 worker)/floor, the 2-over-1-worker speed-up and each worker's
peak resident memory. Prefect runs against a private ephemeral server (telemetry off).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="mer-prep-bench-prefect-"))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("DASK_DISTRIBUTED__LOGGING__DISTRIBUTED", "error")

import numpy as np  # noqa: E402

from mer_prep.datasets import scan_dataset  # noqa: E402
from mer_prep.face import detect_face, fit_landmarks  # noqa: E402
from mer_prep.frame_selection import select_frames  # noqa: E402
from mer_prep.process import decode_clip_frames, process_sample  # noqa: E402
from mer_prep.recipes import load_recipe  # noqa: E402
from mer_prep.synth.generate import generate_dataset  # noqa: E402


def floor_seconds(samples, recipe) -> float:
    """Mean seconds per sample to decode the needed frames, detect once and fit once."""
    total = 0.0
    for sample in samples:
        start = time.perf_counter()
        positions = np.unique(select_frames(sample, recipe))
        frames = decode_clip_frames(sample, positions)
        onset = frames[int(np.searchsorted(positions, select_frames(sample, recipe)[0]))]
        box = detect_face(onset, method=recipe.detect.method, fallback=False)
        fit_landmarks(onset, box)
        total += time.perf_counter() - start
    return total / len(samples)


def library_seconds(samples, recipe) -> float:
    start = time.perf_counter()
    for sample in samples:
        process_sample(sample, recipe)
    return (time.perf_counter() - start) / len(samples)


def _warm_worker(root: str, recipe_name: str) -> None:
    """Import Prefect's task engine and the library, load the models: steady-state timings."""
    import prefect.task_engine  # noqa: F401

    from mer_prep.datasets import scan_dataset
    from mer_prep.process import process_sample
    from mer_prep.recipes import load_recipe

    process_sample(scan_dataset("casme2", root).samples[0], load_recipe(recipe_name))


def _peak_rss() -> int:
    """Peak resident bytes of this process (VmHWM: ru_maxrss would include the parent's peak,
    inherited across fork + exec)."""
    with open("/proc/self/status") as status:
        line = next(l for l in status if l.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def flow_seconds(root: Path, recipe_name: str, n_workers: int, work: Path) -> tuple[float, list[int], dict]:
    """Wall seconds of one full flow run on a warmed local cluster; peak RSS per worker (bytes)."""
    from distributed import Client, LocalCluster

    from flows.preprocess import run_preprocess

    store = work / "stores" / f"{recipe_name}-{n_workers}w"
    shutil.rmtree(store, ignore_errors=True)
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        client.run(_warm_worker, str(root), recipe_name)
        start = time.perf_counter()
        summary = run_preprocess("casme2", str(root), recipe_name, str(store),
                                 n_workers=n_workers, dask_address=cluster.scheduler_address)
        wall = time.perf_counter() - start
        peaks = list(client.run(_peak_rss).values())
    if summary["n_failed"]:
        print(f"warning: {summary['n_failed']} samples failed: {summary['failures'][:3]}",
              file=sys.stderr)
    return wall, peaks, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / ".work")
    parser.add_argument("--recipes", nargs="+", default=["mbcc64", "ha3d"])
    args = parser.parse_args()

    from flows.runtime import prefect_api

    root = args.work / f"CASME2-{args.subjects}x{args.clips}"
    if not (root / "_ground_truth" / "manifest.json").exists():
        shutil.rmtree(root, ignore_errors=True)
        generate_dataset("casme2", root, n_subjects=args.subjects,
                         clips_per_subject=args.clips, seed=0)
    samples = [s for s in scan_dataset("casme2", root).samples]
    print(f"dataset: {len(samples)} clips, {args.subjects} subjects, 640x480, {root}")

    rows = []
    with prefect_api():
        for name in args.recipes:
            recipe = load_recipe(name)
            usable = [s for s in samples if not (recipe.needs_apex and s.apex is None)]
            process_sample(usable[0], recipe)  # load models before timing
            floor = floor_seconds(usable, recipe)
            library = library_seconds(usable, recipe)
            wall1, peaks1, summary = flow_seconds(root, name, 1, args.work)
            wall2, peaks2, _ = flow_seconds(root, name, 2, args.work)
            n = summary["n_samples"]
            in_worker = sum(summary["stage_seconds"].values()) / summary["n_ok"]
            rows.append((name, n, floor, library, in_worker, wall1 / n, wall2 / n,
                         max(peaks1 + peaks2) / 2**20, summary))

    print()
    print("ms per sample; 'worker' = stages + write inside the 1-worker flow run")
    print(f"{'recipe':8s} {'n':>3s} {'floor':>7s} {'library':>8s} {'worker':>7s} {'flow 1w':>8s} "
          f"{'lib/floor':>9s} {'worker/floor':>12s} {'flow1w/floor':>12s} {'1w smp/s':>8s} "
          f"{'2w smp/s':>8s} {'2w/1w':>6s} {'peak MiB/worker':>15s}")
    for name, n, floor, library, worker, per1, per2, peak, _ in rows:
        print(f"{name:8s} {n:3d} {floor * 1e3:7.1f} {library * 1e3:8.1f} {worker * 1e3:7.1f} "
              f"{per1 * 1e3:8.1f} {library / floor:9.2f} {worker / floor:12.2f} "
              f"{per1 / floor:12.2f} {1 / per1:8.1f} {1 / per2:8.1f} {per1 / per2:6.2f} "
              f"{peak:15.0f}")
    for name, *_, summary in rows:
        stages, phases = summary["stage_seconds"], summary["phase_seconds"]
        total = sum(stages.values())
        print(f"{name} stage shares (1 worker): "
              + ", ".join(f"{k} {v / total:.0%}" for k, v in stages.items()))
        print(f"{name} flow phases (1 worker, s): "
              + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))


if __name__ == "__main__":
    main()

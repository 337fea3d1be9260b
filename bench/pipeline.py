"""Speed of the face pipeline, as ratios measured in one run.

    python bench/pipeline.py [--subjects 10] [--clips 5] [--work bench/.work]

On a synthetic CASME II look-alike at 640x480 it measures, per recipe:
  floor     decoding exactly the frames the recipe reads + one dlib HOG detection + one
            68-point fit per sample, sequentially in this process (the least any pipeline does);
  library   ``process_sample`` per sample, sequentially in this process;
  worker    stage + write time per sample inside the workers of the 1-worker flow run;
  dask      the same batches (plan, layout, process, write, commit) on plain Dask, no Prefect;
  flow      the whole ``preprocess`` flow (scan, fingerprint, Prefect tasks on Dask, writes,
            validation, commit) on warmed 1- and 2-worker local clusters, per sample;
and prints the ratios to the floor, the 2-over-1-worker speed-ups and each worker's peak
resident memory. Everything runs with native thread pools pinned to one thread per process,
as the flow's workers do. Prefect runs against a private ephemeral server (telemetry off).
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
from mer_prep.threads import pin_threads  # noqa: E402


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

    from mer_prep.threads import pin_threads

    pin_threads(1)

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


def plain_dask_seconds(client, root: Path, recipe_name: str, n_workers: int, store: Path) -> float:
    """The flow's library calls wired on plain Dask (no Prefect): wall seconds."""
    from mer_prep.batch import combine_batches, process_batch
    from mer_prep.planning import make_batches, plan_version
    from mer_prep.store.writer import VersionWriter

    start = time.perf_counter()
    recipe = load_recipe(recipe_name)
    plan = plan_version("casme2", root, recipe, store)
    writer = VersionWriter.begin(plan)
    items = list(zip(range(len(plan.samples)), plan.samples, plan.fingerprints))
    futures = [client.submit(process_batch, writer.fork(), [items[i] for i in rows], recipe,
                             plan.array_specs(), plan.class_names, pure=False)
               for rows in make_batches(len(items), n_workers)]
    run = combine_batches(client.gather(futures), len(items))
    writer.finish(run.forks, run.rows, run.failures)
    return time.perf_counter() - start


def flow_seconds(root: Path, recipe_name: str, n_workers: int,
                 work: Path) -> tuple[float, float, list[int], dict]:
    """Wall seconds of the plain-Dask wiring and of one full flow run on a warmed local
    cluster; peak RSS per worker (bytes); the flow's summary."""
    from distributed import Client, LocalCluster

    from flows.preprocess import run_preprocess

    stores = work / "stores"
    shutil.rmtree(stores, ignore_errors=True)
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        client.run(_warm_worker, str(root), recipe_name)
        plain = plain_dask_seconds(client, root, recipe_name, n_workers, stores / "dask")
        start = time.perf_counter()
        summary = run_preprocess("casme2", str(root), recipe_name, str(stores / "flow"),
                                 n_workers=n_workers, dask_address=cluster.scheduler_address)
        wall = time.perf_counter() - start
        peaks = list(client.run(_peak_rss).values())
    if summary["n_failed"]:
        print(f"warning: {summary['n_failed']} samples failed: {summary['failures'][:3]}",
              file=sys.stderr)
    return plain, wall, peaks, summary


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
    pin_threads(1)
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
            plain1, wall1, peaks1, summary = flow_seconds(root, name, 1, args.work)
            plain2, wall2, peaks2, summary2 = flow_seconds(root, name, 2, args.work)
            n = summary["n_samples"]
            in_worker = sum(summary["stage_seconds"].values()) / summary["n_ok"]
            rows.append((name, n, floor, library, in_worker, plain1 / n, plain2 / n, wall1 / n,
                         wall2 / n, max(peaks1 + peaks2) / 2**20, summary, summary2))

    print()
    print("ms per sample (floor, library: in this process; worker: inside the 1-worker flow;")
    print("dask/flow: end-to-end wall over samples with 1 and 2 workers)")
    print(f"{'recipe':8s} {'n':>3s} {'floor':>6s} {'library':>7s} {'worker':>6s} {'dask1':>6s} "
          f"{'dask2':>6s} {'flow1':>6s} {'flow2':>6s} | {'lib/fl':>6s} {'wrk/fl':>6s} "
          f"{'dask1/fl':>8s} {'flow1/fl':>8s} {'dask 2/1':>8s} {'flow 2/1':>8s} {'MiB/wkr':>7s}")
    for name, n, floor, library, worker, d1, d2, f1, f2, peak, _, _ in rows:
        ms = [v * 1e3 for v in (floor, library, worker, d1, d2, f1, f2)]
        print(f"{name:8s} {n:3d} " + " ".join(f"{v:6.1f}" if i != 1 else f"{v:7.1f}"
                                              for i, v in enumerate(ms))
              + f" | {library / floor:6.2f} {worker / floor:6.2f} {d1 / floor:8.2f} "
              f"{f1 / floor:8.2f} {d1 / d2:8.2f} {f1 / f2:8.2f} {peak:7.0f}")
    print(f"samples/s: " + ", ".join(f"{r[0]} flow 1w {1 / r[7]:.1f} 2w {1 / r[8]:.1f}" for r in rows))
    for name, *_, summary, summary2 in rows:
        stages = summary["stage_seconds"]
        total = sum(stages.values())
        print(f"{name} stage shares (1 worker): "
              + ", ".join(f"{k} {v / total:.0%}" for k, v in stages.items()))
        for label, s in (("1 worker", summary), ("2 workers", summary2)):
            print(f"{name} flow phases ({label}, s): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in s["phase_seconds"].items()))


if __name__ == "__main__":
    main()

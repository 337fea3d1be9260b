"""Speed of the face pipeline, as ratios measured in one run.

    python bench/pipeline.py [--subjects 10] [--clips 5] [--repeat 5] [--work bench/.work]

On a synthetic CASME II look-alike at 640x480 it measures, per recipe:
  floor     decoding exactly the frames the recipe reads + one dlib HOG detection + one
            68-point fit per sample, sequentially in this process (the least any pipeline does);
            the detection is the cascade's first stage, HOG on a copy downscaled to a 240-px
            shorter side (before the cascade: at full resolution, ~2.4x slower per sample on
            640x480; bench/detect.py compares the two);
  library   ``process_sample`` per sample, sequentially in this process;
  machine   ``process_sample`` over all samples in 1 plain process, then split over 2 processes
            at once: what this machine's cores give two workers before any Dask or Prefect;
  worker    stage + write time per sample inside the workers of the 1-worker flow run;
  dask      the same batches (plan, layout, process, write, commit) on plain Dask, no Prefect;
  flow      the whole ``preprocess`` flow (scan, fingerprint, Prefect tasks on Dask, writes,
            validation, commit) on warmed 1- and 2-worker local clusters, per sample;
and prints the ratios to the floor, the 2-over-1-worker speed-ups and each worker's peak
resident memory. Wall times of dask, flow and machine are medians of ``--repeat`` runs, taken
alternately with 1 and 2 workers (this machine's timings drift by 20-30 % within minutes).
Everything runs with native thread pools pinned to one thread per process, as the flow's
workers do. Prefect runs against a private ephemeral server (telemetry off).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from flows.runtime import prefect_environment  # imports no Prefect

os.environ.setdefault("DASK_DISTRIBUTED__LOGGING__DISTRIBUTED", "error")
prefect_environment(
    os.environ.get("PREFECT_HOME") or tempfile.mkdtemp(prefix="mer-prep-bench-prefect-"),
    logging_level="WARNING",
)

import numpy as np

from mer_prep.datasets import scan_dataset
from mer_prep.face import detect_clip_face, fit_landmarks
from mer_prep.pipeline.frame_selection import clip_span, select_frames
from mer_prep.pipeline.process import decode_clip_frames, process_sample
from mer_prep.recipes import load_recipe
from mer_prep.synth.generate import generate_dataset
from mer_prep.synth.ground_truth import ground_truth_dir
from mer_prep.threads import pin_threads


def bench_parser(doc: str, **defaults: int) -> argparse.ArgumentParser:
    """A bench's command line: described by ``doc``'s first paragraph, an integer option
    ``--<name>`` for each of ``defaults`` (in their order) and ``--work`` (bench/.work)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    for name, default in defaults.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / ".work")
    return parser


def ensure_dataset(work: Path, subjects: int, clips: int) -> Path:
    """The bench's synthetic CASME II look-alike (640x480), generated once per size."""
    root = work / f"CASME2-{subjects}x{clips}"
    if not (ground_truth_dir(root) / "manifest.json").exists():
        shutil.rmtree(root, ignore_errors=True)
        generate_dataset("casme2", root, n_subjects=subjects, clips_per_subject=clips, seed=0)
    return root


def onset_frame(sample, recipe) -> np.ndarray:
    """The onset frame, decoded with exactly the other frames ``recipe`` reads."""
    positions = np.unique(select_frames(sample, recipe))
    frames = decode_clip_frames(sample, positions)
    return frames[int(np.searchsorted(positions, clip_span(sample).onset))]


def floor_seconds(samples, recipe) -> float:
    """Mean seconds per sample to decode the needed frames, detect once and fit once."""
    total = 0.0
    for sample in samples:
        start = time.perf_counter()
        onset = onset_frame(sample, recipe)
        box = detect_clip_face(onset, method=recipe.detect.method, fallback=False)
        fit_landmarks(onset, box)
        total += time.perf_counter() - start
    return total / len(samples)


def library_seconds(samples, recipe) -> float:
    start = time.perf_counter()
    for sample in samples:
        process_sample(sample, recipe)
    return (time.perf_counter() - start) / len(samples)


def _process_all(root: str, recipe_name: str, rows: list[int]) -> float:
    """In a fresh process: load the models, then seconds to process ``rows`` of the dataset."""
    pin_threads(1)
    samples = scan_dataset("casme2", root).samples
    recipe = load_recipe(recipe_name)
    process_sample(samples[0], recipe)
    start = time.perf_counter()
    for row in rows:
        process_sample(samples[row], recipe)
    return time.perf_counter() - start


def machine_seconds(root: Path, recipe_name: str, n_samples: int, repeat: int) -> dict:
    """Median wall seconds of processing every sample in 1 process and in 2 processes at
    once (half each, interleaved), in worker-like processes (same malloc settings)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from flows.preprocess import WORKER_ENVIRONMENT

    saved = {key: os.environ.get(key) for key in WORKER_ENVIRONMENT}
    os.environ.update(WORKER_ENVIRONMENT)  # malloc reads them at process start
    try:
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            one, two = [], []
            for _ in range(repeat):
                one.append(
                    pool.submit(
                        _process_all, str(root), recipe_name, list(range(n_samples))
                    ).result()
                )
                halves = [
                    pool.submit(_process_all, str(root), recipe_name, list(range(k, n_samples, 2)))
                    for k in (0, 1)
                ]
                two.append(max(half.result() for half in halves))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return {"one": statistics.median(one), "two": statistics.median(two)}


def _warm_worker(root: str, recipe_name: str) -> None:
    """Import Prefect's task engine and the library, load the models: steady-state timings."""
    import prefect.task_engine  # noqa: F401

    from mer_prep.threads import pin_threads

    pin_threads(1)

    from mer_prep.datasets import scan_dataset
    from mer_prep.pipeline.process import process_sample
    from mer_prep.recipes import load_recipe

    process_sample(scan_dataset("casme2", root).samples[0], load_recipe(recipe_name))


def _peak_rss() -> int:
    """Peak resident bytes of this process (VmHWM: ru_maxrss would include the parent's peak,
    inherited across fork + exec)."""
    with open("/proc/self/status") as status:
        line = next(entry for entry in status if entry.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def plain_dask_seconds(client, root: Path, recipe_name: str, n_workers: int, store: Path) -> float:
    """The flow's library calls wired on plain Dask (no Prefect): wall seconds."""
    from flows.batching import make_batches
    from mer_prep.pipeline.batch import BatchJob, combine_batches, process_batch, sample_jobs
    from mer_prep.pipeline.planning import plan_version
    from mer_prep.store.writer import VersionWriter

    start = time.perf_counter()
    recipe = load_recipe(recipe_name)
    plan = plan_version("casme2", root, recipe, store)
    writer = VersionWriter.begin(plan)
    items = sample_jobs(plan)
    futures = [
        client.submit(
            process_batch,
            BatchJob(
                writer.fork(), [items[i] for i in rows], recipe, plan.arrays, plan.class_names
            ),
            pure=False,
        )
        for rows in make_batches(len(items), n_workers)
    ]
    run = combine_batches(client.gather(futures), plan.n_rows)
    writer.finish(run.forks, run.rows, run.failures)
    return time.perf_counter() - start


def scaling_seconds(root: Path, recipe_name: str, work: Path, repeat: int) -> dict[int, dict]:
    """On warmed local clusters of 1 and 2 workers, alive side by side: the plain-Dask
    wiring and the flow, alternating between the clusters so that a slow spell of this
    machine hits both alike. The flow runs once cold per cluster (each worker pays its
    one-time Prefect task-engine start), then ``repeat`` times warm, each into a fresh store.

    Per worker count: median wall seconds of ``dask`` and ``warm``, ``cold``, the median warm
    run's summary, and peak RSS per worker (bytes).
    """
    from distributed import Client, LocalCluster

    from flows.preprocess import configure_local_workers, run_preprocess

    configure_local_workers()
    stores = work / "stores"
    shutil.rmtree(stores, ignore_errors=True)
    with contextlib.ExitStack() as stack:
        clients, addresses = {}, {}
        for n_workers in (1, 2):
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                )
            )
            addresses[n_workers] = cluster.scheduler_address
            # not the default client: prefect-dask's task runner would take a default client
            # over the address it is given, and run every flow on the last cluster made
            clients[n_workers] = stack.enter_context(Client(cluster, set_as_default=False))
            clients[n_workers].run(_warm_worker, str(root), recipe_name)
        dask = {n: [] for n in clients}
        runs = {n: [] for n in clients}
        for i in range(repeat + 1):
            for n, client in clients.items():
                if i:  # the plain-Dask wiring needs no cold run: nothing Prefect to start
                    dask[n].append(
                        plain_dask_seconds(client, root, recipe_name, n, stores / f"dask-{n}w-{i}")
                    )
                start = time.perf_counter()
                summary = run_preprocess(
                    "casme2",
                    str(root),
                    recipe_name,
                    str(stores / f"flow-{n}w-{i}"),
                    n_workers=n,
                    dask_address=addresses[n],
                )
                runs[n].append((time.perf_counter() - start, summary))
        out = {}
        for n, client in clients.items():
            warm = sorted(runs[n][1:], key=lambda run: run[0])
            seconds, summary = warm[len(warm) // 2]
            if any(s.n_failed for _, s in runs[n]):
                print(f"warning: samples failed in {recipe_name} runs", file=sys.stderr)
            out[n] = {
                "dask": statistics.median(dask[n]),
                "cold": runs[n][0][0],
                "warm": seconds,
                "summary": summary,
                "peaks": list(client.run(_peak_rss).values()),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / ".work")
    parser.add_argument("--recipes", nargs="+", default=["mbcc64", "ha3d"])
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing (median)")
    args = parser.parse_args()

    from flows.runtime import prefect_api

    root = ensure_dataset(args.work, args.subjects, args.clips)
    pin_threads(1)
    samples = [s for s in scan_dataset("casme2", root).samples]
    print(f"dataset: {len(samples)} clips, {args.subjects} subjects, 640x480, {root}")

    rows = []
    with prefect_api():
        for name in args.recipes:
            recipe = load_recipe(name)
            process_sample(samples[0], recipe)  # load models before timing
            floor = floor_seconds(samples, recipe)
            library = library_seconds(samples, recipe)
            machine = machine_seconds(root, name, len(samples), args.repeat)
            one, two = scaling_seconds(root, name, args.work, args.repeat).values()
            n = one["summary"].n_samples
            in_worker = sum(one["summary"].stage_seconds.values()) / one["summary"].n_ok
            rows.append(
                {
                    "name": name,
                    "n": n,
                    "floor": floor,
                    "library": library,
                    "worker": in_worker,
                    "one": one,
                    "two": two,
                    "machine": machine,
                    "peak": max(one["peaks"] + two["peaks"]) / 2**20,
                }
            )

    print()
    print("ms per sample. floor, library: in this process; machine: plain processes, no Dask;")
    print("worker: stages + write inside the workers of the 1-worker flow; dask: plain-Dask")
    print("wiring; flow: steady-state run; cold: the first flow run on a fresh cluster.")
    print("1/2: workers (processes).")
    columns = (
        "floor",
        "library",
        "mach1",
        "mach2",
        "worker",
        "dask1",
        "dask2",
        "flow1",
        "flow2",
        "cold1",
        "cold2",
    )
    print(f"{'recipe':8s} {'n':>3s} " + " ".join(f"{c:>7s}" for c in columns))
    for r in rows:
        n, one, two, machine = r["n"], r["one"], r["two"], r["machine"]
        values = (
            r["floor"],
            r["library"],
            machine["one"] / n,
            machine["two"] / n,
            r["worker"],
            one["dask"] / n,
            two["dask"] / n,
            one["warm"] / n,
            two["warm"] / n,
            one["cold"] / n,
            two["cold"] / n,
        )
        print(f"{r['name']:8s} {n:3d} " + " ".join(f"{v * 1e3:7.1f}" for v in values))
    print()
    print(
        f"{'recipe':8s} {'lib/floor':>9s} {'worker/floor':>12s} {'flow1/floor':>11s} "
        f"{'machine 2p/1p':>13s} {'dask 2w/1w':>10s} {'flow 2w/1w':>10s} "
        f"{'process 2w/1w':>13s} "
        f"{'1w smp/s':>8s} {'2w smp/s':>8s} {'peak MiB/worker':>15s}"
    )
    for r in rows:
        n, one, two, floor, machine = r["n"], r["one"], r["two"], r["floor"], r["machine"]
        process = one["summary"].phase_seconds["process"] / two["summary"].phase_seconds["process"]
        print(
            f"{r['name']:8s} {r['library'] / floor:9.2f} {r['worker'] / floor:12.2f} "
            f"{one['warm'] / n / floor:11.2f} {machine['one'] / machine['two']:13.2f} "
            f"{one['dask'] / two['dask']:10.2f} "
            f"{one['warm'] / two['warm']:10.2f} {process:13.2f} {n / one['warm']:8.1f} "
            f"{n / two['warm']:8.1f} {r['peak']:15.0f}"
        )
    for r in rows:
        stages = r["one"]["summary"].stage_seconds
        total = sum(stages.values())
        print(
            f"{r['name']} stage shares (1 worker): "
            + ", ".join(f"{k} {v / total:.0%}" for k, v in stages.items())
        )
        for label, key in (("1 worker", "one"), ("2 workers", "two")):
            phases = r[key]["summary"].phase_seconds
            print(
                f"{r['name']} flow phases ({label}, s): "
                + ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
                + f"; outside them {r[key]['warm'] - sum(phases.values()):.2f}"
            )


if __name__ == "__main__":
    main()

"""Throughput and memory of the whole long-video recipe (``mer-prep run <long-video dataset>``).

    python bench/long_video.py [--recipe lv64] [--seconds 60] [--fps 200] [--repeats 2]

On a synthetic SAMM-LV look-alike (one grey 128x128 recording, ``--seconds`` at ``--fps``; its
first 3 s are rendered with planted expressions and the rest of the frame files are hard links
to them in turn, so nothing holds the video in memory and the disk holds 3 s of JPEGs) it
measures, each in a fresh single-threaded process and alternated over ``--repeats``, medians:

  recipe   CPU seconds of the whole run in one process (``make_long_version`` in-process: scan,
           fingerprints, face once, every time chunk decoded, aligned, TV-L1 + strain + region
           statistics, written to a fresh Icechunk store, committed), frames per second per
           core, and the process's peak resident memory (``ru_maxrss``) for the whole video;
  floor    the sum of the stages no implementation can skip: decoding every frame (grey),
           detecting the face once (HOG + landmarks) and TV-L1 flow of every pair at the
           recipe's size (timed on ``--flow-pairs`` pairs, scaled to all pairs and ks);
  workers  wall seconds of the same run on a local Dask cluster (127.0.0.1, no dashboard) of 1
           and of 2 single-threaded workers, time chunks as tasks, on a ``--worker-seconds``
           slice of the video; 1 and 2 alternated.

It prints the ratios (recipe / floor, target <= 1.3; two workers over one, target >= 1.8; peak
memory, target <= 1 GiB) and the estimate for CAS(ME)^2 (97 videos, about 0.43 M frames at
30 fps) with this recipe on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASME_SQ_FRAMES = 430_000


def write_video(root: Path, seconds: float, fps: float) -> int:
    """A SAMM-LV layout of one ``seconds`` x ``fps`` recording (module docstring); its frames."""
    from mer_prep.synth.long_video_layouts import write_long_layout
    from mer_prep.synth.long_videos import plan_long_video

    rendered = int(3 * fps)
    plan = plan_long_video(0, n_frames=rendered, fps=fps, gray=True, n_mae=1, key="samm-lv")
    write_long_layout("samm-lv", root, [plan], quirks=False)
    (folder,) = (root / "SAMM_longvideos").iterdir()
    files = sorted(folder.iterdir())
    n_frames = int(seconds * fps)
    for index in range(rendered, n_frames):  # 5 digits past 9999: the adapter reads any
        os.link(files[index % rendered], folder / f"{folder.name}_{index + 1:04d}.jpg")
    return n_frames


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_recipe(root: str, recipe: str) -> dict:
    """The whole run in this process: CPU and wall seconds, peak RSS (MiB), frames."""
    from mer_prep.pipeline.long_sequence import make_long_version
    from mer_prep.pipeline.sequence import InProcess
    from mer_prep.threads import pin_threads

    pin_threads(1)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as store:
        cpu, wall = _cpu(), time.perf_counter()
        run = make_long_version("samm-lv", root, recipe, Path(store) / "s", InProcess())
        cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    assert run.summary.n_ok == 1, run.summary.failures
    frames = run.plan.videos[0].n_frames
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"cpu": cpu, "wall": wall, "frames": frames, "peak_mib": peak, "import_mib": base_rss}


def child_floor(root: str, recipe_name: str, flow_pairs: int) -> dict:
    """CPU seconds of decoding every frame, detecting once, and TV-L1 of every pair."""

    from mer_prep.datasets.long_video import scan_long_videos
    from mer_prep.face.align import align_clip
    from mer_prep.motion.flow import tvl1_flow
    from mer_prep.pipeline.long_video import DECODE_BATCH, decode_frames, locate_face
    from mer_prep.recipes.long_video import load_long_video_recipe
    from mer_prep.threads import pin_threads

    pin_threads(1)
    recipe = load_long_video_recipe(recipe_name)
    video = scan_long_videos("samm-lv", root).videos[0]
    cpu = _cpu()
    for start in range(0, video.n_frames, DECODE_BATCH):
        decode_frames(video, start, min(start + DECODE_BATCH, video.n_frames))
    decode = _cpu() - cpu
    cpu = _cpu()
    face = locate_face(video, recipe)
    detect = _cpu() - cpu
    ks = recipe.ks_for(video.fps)
    sample = align_clip(decode_frames(video, 0, flow_pairs + max(ks)), face.matrix, recipe.size)
    cpu = _cpu()
    for i in range(flow_pairs):
        tvl1_flow(sample[i], sample[i + ks[0]], recipe.flow)
    per_pair = (_cpu() - cpu) / flow_pairs
    flow = per_pair * sum(video.n_frames - k for k in ks)
    return {"decode": decode, "detect": detect, "flow": flow, "flow_ms": per_pair * 1e3}


def _run_job(job):
    from mer_prep.threads import pin_threads

    pin_threads(1)
    return job.run()


class DaskCalls:
    """``submit_calls`` of a runner on a Dask client: one task per job, as the flow's runner."""

    outlives_run = False

    def __init__(self, client) -> None:
        self.client = client
        #: wall seconds of each batch of jobs, from submission to the last result
        self.phases: list[float] = []

    def submit_calls(self, jobs):
        from distributed import as_completed

        start = time.perf_counter()
        futures = [self.client.submit(_run_job, job, pure=False) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
        self.phases.append(time.perf_counter() - start)


def workers_wall(root: str, recipe: str, n_workers: int) -> tuple[float, float]:
    """Wall seconds of the whole run on a fresh local cluster of ``n_workers`` (started
    first), and of its time-chunk phase alone (the faces found, the version not yet
    committed)."""
    from distributed import Client, LocalCluster

    from mer_prep.pipeline.long_sequence import make_long_version

    env = {"OMP_NUM_THREADS": "1", "MALLOC_TRIM_THRESHOLD_": "268435456"}
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            env=env,
        ) as cluster,
        Client(cluster) as client,
        tempfile.TemporaryDirectory() as store,
    ):
        client.run(lambda: __import__("mer_prep.pipeline.long_jobs"))  # imports, off the clock
        calls = DaskCalls(client)
        wall = time.perf_counter()
        run = make_long_version("samm-lv", root, recipe, Path(store) / "s", calls)
        wall = time.perf_counter() - wall
    assert run.summary.n_ok == 1
    return wall, calls.phases[-1]


def _child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _print_walls(
    walls: dict[int, list[tuple[float, float]]], seconds: float
) -> tuple[float, float]:
    """Print the 1- and 2-worker medians and their ratio; (one, two) wall seconds."""
    one, two = (statistics.median(w for w, _ in walls[n]) for n in (1, 2))
    one_chunks, two_chunks = (statistics.median(c for _, c in walls[n]) for n in (1, 2))
    print(
        f"{seconds:g} s slice on Dask: 1 worker {one:.1f} s, 2 workers {two:.1f} s: "
        f"{one / two:.2f}x (target >= 1.8; {os.cpu_count() or 1} cores here); the time chunks "
        f"alone {one_chunks:.1f} s / {two_chunks:.1f} s: {one_chunks / two_chunks:.2f}x"
    )
    return one, two


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="lv64")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=float, default=200.0)
    parser.add_argument("--worker-seconds", type=float, default=10.0)
    parser.add_argument("--flow-pairs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / ".work" / "long")
    parser.add_argument(
        "--workers-only", action="store_true", help="only the 1- and 2-worker walls"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = (
            child_recipe(*rest) if kind == "recipe" else child_floor(rest[0], rest[1], int(rest[2]))
        )
        print(json.dumps(result))
        return
    shutil.rmtree(args.work, ignore_errors=True)
    whole, part = args.work / "whole", args.work / "part"
    n = 0 if args.workers_only else write_video(whole, args.seconds, args.fps)
    write_video(part, args.worker_seconds, args.fps)
    print(f"{args.recipe}: one {args.seconds:g} s video at {args.fps:g} fps ({n} frames)")
    recipes: list[dict] = []
    floors: list[dict] = []
    walls: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    for repeat in range(args.repeats):
        if not args.workers_only:
            recipes.append(_child("recipe", str(whole), args.recipe))
            floors.append(_child("floor", str(whole), args.recipe, str(args.flow_pairs)))
        for n_workers in (1, 2) if repeat % 2 == 0 else (2, 1):
            walls[n_workers].append(workers_wall(str(part), args.recipe, n_workers))
        print(f"  repeat {repeat}: recipe {recipes[-1:]}, floor {floors[-1:]}, walls {walls}")
    if args.workers_only:
        _print_walls(walls, args.worker_seconds)
        return
    cpu = statistics.median(r["cpu"] for r in recipes)
    floor = {k: statistics.median(f[k] for f in floors) for k in floors[0]}
    floor_cpu = floor["decode"] + floor["detect"] + floor["flow"]
    fps_core = n / cpu
    peak = max(r["peak_mib"] for r in recipes)
    one, two = _print_walls(walls, args.worker_seconds)
    print(f"whole recipe: {cpu:.1f} CPU s, {fps_core:.0f} frames/s per core")
    print(
        f"floor: decode {floor['decode']:.1f} s + detect {floor['detect']:.2f} s + TV-L1 "
        f"{floor['flow']:.1f} s ({floor['flow_ms']:.2f} ms/pair) = {floor_cpu:.1f} CPU s, "
        f"{n / floor_cpu:.0f} frames/s per core"
    )
    print(f"recipe / floor: {cpu / floor_cpu:.2f}x (target <= 1.3)")
    print(
        f"peak memory of the one-process run: {peak:.0f} MiB (imports alone "
        f"{statistics.median(r['import_mib'] for r in recipes):.0f} MiB; target <= 1024)"
    )
    hours = CASME_SQ_FRAMES / fps_core / 3600
    print(
        f"CAS(ME)^2 estimate ({CASME_SQ_FRAMES:,} frames, {args.recipe}): {hours:.1f} core-hours; "
        f"{hours / (one / two):.1f} h on 2 workers here at the measured {one / two:.2f}x "
        f"(decoding measured on 128x128 grey frames: CAS(ME)^2's 640x480 colour JPEGs "
        f"decode slower)"
    )


if __name__ == "__main__":
    main()

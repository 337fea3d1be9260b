"""Speed of the production path, as figures measured in one run.

    python bench/orchestration.py [--repeats 5] [--throughput] [--subjects 10] [--clips 5]

Starts a real ``prefect server`` on loopback (private PREFECT_HOME, telemetry off) and
``mer-prep serve`` against it (its standing local Dask cluster of 2 workers), then:

**Overhead of a deployment run** (always): ``prefect deployment run ... --watch`` from the
command to its exit, for ``preprocess/casme2`` (a small synthetic CASME II look-alike, 4 clips
at 240x320, into a fresh store each time: plan, process, commit) and ``train/casme2-mbcc`` (MBCC
in a tiny config, LOSO over its 2 subjects). Overhead = wall time minus the flow's own work,
the work being the run's flow body as Prefect's timeline has it (the subflow on the Dask task
runner: planning, processing or training, committing, the artifact). Medians of
``--repeats``, after one warm-up run of each, with the breakdown from Prefect's timeline: the
CLI until the run exists, until it runs, until its body starts, the body, until the run ends,
and until the command exits (Prefect's ``--watch`` waits 3 s for stragglers after the end).

**Throughput** (``--throughput``): ``preprocess/casme2`` on a 640x480 look-alike of
``--subjects`` x ``--clips`` into a fresh store with 1 and then 2 workers: seconds, samples/s,
the 2-over-1 speed-up, and the overhead as wall time minus the stage seconds (summed over
workers, divided by the workers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))  # the server harness

from server_harness import PrefectServer, get_json, post_json, serving, wait_for

SMALL = {"n_subjects": 2, "clips_per_subject": 2, "seed": 11, "n_frames": 12, "size": (240, 320)}
PHASES = ("cli", "to_running", "to_body", "body", "to_end", "watch_exit")


def _t(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def timed_run(server: PrefectServer, deployment: str, *params: str) -> dict:
    """One ``prefect deployment run --watch``: wall seconds and the timeline's phases."""
    start = time.time()
    done = server.deployment_run(deployment, *params, timeout=600)
    end = time.time()
    if done.returncode:
        raise SystemExit(f"{deployment} failed:\n{done.stdout}\n{done.stderr}")
    run_id = next(line.split()[-1] for line in done.stdout.splitlines() if "UUID:" in line)
    outer = get_json(f"{server.api}/flow_runs/{run_id}")
    (inner,) = post_json(
        f"{server.api}/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}}
    )
    marks = [
        start,
        _t(outer["created"]),
        _t(outer["start_time"]),
        _t(inner["start_time"]),
        _t(inner["end_time"]),
        _t(outer["end_time"]),
        end,
    ]
    phases = dict(zip(PHASES, (b - a for a, b in itertools.pairwise(marks)), strict=True))
    return {
        "wall": end - start,
        "work": phases["body"],
        "overhead": end - start - phases["body"],
        **phases,
    }


def overhead_figures(server: PrefectServer, base: Path, repeats: int) -> dict:
    store = base / "stores" / "casme2" / "mbcc64"
    timed_run(server, "preprocess/casme2")  # warm-up: commits the store, triggers a training

    def trained():
        from mer_prep.train import list_runs

        return list_runs(store)

    wait_for("the triggered training run", trained, 300, server.procs)
    timed_run(server, "train/casme2-mbcc")  # warm-up of the training path
    rows = {"preprocess/casme2": [], "train/casme2-mbcc": []}
    for i in range(repeats):
        rows["preprocess/casme2"].append(
            timed_run(server, "preprocess/casme2", f"store={base / f'fresh-{i}-{time.time_ns()}'}")
        )
        rows["train/casme2-mbcc"].append(timed_run(server, "train/casme2-mbcc"))
    return rows


def throughput_figures(base: Path, args) -> list[tuple]:
    """1 vs 2 workers on the 640x480 look-alike, with a server and `mer-prep serve` of its own."""
    from pipeline import ensure_dataset

    from mer_prep.store import open_store

    root = ensure_dataset(args.work, args.subjects, args.clips).resolve()
    work = base / "throughput"
    work.mkdir()
    config = work / "mer-prep.toml"
    config.write_text(
        f'[defaults]\nrecipe = "{args.recipe}"\nn_workers = 2\n'
        f'store_roots = ["{work}"]\n\n[datasets.casme2]\nroot = "{root}"\n'
    )
    rows = []
    with serving(work, config, "preprocess/casme2", logging_level="WARNING") as server:
        for workers in (1, 2):
            store = work / f"store-{workers}w-{time.time_ns()}"
            start = time.perf_counter()
            done = server.deployment_run(
                "preprocess/casme2", f"store={store}", f"n_workers={workers}", timeout=1200
            )
            wall = time.perf_counter() - start
            if done.returncode:
                raise SystemExit(f"deployment run failed:\n{done.stdout}\n{done.stderr}")
            attrs = open_store(store).attrs
            rows.append((workers, attrs["n_samples"], wall, sum(attrs["stage_seconds"].values())))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--throughput",
        action="store_true",
        help="Also time 1 vs 2 workers on the 640x480 look-alike.",
    )
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--recipe", default="mbcc64")
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / ".work")
    args = parser.parse_args()

    from mer_prep.synth.generate import generate_dataset

    base = (args.work / "orchestration" / f"run-{time.time_ns()}").resolve()
    small = (args.work / "orchestration" / "CASME2-small").resolve()
    if not (small.parent / "small.done").exists():
        generate_dataset("casme2", small, **SMALL)
        (small.parent / "small.done").write_text("ok")
    base.mkdir(parents=True, exist_ok=True)
    config = base / "mer-prep.toml"
    config.write_text(f"""
[defaults]
recipe = "{args.recipe}"
n_workers = 2
store_roots = ["{base}"]

[datasets.casme2]
root = "{small}"

[trainings.quick]
dataset = "casme2"
model = "mbcc"
variant = "difference"
epochs = 3
batch_size = 4
config = {{ filters = [8, 16], dense = 32 }}
""")
    load_before = os.getloadavg()
    with serving(
        base, config, "preprocess/casme2", "train/casme2-mbcc", logging_level="WARNING"
    ) as server:
        rows = overhead_figures(server, base, args.repeats)
    load_after = os.getloadavg()
    throughput = throughput_figures(base, args) if args.throughput else None

    print(
        f"`prefect deployment run ... --watch`, seconds, median of {args.repeats} "
        f"(after a warm-up run each); overhead = wall - the flow's own work (its body)"
    )
    print(
        f"{'deployment':<20s} {'wall':>6s} {'work':>6s} {'overhead':>8s}   "
        + " ".join(f"{p:>10s}" for p in PHASES)
    )
    for name, runs in rows.items():
        median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        print(
            f"{name:<20s} {median['wall']:6.2f} {median['work']:6.2f} "
            f"{median['overhead']:8.2f}   " + " ".join(f"{median[p]:10.2f}" for p in PHASES)
        )
        print(f"{'':<20s} overheads: " + ", ".join(f"{r['overhead']:.2f}" for r in runs))
        for i, run in enumerate(runs):  # where an outlier's time went
            if run["overhead"] > 1.3 * median["overhead"]:
                print(
                    f"{'':<20s} run {i} (outlier): "
                    + ", ".join(f"{p} {run[p]:.2f}" for p in PHASES)
                )
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"({os.cpu_count()} cores)"
    )
    if throughput:
        print(
            f"\npreprocess/casme2 ({args.recipe}), {throughput[0][1]} samples, 640x480, on "
            f"the standing cluster of `mer-prep serve`:"
        )
        print(f"{'workers':>7s} {'seconds':>8s} {'samples/s':>9s} {'overhead s':>10s}")
        for workers, n, wall, stages in throughput:
            print(f"{workers:7d} {wall:8.1f} {n / wall:9.2f} {wall - stages / workers:10.1f}")
        print(f"2-over-1-worker speed-up: {throughput[0][2] / throughput[1][2]:.2f}")


if __name__ == "__main__":
    main()

"""Speed of the production path, as figures measured in one run.

    python bench/orchestration.py [--subjects 10] [--clips 5] [--recipe mbcc64]

Starts a real ``prefect server`` on loopback (private PREFECT_HOME, telemetry off) and
``mer-prep serve`` against it, then times ``prefect deployment run preprocess/casme2 --watch``
on a synthetic CASME II look-alike (640x480) into a fresh store with 1 and then 2 local Dask
workers (the deployment's ``n_workers`` parameter). Prints per run: seconds from the command to
the completed run, samples/second, the 2-over-1 speed-up, and the orchestration overhead —
wall time minus the stage seconds (summed over workers, divided by the workers).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pipeline import ensure_dataset  # noqa: E402

from flows.server import BIN, PrefectServer  # noqa: E402

from mer_prep.store import open_store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--recipe", default="mbcc64")
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / ".work")
    args = parser.parse_args()

    root = ensure_dataset(args.work, args.subjects, args.clips).resolve()
    base = (args.work / "orchestration").resolve()
    base.mkdir(parents=True, exist_ok=True)
    config = base / "mer-prep.toml"
    config.write_text(f'[defaults]\nrecipe = "{args.recipe}"\n\n'
                      f'[datasets.casme2]\nroot = "{root}"\ncron = "0 3 * * *"\n')
    server = PrefectServer(base, logging_level="WARNING")
    try:
        server.start()
        server.spawn("serve", [str(BIN / "mer-prep"), "serve", "--config", str(config)])
        server.wait_for_deployment("preprocess/casme2")
        env = server.client_env
        rows = []
        for workers in (1, 2):
            store = base / f"store-{workers}w-{time.time_ns()}"
            start = time.perf_counter()
            done = subprocess.run(
                [str(BIN / "prefect"), "deployment", "run", "preprocess/casme2", "--watch",
                 "-p", f"store={store}", "-p", f"n_workers={workers}"],
                env=env, cwd=base, capture_output=True, text=True, timeout=1200)
            wall = time.perf_counter() - start
            if done.returncode:
                raise SystemExit(f"deployment run failed:\n{done.stdout}\n{done.stderr}")
            attrs = open_store(store).attrs
            rows.append((workers, attrs["n_samples"], wall,
                         sum(attrs["stage_seconds"].values())))
    finally:
        server.stop()

    print(f"preprocess/casme2 ({args.recipe}), {rows[0][1]} samples, 640x480; "
          f"`prefect deployment run --watch` to completed run:")
    print(f"{'workers':>7s} {'seconds':>8s} {'samples/s':>9s} {'overhead s':>10s}")
    for workers, n, wall, stages in rows:
        print(f"{workers:7d} {wall:8.1f} {n / wall:9.2f} {wall - stages / workers:10.1f}")
    print(f"2-over-1-worker speed-up: {rows[0][2] / rows[1][2]:.2f}")


if __name__ == "__main__":
    main()

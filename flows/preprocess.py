"""The `preprocess` flow: thin wiring of the library over Prefect tasks on a Dask cluster.

scan + fingerprint (library) → up to date? return the existing version → lay out the version →
one task per coarse batch, each writing through its own Icechunk fork → merge, validate, commit,
tag (library). Nothing here computes pixels.
"""

from __future__ import annotations

import time
from pathlib import Path

import dask
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.futures import as_completed
from prefect_dask import DaskTaskRunner

from mer_prep.batch import BatchResult, combine_batches, process_batch
from mer_prep.planning import make_batches, plan_version, scan_failures
from mer_prep.recipes import load_recipe
from mer_prep.store.writer import VersionWriter, existing_version
from mer_prep.threads import pin_threads

from flows.runtime import prefect_api


@task(name="process-batch", cache_policy=NONE, retries=1)
def process_batch_task(fork, items, recipe, specs, class_names) -> BatchResult:
    """One coarse batch on a Dask worker, its native thread pools pinned to one thread."""
    pin_threads(1)
    return process_batch(fork, items, recipe, specs, class_names)


# Set before a worker process starts. Dask's default MALLOC_TRIM_THRESHOLD_ of 64 KiB also
# freezes glibc's mmap threshold at 128 KiB, so every decoded 640x480 frame is a fresh mmap with
# page faults: decoding and numpy ran 25-40 % slower in workers than in a plain process
# (measured). Fixed, larger thresholds keep frame-sized buffers on the heap.
WORKER_ENVIRONMENT = {
    "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20), "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
}


def configure_local_workers() -> None:
    """Make local Dask nannies start workers with ``WORKER_ENVIRONMENT``."""
    dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENVIRONMENT})


def task_runner(dask_address: str | None, n_workers: int) -> DaskTaskRunner:
    """An existing scheduler by address, or a local cluster of single-threaded processes."""
    if dask_address:
        return DaskTaskRunner(address=dask_address)
    configure_local_workers()
    return DaskTaskRunner(cluster_kwargs={
        "n_workers": n_workers, "threads_per_worker": 1, "processes": True,
        "dashboard_address": ":0",
    })


@flow(name="preprocess", log_prints=True)
def preprocess(dataset: str, root: str | dict[str, str], recipe: str = "ha3d",
               store: str | None = None, labels: str = "native", n_workers: int = 2,
               options: dict | None = None, progress: bool = False) -> dict:
    """Preprocess ``dataset`` under ``root`` with ``recipe`` into the versioned store ``store``.

    Returns a summary: store, version_id, snapshot, up_to_date, counts and stage timings (s).
    """
    logger = get_run_logger()
    started = time.perf_counter()
    recipe_model = load_recipe(recipe)
    store = store or str(Path("stores") / dataset / recipe_model.name)
    plan = plan_version(dataset, root, recipe_model, store, labels=labels, **(options or {}))
    phases = {"plan": time.perf_counter() - started}
    summary = {"store": str(Path(plan.store_path).resolve()), "version_id": plan.version_id,
               "dataset": dataset, "recipe": recipe_model.name, "n_samples": len(plan.samples),
               "n_scan_problems": len(plan.problems)}
    snapshot = existing_version(plan.store_path, plan.version_id)
    if snapshot is not None:
        logger.info("%s is up to date: version %s (nothing recomputed)", store, plan.version_id)
        return {**summary, "snapshot": snapshot, "up_to_date": True}

    logger.info("%d samples, %d scan problems -> %s version %s", len(plan.samples),
                len(plan.problems), store, plan.version_id)
    tick = time.perf_counter()
    writer = VersionWriter.begin(plan)
    phases["layout"] = time.perf_counter() - tick
    try:
        specs = plan.array_specs()
        stride = recipe_model.rows_per_sample  # a sample's row, then its augmented copies
        items = list(zip(range(0, plan.n_rows, stride), plan.samples, plan.fingerprints))
        batches = make_batches(len(items), n_workers)
        futures = [process_batch_task.submit(writer.fork(), [items[i] for i in rows],
                                             recipe_model, specs, plan.class_names)
                   for rows in batches]
        tick = time.perf_counter()
        bar = _progress_bar(len(items)) if progress else None
        results: list[BatchResult] = []
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            if bar is not None:
                bar.update(len(result.rows) // stride)
            for failure in result.failures:
                logger.warning("failed %s: %s", failure["sample_id"], failure["message"])
        if bar is not None:
            bar.close()
        phases["process"], tick = time.perf_counter() - tick, time.perf_counter()
        run = combine_batches(results, plan.n_rows)
        failures = scan_failures(plan) + run.failures
        snapshot = writer.finish(run.forks, run.rows, failures,
                                 extra_attrs={"stage_seconds": run.timings})
        phases["commit"] = time.perf_counter() - tick
    except BaseException:
        writer.abort()
        raise
    logger.info("committed %s as %s: %d ok, %d failed", store, plan.version_id, run.n_ok,
                len(run.rows) - run.n_ok)
    return {**summary, "snapshot": snapshot, "up_to_date": False, "n_ok": run.n_ok,
            "n_failed": len(run.rows) - run.n_ok, "failures": failures,
            "stage_seconds": run.timings, "phase_seconds": phases,
            "wall_seconds": time.perf_counter() - started}


def _progress_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="sample", desc="preprocess")


def run_preprocess(dataset: str, root, recipe: str, store: str | None, *, labels: str = "native",
                   n_workers: int = 2, dask_address: str | None = None,
                   options: dict | None = None, progress: bool = False) -> dict:
    """Run the flow on a Dask task runner (what ``mer-prep run`` calls)."""
    with prefect_api():
        runner = task_runner(dask_address, n_workers)
        return preprocess.with_options(task_runner=runner)(
            dataset=dataset, root=root, recipe=recipe, store=store, labels=labels,
            n_workers=n_workers, options=options, progress=progress)

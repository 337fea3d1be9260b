"""The `preprocess` flow: thin wiring of the library over Prefect tasks on a Dask cluster.

scan + fingerprint (library) → up to date? return the existing version → lay out the version, or
start from the previous one when only some samples changed (library) → one task per coarse batch
of the samples to (re)compute, each writing through its own Icechunk fork → merge, validate,
commit, tag (library) → a markdown artifact with the counts and timings. Nothing here computes
pixels.

Started by a deployment (``prefect deployment run preprocess/<dataset>``) the flow runs on
Prefect's default task runner; it then re-enters itself as a subflow on a Dask task runner built
from its own ``n_workers`` / ``dask_address`` parameters (a task runner is fixed before the
parameters are known, so this is where they can choose it).

The run ends Failed when nothing could be processed: no samples found, or every sample failed
(the version recording the failures is still committed).
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import dask
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.context import FlowRunContext
from prefect.futures import as_completed
from prefect_dask import DaskTaskRunner

from mer_prep.errors import NothingProcessedError
from mer_prep.pipeline.batch import (BatchJob, BatchResult, combine_batches, process_batch,
                                     sample_jobs)
from mer_prep.pipeline.planning import plan_version, scan_failures

from flows.batching import make_batches
from mer_prep.recipes import load_recipe
from mer_prep.pipeline.report import run_report
from mer_prep.pipeline.summary import RunSummary
from mer_prep.store.writer import VersionWriter, existing_version
from mer_prep.threads import pin_threads

from flows.runtime import prefect_api


class Sealed:
    """A task argument Prefect passes on without looking inside.

    Prefect walks every task parameter, item by item, when it submits and again when the
    task starts; for 2 batches of 25 samples with their frame paths the walk was 0.3 s of the
    flow's 0.7 s of submitting (measured), on the critical path of every run.
    """

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value


@task(name="process-batch", cache_policy=NONE, retries=1)
def process_batch_task(batch: Sealed) -> BatchResult:
    """One coarse batch (a sealed ``BatchJob``) on a Dask worker, its native thread pools
    pinned to one thread."""
    pin_threads(1)
    return process_batch(batch.value)


# Set before a worker process starts. Dask's default MALLOC_TRIM_THRESHOLD_ of 64 KiB also
# freezes glibc's mmap threshold at 128 KiB, so every decoded 640x480 frame is a fresh mmap with
# page faults: decoding and numpy ran 25-40 % slower in workers than in a plain process
# (measured). Fixed, larger thresholds keep frame-sized buffers on the heap.
# Dask's statistical profiler samples every worker thread's stack every 10 ms for the
# dashboard's profile page; on these CPU-bound batches it took ~10 % of a worker (measured).
WORKER_ENVIRONMENT = {
    "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20), "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
}


def configure_local_workers() -> None:
    """Make local Dask nannies start workers with ``WORKER_ENVIRONMENT`` (a nanny hands its
    own Dask config to the worker, so the profiler switch is set there too)."""
    dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENVIRONMENT,
                     "distributed.worker.profile.enabled": False})


def task_runner(dask_address: str | None, n_workers: int) -> DaskTaskRunner:
    """An existing scheduler by address, or a local cluster of single-threaded processes.

    Warns when this process holds a default Dask client of another scheduler: prefect-dask's
    runner takes that client over the address or cluster it is given, without a word.
    """
    current = _default_client_address()
    if current is not None and current != dask_address:
        wanted = dask_address or f"a new local cluster of {n_workers} workers"
        warnings.warn(f"this process has a default Dask client (scheduler {current}); "
                      f"prefect-dask will run the batches on its cluster, not on {wanted}",
                      RuntimeWarning, stacklevel=2)
    if dask_address:
        return DaskTaskRunner(address=dask_address)
    configure_local_workers()
    return DaskTaskRunner(cluster_kwargs={
        "n_workers": n_workers, "threads_per_worker": 1, "processes": True,
        "dashboard_address": ":0",
    })


def _default_client_address() -> str | None:
    """Scheduler address of this process's default Dask client, if it has one."""
    from distributed import Client

    try:
        return Client.current().scheduler.address
    except ValueError:
        return None


@flow(name="preprocess", log_prints=True)
def preprocess(dataset: str, root: str | dict[str, str], recipe: str = "ha3d",
               store: str | None = None, labels: str = "native", n_workers: int = 2,
               options: dict | None = None, progress: bool = False,
               dask_address: str | None = None) -> RunSummary:
    """Preprocess ``dataset`` under ``root`` with ``recipe`` into the versioned store ``store``.

    Returns the run's summary: the version made (or found up to date), counts (ok, failed,
    recomputed, reused), timings and the key of the run's markdown artifact.
    """
    context = FlowRunContext.get()
    if context is not None and not isinstance(context.task_runner, DaskTaskRunner):
        # started by a deployment: the same flow as a subflow on the Dask runner asked for
        return preprocess.with_options(task_runner=task_runner(dask_address, n_workers))(
            dataset=dataset, root=root, recipe=recipe, store=store, labels=labels,
            n_workers=n_workers, options=options, progress=progress, dask_address=dask_address)
    logger = get_run_logger()
    started = time.perf_counter()
    recipe_model = load_recipe(recipe)
    store = (store or str(Path("stores") / "{dataset}" / "{recipe}")).format(
        dataset=dataset, recipe=recipe_model.name)  # a deployment's default is a template
    plan = plan_version(dataset, root, recipe_model, store, labels=labels, **(options or {}))
    phases = {"plan": time.perf_counter() - started}
    summary = RunSummary(store=str(plan.location), version_id=plan.version_id, dataset=dataset,
                         recipe=recipe_model.name, n_samples=len(plan.samples),
                         n_scan_problems=len(plan.problems),
                         artifact_key=artifact_key(dataset, recipe_model.name),
                         phase_seconds=phases)
    if not plan.samples:
        message = (f"{dataset}: no samples found under {root} "
                   f"({len(plan.problems)} scan problems: {[str(p) for p in plan.problems[:5]]})")
        _publish(summary, None, plan)
        raise NothingProcessedError(message, summary)
    snapshot = existing_version(plan.location, plan.version_id)
    if snapshot is not None:
        logger.info("%s is up to date: version %s (nothing recomputed)", store, plan.version_id)
        summary.snapshot, summary.up_to_date, summary.n_reused = snapshot, True, len(plan.samples)
        _publish(summary, None, plan)
        return summary

    tick = time.perf_counter()
    writer = VersionWriter.begin(plan)
    phases["layout"] = time.perf_counter() - tick
    reuse = writer.reuse_summary()
    unchanged = (f"{reuse['n_reused']} unchanged since {reuse['from_version']}"
                 if reuse["from_version"] else "a fresh layout")
    logger.info("%d samples (%d to compute, %s), %d scan problems -> %s version %s",
                len(plan.samples), reuse["n_recomputed"], unchanged, len(plan.problems), store,
                plan.version_id)
    try:
        stride = recipe_model.rows_per_sample
        items = sample_jobs(plan, writer.reused)
        batches = make_batches(len(items), n_workers)
        futures = [process_batch_task.submit(Sealed(BatchJob(
                       writer.fork(), [items[i] for i in rows], recipe_model, plan.arrays,
                       plan.class_names))) for rows in batches]
        tick = time.perf_counter()
        bar = _progress_bar(len(items)) if progress else None
        results: list[BatchResult] = []
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            if bar is not None:
                bar.update(len(result.rows) // stride)
            for failure in result.failures:
                logger.warning("failed %s: %s", failure.sample_id, failure.message)
        if bar is not None:
            bar.close()
        phases["process"], tick = time.perf_counter() - tick, time.perf_counter()
        run = combine_batches(results, plan.n_rows, writer.reused)
        failures = scan_failures(plan) + run.failures
        snapshot = writer.finish(run.forks, run.rows, failures,
                                 extra_attrs={"stage_seconds": run.timings})
        phases["commit"] = time.perf_counter() - tick
    except BaseException:
        writer.abort()
        raise
    logger.info("committed %s as %s: %d ok, %d failed; %d samples recomputed, %s",
                store, plan.version_id, run.n_ok, len(run.rows) - run.n_ok,
                reuse["n_recomputed"], unchanged)
    summary.snapshot, summary.n_ok, summary.n_failed = snapshot, run.n_ok, len(run.rows) - run.n_ok
    summary.failures, summary.stage_seconds = failures, run.timings
    summary.n_recomputed, summary.n_reused = reuse["n_recomputed"], reuse["n_reused"]
    summary.reused_from = reuse["from_version"]
    summary.wall_seconds = time.perf_counter() - started
    _publish(summary, run.rows, plan, reused=set(writer.reused))
    if run.n_ok == 0:
        raise NothingProcessedError(
            f"{dataset}: every one of {len(plan.samples)} samples failed (version "
            f"{plan.version_id} records why; see `mer-prep info {store}`)", summary)
    return summary


def artifact_key(dataset: str, recipe: str) -> str:
    """``preprocess-<dataset>-<recipe>``: lowercase letters, digits and dashes, as Prefect wants."""
    return re.sub(r"[^a-z0-9-]+", "-", f"preprocess-{dataset}-{recipe}".lower())


def _publish(summary: RunSummary, rows: list[dict] | None, plan,
             reused: set[int] = frozenset()) -> None:
    """The run's markdown artifact (never fatal: a run without an API still runs)."""
    try:
        create_markdown_artifact(markdown=run_report(summary, rows, plan, reused),
                                 key=summary.artifact_key,
                                 description=f"preprocess {summary.dataset} / "
                                             f"{summary.recipe}: {summary.version_id}")
    except Exception as error:  # noqa: BLE001
        get_run_logger().warning("could not publish the run's artifact: %s", error)


def _progress_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="sample", desc="preprocess")


def run_preprocess(dataset: str, root, recipe: str, store: str | None, *, labels: str = "native",
                   n_workers: int = 2, dask_address: str | None = None,
                   options: dict | None = None, progress: bool = False) -> RunSummary:
    """Run the flow on a Dask task runner (what ``mer-prep run`` calls)."""
    with prefect_api():
        runner = task_runner(dask_address, n_workers)
        return preprocess.with_options(task_runner=runner)(
            dataset=dataset, root=root, recipe=recipe, store=store, labels=labels,
            n_workers=n_workers, options=options, progress=progress, dask_address=dask_address)

"""The `preprocess` flow: thin wiring of the library over Prefect tasks on a Dask cluster.

scan + fingerprint (library) → up to date? return the existing version → lay out the version, or
start from the previous one when only some samples changed (library) → one task per coarse batch
of the samples to (re)compute, each writing through its own Icechunk fork → merge, validate,
commit, tag (library) → a markdown artifact with the counts and timings. Nothing here computes
pixels.

Started by a deployment (``prefect deployment run preprocess/<dataset>``) the flow runs on
Prefect's default task runner; it then re-enters itself as a subflow on a Dask task runner built
from its own ``n_workers`` / ``dask_address`` parameters (a task runner is fixed before the
parameters are known, so this is where they can choose it): the scheduler at ``dask_address``,
else the standing cluster of ``mer-prep serve``, else a local cluster (``flows.cluster``).
Runs are named ``<dataset>-<recipe>``. A run that commits a new version (with at least one
sample processed) emits ``mer-prep.store.committed`` (``flows.events``): the trainings of that
store run on it; an up-to-date run emits nothing.

The run ends Failed when nothing could be processed: no samples found, or every sample failed
(the version recording the failures is still committed), and when writing the store fails
(``StoreWriteError``: nothing is published).

Ctrl-C (SIGINT) or SIGTERM while the flow runs: the scratch branch is dropped, local Dask
workers are stopped at once (they ignore the terminal's SIGINT themselves: ``worker_setup``),
and the run ends ``Cancelled`` with the message "cancelled; <store> still at version <v>";
``run_preprocess`` turns that into ``RunCancelled`` (exit code 130) within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.context import FlowRunContext
from prefect.exceptions import CancelledRun, TerminationSignal
from prefect.futures import as_completed
from prefect.states import Cancelled
from prefect_dask import DaskTaskRunner

from mer_prep.errors import NothingProcessedError, RunCancelled, StoreWriteError
from mer_prep.pipeline.batch import (BatchJob, BatchResult, combine_batches, process_batch,
                                     sample_jobs)
from mer_prep.pipeline.planning import plan_version, scan_failures

from flows.batching import make_batches
from mer_prep.recipes import load_recipe
from mer_prep.pipeline.report import run_report
from mer_prep.pipeline.summary import RunSummary
from mer_prep.store.writer import (VersionWriter, current_version, existing_version,
                                   interrupts_deferred)
from mer_prep.threads import pin_threads

from flows.cluster import WORKER_ENVIRONMENT, configure_local_workers, dask_task_runner  # noqa: F401
from flows.deployments import refused_run
from flows.events import emit_committed
from flows.runtime import prefect_api, retry_unless, sigterm_interrupts, without_heartbeats
from flows.compat import QuietCancelled, install_log_filters, task_runner_cluster

install_log_filters()  # a served run imports this module as its entrypoint


class Sealed:
    """A task argument Prefect passes on without looking inside.

    Prefect walks every task parameter, item by item, when it submits and again when the
    task starts; for 2 batches of 25 samples with their frame paths the walk was 0.3 s of the
    flow's 0.7 s of submitting (measured), on the critical path of every run.
    """

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value


@task(name="process-batch", cache_policy=NONE, retries=1,
      retry_condition_fn=retry_unless(StoreWriteError))  # a full disk: no retry
def process_batch_task(batch: Sealed) -> BatchResult:
    """One coarse batch (a sealed ``BatchJob``) on a Dask worker, its native thread pools
    pinned to one thread."""
    pin_threads(1)
    return process_batch(batch.value)


def task_runner(dask_address: str | None, n_workers: int) -> DaskTaskRunner:
    """An existing scheduler by address; the standing cluster of ``mer-prep serve`` when this
    is one of its runs; else a local cluster of single-threaded processes made for the run
    (loopback only, TLS with throwaway credentials: ``flows.cluster``).

    Warns when this process holds a default Dask client of another scheduler: prefect-dask's
    runner takes that client over the address or cluster it is given, without a word.
    """
    return dask_task_runner(dask_address, n_workers)


def run_name() -> str:
    """``<dataset>-<recipe>`` (``casme2-ha3d``): what the run does, not a random name."""
    from prefect.runtime import flow_run

    parameters = flow_run.parameters
    recipe = str(parameters.get("recipe") or "ha3d")
    recipe = Path(recipe).stem if recipe.endswith((".yaml", ".yml")) else recipe
    return f"{parameters.get('dataset')}-{recipe}"


@flow(name="preprocess", flow_run_name=run_name, log_prints=True)
def preprocess(dataset: str, root: str | dict[str, str], recipe: str = "ha3d",
               store: str | None = None, labels: str = "native", n_workers: int = 2,
               options: dict | None = None, progress: bool = False,
               dask_address: str | None = None) -> RunSummary:
    """Preprocess ``dataset`` under ``root`` with ``recipe`` into the versioned store ``store``.

    Returns the run's summary: the version made (or found up to date), counts (ok, failed,
    recomputed, reused), timings and the key of the run's markdown artifact. Interrupted
    (SIGINT, SIGTERM): the run ends Cancelled, and readers still see the previous version.
    """
    context = FlowRunContext.get()
    if context is not None and not isinstance(context.task_runner, DaskTaskRunner):
        # started by a deployment: the same flow as a subflow on the Dask runner asked for
        refused = refused_run(dict(  # what mer-prep.toml does not allow fails here, before anything
            dataset=dataset, root=root, recipe=recipe, store=store, labels=labels,
            n_workers=n_workers, options=options, progress=progress, dask_address=dask_address))
        if refused is not None:
            return refused
        with without_heartbeats():  # the subflow's final state is this run's (a Cancelled
            # subflow would otherwise raise here and end this run Failed, with a traceback)
            return preprocess.with_options(task_runner=task_runner(dask_address, n_workers))(
                dataset=dataset, root=root, recipe=recipe, store=store, labels=labels,
                n_workers=n_workers, options=options, progress=progress,
                dask_address=dask_address, return_state=True)
    run = _Progress()
    try:
        return _preprocess(run, dataset, root, recipe, store, labels, n_workers, options,
                           progress)
    except (KeyboardInterrupt, TerminationSignal):
        with interrupts_deferred(redeliver=False):  # a second Ctrl-C cannot cut it short
            return _cancelled(run, dask_address)


@dataclass
class _Progress:
    """How far a run got, for its cancellation: the store and the version it held, and the
    progress bar to clear."""

    location: str | None = None
    before: str | None = None
    bar: object | None = None
    #: the version's writer once batches were handed to workers (they may outlive the run)
    submitted: VersionWriter | None = None


def _preprocess(run: _Progress, dataset, root, recipe, store, labels, n_workers, options,
                progress) -> RunSummary:
    logger = get_run_logger()
    started = time.perf_counter()
    recipe_model = load_recipe(recipe)
    store = (store or str(Path("stores") / "{dataset}" / "{recipe}")).format(
        dataset=dataset, recipe=recipe_model.name)  # a deployment's default is a template
    run.location = store
    plan = plan_version(dataset, root, recipe_model, store, labels=labels, **(options or {}))
    run.location, run.before = str(plan.location), current_version(plan.location)
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
    writer = VersionWriter.begin(plan)  # drops its scratch branch itself if interrupted
    try:
        phases["layout"] = time.perf_counter() - tick
        reuse = writer.reuse_summary()
        unchanged = (f"{reuse['n_reused']} unchanged since {reuse['from_version']}"
                     if reuse["from_version"] else "a fresh layout")
        logger.info("%d samples (%d to compute, %s), %d scan problems -> %s version %s",
                    len(plan.samples), reuse["n_recomputed"], unchanged, len(plan.problems),
                    store, plan.version_id)
        stride = recipe_model.rows_per_sample
        items = sample_jobs(plan, writer.reused)
        batches = make_batches(len(items), n_workers)
        with _sigint_blocked():  # the first submit starts a local cluster's worker processes
            futures = [process_batch_task.submit(Sealed(BatchJob(
                           writer.fork(), [items[i] for i in rows], recipe_model, plan.arrays,
                           plan.class_names, watch=writer.watch()))) for rows in batches]
        run.submitted = writer
        tick = time.perf_counter()
        bar = run.bar = _progress_bar(len(items)) if progress else None
        results: list[BatchResult] = []
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            if bar is not None:
                bar.update(len(result.rows) // stride)
            for failure in result.failures:
                logger.warning("failed %s%s: %s", failure.sample_id,
                               " (transient)" if failure.kind == "transient" else "",
                               failure.message)
        if bar is not None:
            run.bar = None
            bar.close()
        phases["process"], tick = time.perf_counter() - tick, time.perf_counter()
        run_result = combine_batches(results, plan.n_rows, writer.reused)
        failures = scan_failures(plan) + run_result.failures
        snapshot = writer.finish(run_result.forks, run_result.rows, failures,
                                 extra_attrs={"stage_seconds": run_result.timings})
        phases["commit"] = time.perf_counter() - tick
    except BaseException:
        # Workers given batches may still be writing (a standing or remote cluster finishes
        # them: they stop at their next sample, ``RunWatch``): a store this run created is
        # kept until they are known stopped (``_cancelled``), or else for good, empty.
        writer.abort(remove_new_store=run.submitted is None)
        raise
    n_ok = run_result.n_ok
    transient = [f for f in failures if f.kind == "transient"]
    logger.info("committed %s as %s: %d ok, %d failed; %d samples recomputed, %s",
                store, writer.version_id, n_ok, len(run_result.rows) - n_ok,
                reuse["n_recomputed"], unchanged)
    if transient:
        logger.warning("%d samples failed for a reason that may pass (I/O); the version is "
                       "committed as %s, not as %s: run again to retry them", len(transient),
                       writer.version_id, plan.version_id)
    summary.version_id = writer.version_id
    summary.snapshot, summary.n_ok = snapshot, n_ok
    summary.n_failed = len(run_result.rows) - n_ok
    summary.failures, summary.stage_seconds = failures, run_result.timings
    summary.n_recomputed, summary.n_reused = reuse["n_recomputed"], reuse["n_reused"]
    summary.reused_from = reuse["from_version"]
    summary.wall_seconds = time.perf_counter() - started
    _publish(summary, run_result.rows, plan, reused=set(writer.reused))
    if n_ok:  # a new version with something in it: its trainings may run (flows.events)
        emit_committed(summary)
    if n_ok == 0:
        raise NothingProcessedError(
            f"{dataset}: every one of {len(plan.samples)} samples failed (version "
            f"{writer.version_id} records why; see `mer-prep info {store}`)", summary)
    return summary


@contextlib.contextmanager
def _sigint_blocked():
    """SIGINT blocked in this thread for the block, then delivered if it came meanwhile.

    A local cluster starts its event loop thread here, and that thread the threads that spawn
    the worker processes: they all inherit the blocked mask, and so does every worker process
    they exec (a restarted one included), so the terminal's Ctrl-C never reaches a worker, not
    even while it is still importing (``flows.worker_setup`` covers clusters started
    elsewhere). Main thread only; the cluster starts in about a second."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _cancelled(run: _Progress, dask_address: str | None) -> Cancelled:
    """Clear the progress bar, stop local workers, and the run's final state: Cancelled, with
    the version readers see (the scratch branch is already gone: ``writer.abort``)."""
    if run.bar is not None:
        run.bar.leave = False
        run.bar.close()
    if dask_address is None and _stop_local_workers() and run.submitted is not None:
        writer = run.submitted  # its workers are dead: a store it created can go now
        writer.new_store.remove_if_unused(writer.repo)
    return Cancelled(message=cancel_message(run.location, run.before))


def cancel_message(location: str | None, before: str | None) -> str:
    """"cancelled; <store> still at version <v>", or what else readers of the store see now."""
    if location is None:
        return "cancelled before a store was opened"
    now = current_version(location)
    if now is None:
        return f"cancelled; {location} holds no version yet"
    if now == before:
        return f"cancelled; {location} still at version {now}"
    return f"cancelled; {location} now at version {now} (committed before the interrupt)"


def _stop_local_workers() -> bool:
    """Stop the workers of this run's local cluster now (SIGKILL after 40 ms) instead of waiting
    out their batches (4 s each) when the task runner closes; never fatal. The nannies are
    closing, so they start no replacements. True when it stopped them (False: the run had no
    cluster of its own, or stopping failed)."""
    from distributed import LocalCluster, Nanny

    context = FlowRunContext.get()
    cluster = task_runner_cluster(context.task_runner) if context is not None else None
    if not isinstance(cluster, LocalCluster):
        return False
    nannies = [w for w in cluster.workers.values() if isinstance(w, Nanny)]

    async def close_all() -> None:
        await asyncio.gather(*(n.close(timeout=0.05, reason="run-cancelled") for n in nannies),
                             return_exceptions=True)

    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # "worker lost", "removing worker": expected now
    try:
        cluster.sync(close_all)
        return True
    except Exception:  # noqa: BLE001 - the task runner's own shutdown still closes them
        return False
    finally:
        quiet.setLevel(level)


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
    """Run the flow on a Dask task runner (what ``mer-prep run`` calls).

    Ctrl-C or SIGTERM at any point raises ``RunCancelled`` ("cancelled; <store> still at
    version <v>", exit code 130) within seconds: the flow run ends Cancelled, its scratch branch
    is gone and readers still see the previous version.
    """
    where = store if store and "{" not in store else None  # a template: known once planned
    before = current_version(where) if where else None
    finished, stopping = logging.getLogger("prefect.flow_runs"), logging.getLogger("prefect")
    finished.addFilter(_QUIET_CANCELLED)  # a cancelled run: the CLI says it in its own line
    stopping.addFilter(_QUIET_CANCELLED)
    try:
        with sigterm_interrupts(), prefect_api():
            runner = task_runner(dask_address, n_workers)
            return preprocess.with_options(task_runner=runner)(
                dataset=dataset, root=root, recipe=recipe, store=store, labels=labels,
                n_workers=n_workers, options=options, progress=progress,
                dask_address=dask_address)
    except CancelledRun as cancelled:
        raise RunCancelled(str(cancelled) or "cancelled") from None
    except (KeyboardInterrupt, TerminationSignal):  # before or after the flow's own body
        raise RunCancelled(cancel_message(where, before)) from None
    finally:
        finished.removeFilter(_QUIET_CANCELLED)
        stopping.removeFilter(_QUIET_CANCELLED)


_QUIET_CANCELLED = QuietCancelled()

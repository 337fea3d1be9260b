"""The `preprocess` flow: the library's sequence with its batches as Prefect tasks on Dask.

The flow's parameters are the fields of a ``PreprocessRequest`` (``mer_prep.pipeline.request``:
each spelt, with its default, there only). The run is ``mer_prep.pipeline.sequence
.make_version`` (plan → up to date? → begin, or start from the previous version when only
some samples changed → batches → combine → finish) with ``_OnDask`` as its runner: one task
per coarse batch (``flows.batching``), each writing through its own Icechunk fork. What stays
here is what a Prefect run adds: the logger, the progress bar, the markdown artifact with the
counts and timings, the committed event, the served-run check and the cancellation. Nothing
here computes pixels.

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.exceptions import CancelledRun, TerminationSignal
from prefect.futures import as_completed
from prefect.states import Cancelled
from prefect_dask import DaskTaskRunner

from flows.batching import make_batches
from flows.cluster import WORKER_ENVIRONMENT, configure_local_workers, dask_task_runner  # noqa: F401
from flows.compat import QuietCancelled, install_log_filters, task_runner_cluster
from flows.events import emit_committed
from flows.runtime import (
    prefect_api,
    sigterm_interrupts,
    without_heartbeats,
    worker_task,
)
from flows.served import refused_run
from mer_prep.errors import (
    InvalidArgumentError,
    NothingProcessedError,
    RunCancelled,
    StoreWriteError,
)
from mer_prep.pipeline.batch import BatchJob, BatchResult, process_batch
from mer_prep.pipeline.long_sequence import LongVersionRun
from mer_prep.pipeline.report import run_report
from mer_prep.pipeline.request import PreprocessRequest
from mer_prep.pipeline.sequence import RunState, make_version
from mer_prep.pipeline.summary import RunSummary
from mer_prep.store.writer import current_version, interrupts_deferred
from mer_prep.threads import pin_threads

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


@worker_task("process-batch", final=StoreWriteError)  # a full disk: no retry
def process_batch_task(batch: Sealed) -> BatchResult:
    """One coarse batch (a sealed ``BatchJob``) on a Dask worker, its native thread pools
    pinned to one thread."""
    pin_threads(1)
    return process_batch(batch.value)


@worker_task("long-video-job", final=StoreWriteError)
def long_job_task(job: Sealed):
    """One long-video job (a sealed ``FaceJob`` or ``ChunkJob``: a video's face, or one time
    chunk of a video at one pair distance) on a Dask worker, native thread pools pinned to one
    thread."""
    pin_threads(1)
    return job.value.run()


def task_runner(
    dask_address: str | None, n_workers: int, cluster: dict | None = None
) -> DaskTaskRunner:
    """An existing scheduler by address; the standing cluster of ``mer-prep serve`` when this
    is one of its runs; else a local cluster of single-threaded processes made for the run
    (loopback only, TLS with throwaway credentials: ``flows.cluster``).

    Warns when this process holds a default Dask client of another scheduler: prefect-dask's
    runner takes that client over the address or cluster it is given, without a word.
    """
    return dask_task_runner(dask_address, n_workers, cluster=cluster)


def run_name() -> str:
    """``<dataset>-<recipe>`` (``casme2-ha3d``): what the run does, not a random name."""
    from prefect.runtime import flow_run

    parameters = flow_run.parameters
    recipe = str(parameters.get("recipe") or PreprocessRequest.default("recipe"))
    recipe = Path(recipe).stem if recipe.endswith((".yaml", ".yml")) else recipe
    return f"{parameters.get('dataset')}-{recipe}"


def _preprocess_flow(**parameters) -> RunSummary:
    """Preprocess ``dataset`` under ``root`` with ``recipe`` into the versioned store ``store``:
    the parameters are those of a ``PreprocessRequest``, with its defaults.

    Returns the run's summary: the version made (or found up to date), counts (ok, failed,
    recomputed, reused), timings and the key of the run's markdown artifact. Interrupted
    (SIGINT, SIGTERM): the run ends Cancelled, and readers still see the previous version.
    """
    context = FlowRunContext.get()
    if context is not None and not isinstance(context.task_runner, DaskTaskRunner):
        # started by a deployment: what mer-prep.toml does not allow fails here, before anything
        refused = refused_run(parameters)
        if refused is not None:
            return refused
        request = PreprocessRequest(**parameters)
        with without_heartbeats():  # the subflow's final state is this run's (a Cancelled
            # subflow would otherwise raise here and end this run Failed, with a traceback):
            # the same flow as a subflow on the Dask runner asked for
            return preprocess.with_options(
                task_runner=task_runner(request.dask_address, request.n_workers, request.cluster)
            )(**request.parameters(), return_state=True)
    request = PreprocessRequest(**parameters)
    run = _Progress()
    try:
        return _preprocess(run, request)
    except (KeyboardInterrupt, TerminationSignal):
        with interrupts_deferred(redeliver=False):  # a second Ctrl-C cannot cut it short
            return _cancelled(run, request.dask_address)


# Prefect reads a flow's parameters from its signature: the request's fields, each a parameter
# of its own (a deployment run's `-p root=...`, the UI's form), spelt once in the request.
_preprocess_flow.__signature__ = PreprocessRequest.flow_signature()
preprocess = flow(name="preprocess", flow_run_name=run_name, log_prints=True)(_preprocess_flow)


@dataclass
class _Progress(RunState):
    """How far a run got, for its cancellation (``RunState``), and the progress bar to clear."""

    bar: object | None = None


@dataclass
class _OnDask:
    """The run's batches as Prefect tasks on the flow's Dask task runner; results as they
    finish, counted on a progress bar when asked."""

    run: _Progress
    n_workers: int
    progress: bool
    #: a standing or remote cluster finishes the batches it was given after the run is gone
    outlives_run = True

    def batches(self, n_items: int) -> list[range]:
        return make_batches(n_items, self.n_workers)

    def submit(self, jobs: list[BatchJob]) -> Iterator[BatchResult]:
        with _sigint_blocked():  # the first submit starts a local cluster's worker processes
            futures = [process_batch_task.submit(Sealed(job)) for job in jobs]
        return self._as_completed(
            futures,
            sum(len(job.samples) for job in jobs),
            jobs[0].recipe.rows_per_sample if jobs else 1,
        )

    def submit_calls(self, jobs: list) -> Iterator:
        """Long-video jobs (``mer_prep.pipeline.long_jobs``), one task each: the faces of a
        run's videos, then every time chunk of every video, fanned out over the workers."""
        with _sigint_blocked():
            futures = [long_job_task.submit(Sealed(job)) for job in jobs]
        return self._as_completed(futures, len(futures), 0)

    def _as_completed(self, futures: list, total: int, stride: int) -> Iterator[BatchResult]:
        bar = self.run.bar = _progress_bar(total) if self.progress else None
        for future in as_completed(futures):
            result = future.result()
            if bar is not None:  # stride 0: one job per step (long-video jobs)
                bar.update(len(result.rows) // stride if stride else 1)
            yield result
        if bar is not None:
            self.run.bar = None
            bar.close()


def _preprocess(run: _Progress, request: PreprocessRequest) -> RunSummary:
    """The library's sequence (``make_version``) on the Dask runner; then the run's artifact,
    its event, and a Failed run when nothing could be processed."""
    done = make_version(
        request,
        _OnDask(run, request.n_workers, request.progress),
        state=run,
        logger=get_run_logger(),
    )
    summary = done.summary
    summary.artifact_key = artifact_key(summary.dataset, summary.recipe)
    if isinstance(done, LongVersionRun):  # a long-video store: no clip table to report
        _publish_long(summary)
    else:
        _publish(summary, done.rows, done.plan, reused=done.reused)
    if summary.committed and summary.n_ok:  # a new version with something in it: its
        emit_committed(summary)  # trainings may run (flows.events)
    if done.nothing_processed is not None:
        raise NothingProcessedError(done.nothing_processed, summary)
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
    """ "cancelled; <store> still at version <v>", or what else readers of the store see now."""
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
        await asyncio.gather(
            *(n.close(timeout=0.05, reason="run-cancelled") for n in nannies),
            return_exceptions=True,
        )

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


def _publish(
    summary: RunSummary, rows: list[dict] | None, plan, reused: set[int] = frozenset()
) -> None:
    """The run's markdown artifact (never fatal: a run without an API still runs)."""
    try:
        create_markdown_artifact(
            markdown=run_report(summary, rows, plan, reused),
            key=summary.artifact_key,
            description=f"preprocess {summary.dataset} / {summary.recipe}: {summary.version_id}",
        )
    except Exception as error:  # noqa: BLE001
        get_run_logger().warning("could not publish the run's artifact: %s", error)


def _publish_long(summary: RunSummary) -> None:
    """A long-video run's markdown artifact: the version, videos computed / reused, failures."""
    lines = [
        f"# preprocess {summary.dataset} / {summary.recipe} (long videos)",
        f"- store `{summary.store}`, version `{summary.version_id}` ({summary.state})",
        f"- videos: {summary.n_samples}, {summary.n_recomputed} computed, "
        f"{summary.n_reused} unchanged (from {summary.reused_from or 'none'}), "
        f"{summary.n_failed} failed; {summary.wall_seconds:.1f} s",
        *(f"- failed `{f.sample_id}` [{f.stage}]: {f.message}" for f in summary.failures),
    ]
    try:
        create_markdown_artifact(
            markdown="\n".join(lines),
            key=summary.artifact_key,
            description=f"preprocess {summary.dataset} / {summary.recipe}: {summary.version_id}",
        )
    except Exception as error:  # noqa: BLE001
        get_run_logger().warning("could not publish the run's artifact: %s", error)


def _progress_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="sample", desc="preprocess")


def run_preprocess(request: PreprocessRequest | str, *args, **parameters) -> RunSummary:
    """Run the flow of ``request`` on a Dask task runner (what ``mer-prep run`` calls); or of
    the request the arguments make (``run_preprocess("casme2", root, "ha3d", store,
    n_workers=1)``: positional values in the request's field order).

    Ctrl-C or SIGTERM at any point raises ``RunCancelled`` ("cancelled; <store> still at
    version <v>", exit code 130) within seconds: the flow run ends Cancelled, its scratch branch
    is gone and readers still see the previous version.
    """
    if not isinstance(request, PreprocessRequest):
        request = PreprocessRequest.from_arguments(request, *args, **parameters)
    elif args or parameters:
        raise InvalidArgumentError("run_preprocess: a request, or its values; not both")
    store = request.store
    where = store if store and "{" not in store else None  # a template: known once planned
    before = current_version(where) if where else None
    finished, stopping = logging.getLogger("prefect.flow_runs"), logging.getLogger("prefect")
    finished.addFilter(_QUIET_CANCELLED)  # a cancelled run: the CLI says it in its own line
    stopping.addFilter(_QUIET_CANCELLED)
    try:
        with sigterm_interrupts(), prefect_api():
            runner = task_runner(request.dask_address, request.n_workers, request.cluster)
            return preprocess.with_options(task_runner=runner)(**request.parameters())
    except CancelledRun as cancelled:
        raise RunCancelled(str(cancelled) or "cancelled") from None
    except (KeyboardInterrupt, TerminationSignal):  # before or after the flow's own body
        raise RunCancelled(cancel_message(where, before)) from None
    finally:
        finished.removeFilter(_QUIET_CANCELLED)
        stopping.removeFilter(_QUIET_CANCELLED)


_QUIET_CANCELLED = QuietCancelled()

"""One store version, start to end, once for every runner: plan -> up to date? -> begin ->
batches -> combine -> finish.

``make_version`` is the whole story of a preprocessing run; where the batches are computed is
the runner's business: ``InProcess`` (this process, one batch: ``pipeline.local``, notebooks,
tests, benches) or the Prefect task submitter on Dask of ``flows.preprocess``. What a run
reports on the side (logging, progress bars, artifacts, events, cancellation) stays with its
caller: this module logs to the ``mer_prep.pipeline`` logger unless given another one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mer_prep.pipeline import batch  # by module: tests put faults into its functions
from mer_prep.pipeline.batch import BatchJob, BatchResult
from mer_prep.pipeline.planning import plan_version, scan_failures
from mer_prep.pipeline.request import PreprocessRequest
from mer_prep.pipeline.summary import RunSummary
from mer_prep.recipes import Recipe
from mer_prep.store.writer import VersionPlan, VersionWriter, current_version, existing_version

LOG = logging.getLogger("mer_prep.pipeline")
LOG.addHandler(logging.NullHandler())  # a library: its callers decide what is shown


class BatchRunner(Protocol):
    """Where a run's batches are computed."""

    #: batches handed out may outlive the run (a standing or remote cluster finishes them):
    #: jobs then carry the run's ``RunWatch``, and a store the run created is kept on failure
    outlives_run: bool

    def batches(self, n_items: int) -> list[range]:
        """How ``n_items`` samples to compute are cut into batches (ranges of their indexes)."""
        ...

    def submit(self, jobs: Sequence[BatchJob]) -> Iterator[BatchResult]:
        """Hand every job out, then yield the results as they finish (any order)."""
        ...


class InProcess:
    """All samples in one batch, computed in this process while the results are read."""

    outlives_run = False

    def batches(self, n_items: int) -> list[range]:
        return [range(n_items)]

    def submit(self, jobs: Sequence[BatchJob]) -> Iterator[BatchResult]:
        return (batch.process_batch(job) for job in jobs)

    def submit_calls(self, jobs: Sequence[Any]) -> Iterator[Any]:
        """Long-video jobs (``pipeline.long_jobs``): each one's ``run()``, in turn."""
        return (job.run() for job in jobs)


@dataclass
class RunState:
    """How far a run got, filled in as it goes (what a cancellation needs): the store as text,
    the version readers saw before, and the writer once batches were handed out."""

    location: str | None = None
    before: str | None = None
    submitted: VersionWriter | None = None


@dataclass
class VersionRun:
    """What ``make_version`` did. ``writer``: None when nothing was begun (no samples found, or
    the version is up to date); ``rows``: the committed table rows (None when nothing was
    committed); ``reused``: the rows kept from the previous version. A run that found no
    samples, or whose every sample failed (the version recording why is still committed), says
    so in ``nothing_processed``."""

    summary: RunSummary
    plan: VersionPlan
    writer: VersionWriter | None = None
    rows: list[dict] | None = None
    reused: frozenset[int] = field(default_factory=frozenset)

    #: why the run made nothing usable (no samples found; every sample failed), else None
    nothing_processed: str | None = None


def make_version(
    request: PreprocessRequest,
    runner: BatchRunner,
    *,
    recipe: Recipe | None = None,
    state: RunState | None = None,
    logger: logging.Logger | logging.LoggerAdapter = LOG,
) -> VersionRun:
    """Plan ``request``'s version; when it is not in the store yet, begin it (on the previous
    version when only some samples changed), compute the samples to compute in the runner's
    batches, combine them and commit the version (``VersionWriter.finish``).

    ``recipe``: the loaded recipe when the caller has it (else ``request.recipe_model()``).
    ``state`` is filled in as the run goes. Failed samples are recorded in the version, never
    raised; anything raised while the version is open drops its scratch branch first (and a
    store the run created, unless the runner's batches may still write to it). A long-video
    recipe's run is ``long_sequence.make_long_version`` (its ``LongVersionRun``), with the same
    runner."""
    state = state if state is not None else RunState()
    if request.is_long_video:  # its own story: faces, then time chunks (long_sequence)
        from mer_prep.pipeline.long_sequence import make_long_version

        return make_long_version(  # type: ignore[return-value]
            request.dataset,
            request.root,
            request.recipe_model(),  # type: ignore[arg-type]
            request.store_location(request.recipe_model().name),
            runner,  # type: ignore[arg-type]
            options=request.options,
            state=state,
            logger=logger,
        )
    started = time.perf_counter()
    recipe = recipe or request.recipe_model()
    store = request.store_location(recipe.name)
    state.location = store
    plan = plan_version(
        request.dataset, request.root, recipe, store, labels=request.labels, **request.options
    )
    state.location, state.before = str(plan.location), current_version(plan.location)
    phases = {"plan": time.perf_counter() - started}
    summary = RunSummary(
        store=str(plan.location),
        version_id=plan.version_id,
        dataset=request.dataset,
        recipe=recipe.name,
        n_samples=len(plan.samples),
        n_scan_problems=len(plan.problems),
        artifact_key="",
        phase_seconds=phases,
    )
    done = VersionRun(summary, plan)
    if not plan.samples:
        done.nothing_processed = (
            f"{request.dataset}: no samples found under {request.root} ({len(plan.problems)} "
            f"scan problems: {[str(p) for p in plan.problems[:5]]})"
        )
        return done
    snapshot = existing_version(plan.location, plan.version_id)
    if snapshot is not None:
        logger.info("%s is up to date: version %s (nothing recomputed)", store, plan.version_id)
        summary.snapshot, summary.up_to_date, summary.n_reused = snapshot, True, len(plan.samples)
        return done

    tick = time.perf_counter()
    writer = done.writer = VersionWriter.begin(plan)  # drops its scratch branch if interrupted
    try:
        phases["layout"] = time.perf_counter() - tick
        reuse = writer.reuse_summary()
        unchanged = (
            f"{reuse['n_reused']} unchanged since {reuse['from_version']}"
            if reuse["from_version"]
            else "a fresh layout"
        )
        logger.info(
            "%d samples (%d to compute, %s), %d scan problems -> %s version %s",
            len(plan.samples),
            reuse["n_recomputed"],
            unchanged,
            len(plan.problems),
            store,
            plan.version_id,
        )
        items = batch.sample_jobs(plan, writer.reused)
        watch = writer.watch() if runner.outlives_run else None
        results_as_done = runner.submit(
            [
                batch.BatchJob(
                    writer.fork(),
                    [items[i] for i in rows],
                    recipe,
                    plan.arrays,
                    plan.class_names,
                    watch=watch,
                )
                for rows in runner.batches(len(items))
            ]
        )
        state.submitted = writer
        tick = time.perf_counter()
        results: list[BatchResult] = []
        for result in results_as_done:
            results.append(result)
            for failure in result.failures:
                logger.warning(
                    "failed %s%s: %s",
                    failure.sample_id,
                    " (transient)" if failure.kind == "transient" else "",
                    failure.message,
                )
        phases["process"], tick = time.perf_counter() - tick, time.perf_counter()
        combined = batch.combine_batches(results, plan.n_rows, writer.reused)
        failures = scan_failures(plan) + combined.failures
        summary.snapshot = writer.finish(
            combined.forks, combined.rows, failures, extra_attrs={"stage_seconds": combined.timings}
        )
        phases["commit"] = time.perf_counter() - tick
    except BaseException:
        # Workers given batches may still be writing (a standing or remote cluster finishes
        # them: they stop at their next sample, ``RunWatch``): a store this run created is
        # kept until they are known stopped (the caller's cancellation), or else for good, empty.
        writer.abort(remove_new_store=state.submitted is None or not runner.outlives_run)
        raise
    n_ok = combined.n_ok
    logger.info(
        "committed %s as %s: %d ok, %d failed; %d samples recomputed, %s",
        store,
        writer.version_id,
        n_ok,
        len(combined.rows) - n_ok,
        reuse["n_recomputed"],
        unchanged,
    )
    transient = [f for f in failures if f.kind == "transient"]
    if transient:
        logger.warning(
            "%d samples failed for a reason that may pass (I/O); the version is "
            "committed as %s, not as %s: run again to retry them",
            len(transient),
            writer.version_id,
            plan.version_id,
        )
    summary.version_id, summary.n_ok = writer.version_id, n_ok
    summary.n_failed = len(combined.rows) - n_ok
    summary.failures, summary.stage_seconds = failures, combined.timings
    summary.n_recomputed, summary.n_reused = reuse["n_recomputed"], reuse["n_reused"]
    summary.reused_from = reuse["from_version"]
    summary.wall_seconds = time.perf_counter() - started
    done.rows, done.reused = combined.rows, frozenset(writer.reused)
    if n_ok == 0:
        done.nothing_processed = (
            f"{request.dataset}: every one of {len(plan.samples)} samples failed (version "
            f"{writer.version_id} records why; see `mer-prep info {store}`)"
        )
    return done

"""A coarse unit of work: process a batch of samples and write them through one store fork.

Failures, by kind (``Failure.kind``, see ``mer_prep.store.versions`` for what the kinds mean for
version ids):

- a sample that cannot be processed from its inputs as fingerprinted (a corrupt frame, a frame
  already unreadable when the run was planned, no face, a bad annotation, a bug) is a
  *permanent* failure: recorded, the run goes on;
- an I/O-type error (``FrameIOError`` on a frame that was readable when fingerprinted: EIO,
  ENOENT, a timeout; any ``OSError``; ``MemoryError``), or a frame that no longer matches its
  fingerprint, is retried ``len(RETRY_DELAYS)`` times after short pauses, then recorded as a
  *transient* failure, which the next run retries;
- an error writing the store (``StoreWriteError``: any chunk write, a full disk) or a full disk
  anywhere is never a sample failure: it stops the batch, and the run publishes nothing.
"""

from __future__ import annotations

import errno
import time
import traceback
from collections.abc import Container
from dataclasses import dataclass, field

import icechunk as ic

from mer_prep.errors import (
    FrameIOError,
    FrameReadError,
    MerPrepError,
    PipelineError,
    RunAbandoned,
    SchemaError,
    StoreWriteError,
)
from mer_prep.pipeline.augment import augment_copies
from mer_prep.pipeline.fingerprint import sample_fingerprint
from mer_prep.pipeline.process import ProcessedSample, process_sample
from mer_prep.recipes import ArraySpec, Recipe
from mer_prep.sample import Failure, Sample, relative_to_root
from mer_prep.store.run_watch import RunWatch
from mer_prep.store.table import sample_row
from mer_prep.store.versions import PERMANENT, TRANSIENT, VersionPlan
from mer_prep.store.writer import SampleWriter

#: pauses before the retries of a sample that failed with an I/O-type error (seconds)
RETRY_DELAYS: tuple[float, ...] = (0.25, 1.0)
#: a full disk or a read-only file system: retrying or skipping the sample cannot help
_FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


@dataclass(frozen=True)
class SampleJob:
    """One sample to compute: its store row (its augmented copies take the rows after it), the
    sample and the fingerprint of its inputs. ``readable``: False when a frame it reads could
    not be read when it was fingerprinted (its failure is then permanent under that print)."""

    row: int
    sample: Sample
    fingerprint: str
    readable: bool = True


def sample_jobs(plan: VersionPlan, reused: Container[int] = ()) -> list[SampleJob]:
    """The samples of ``plan`` still to compute (their first row not in ``reused``), in order."""
    stride = plan.recipe.rows_per_sample  # a sample's row, then its augmented copies
    return [
        SampleJob(row, sample, fingerprint, sample.sample_id not in plan.unreadable)
        for row, sample, fingerprint in zip(
            range(0, plan.n_rows, stride), plan.samples, plan.fingerprints, strict=True
        )
        if row not in reused
    ]


@dataclass(frozen=True)
class BatchJob:
    """What a worker gets: samples to compute and everything needed to write them through its
    own fork of the version's session."""

    fork: ic.ForkSession
    samples: list[SampleJob]
    recipe: Recipe
    specs: dict[str, ArraySpec]
    class_names: list[str]
    #: the run's liveness, checked between samples (None: the caller's process is the run)
    watch: RunWatch | None = None


@dataclass
class BatchResult:
    """What a batch hands back: its fork (to merge), table rows, failures and stage timings."""

    fork: ic.ForkSession
    rows: dict[int, dict]
    failures: list[Failure]
    timings: dict[str, float] = field(default_factory=dict)


class _SampleFailed(Exception):
    """A sample gave up: the error to record and its kind."""

    def __init__(self, error: BaseException, kind: str) -> None:
        super().__init__(str(error))
        self.error, self.kind = error, kind


def failure_kind(error: BaseException, job: SampleJob, recipe: Recipe) -> str:
    """``permanent`` or ``transient`` for an error processing ``job``'s sample (see the module
    docstring); raises ``StoreWriteError`` for a full disk."""
    if isinstance(error, OSError) and error.errno in _FATAL_ERRNOS:
        raise StoreWriteError(f"sample {job.sample.sample_id}: {error}") from error
    if isinstance(error, FrameReadError):
        if not job.readable:  # the fingerprint already says this input cannot be read
            return PERMANENT
        if isinstance(error, FrameIOError):  # readable when fingerprinted: it may pass
            return TRANSIENT
        # a corrupt frame is permanent if it is the frame that was fingerprinted; a file
        # that changed since (being copied in, rewritten) is not what this version names
        return PERMANENT if _fingerprint_now(job, recipe) == job.fingerprint else TRANSIENT
    if isinstance(error, (OSError, MemoryError)):  # EIO, timeouts, connections, memory
        return TRANSIENT
    return PERMANENT


def _fingerprint_now(job: SampleJob, recipe: Recipe) -> str | None:
    try:
        return sample_fingerprint(job.sample, recipe)
    except Exception:  # noqa: BLE001 - cannot even fingerprint: not what was planned
        return None


def _compute(job: SampleJob, recipe: Recipe) -> tuple[ProcessedSample, list[tuple[dict, dict]]]:
    """Process one sample and make its augmented copies, retrying I/O-type errors after
    ``RETRY_DELAYS``; raises ``_SampleFailed`` (or ``StoreWriteError``)."""
    split = recipe.split.mode if recipe.split is not None else None
    for delay in (*RETRY_DELAYS, None):
        try:
            processed = process_sample(job.sample, recipe)
            augmented = processed.copies  # made before alignment: (parameters, arrays)
            if recipe.augment is not None:
                tick = time.perf_counter()
                augmented = [
                    (params.to_dict(), arrays)
                    for params, arrays in augment_copies(
                        processed.arrays, recipe.augment, job.sample.sample_id, split=split
                    )
                ]
                processed.timings["augment"] = time.perf_counter() - tick
        except StoreWriteError:
            raise
        except Exception as error:  # any failure of one sample must not stop the run
            kind = failure_kind(error, job, recipe)
            if kind == PERMANENT or delay is None:
                raise _SampleFailed(error, kind) from error
            time.sleep(delay)
            continue
        if not job.readable:  # it reads now: the inputs changed since they were fingerprinted
            raise _SampleFailed(
                FrameIOError(
                    "a frame that could not be read when the run was planned reads now; the next "
                    "run fingerprints it again",
                    file=job.sample.source,
                    sample=job.sample.sample_id,
                ),
                TRANSIENT,
            )
        return processed, augmented
    raise AssertionError("unreachable")


def process_batch(job: BatchJob) -> BatchResult:
    """Process the job's samples; a bad sample is recorded, never fatal (I/O-type errors are
    retried first); a store write error stops the batch (``StoreWriteError``).

    A sample's augmented copies (``recipe.augment`` after alignment, ``recipe.source_augment``
    before it) go to the rows right after its own. A batch whose run is gone (``job.watch``)
    stops before its next sample or write (``RunAbandoned``).
    """
    recipe, class_names = job.recipe, job.class_names
    rows: dict[int, dict] = {}
    failures: list[Failure] = []
    timings: dict[str, float] = {}
    writer = SampleWriter(job.fork, job.specs)
    copies = recipe.n_copies
    for sample_job in job.samples:
        row, sample, fingerprint = sample_job.row, sample_job.sample, sample_job.fingerprint
        _stop_if_abandoned(job, sample)
        failure: Failure | None = None
        try:
            processed, augmented = _compute(sample_job, recipe)
            for arrays in (processed.arrays, *(arrays for _, arrays in augmented)):
                writer.check(arrays)  # all of them before any is written
            _stop_if_abandoned(job, sample)
            tick = time.perf_counter()
            crcs = [writer.write(row, processed.arrays)]
            for k, (_, arrays) in enumerate(augmented, start=1):
                crcs.append(writer.write(row + k, arrays))
            processed.timings["write"] = time.perf_counter() - tick
        except _SampleFailed as failed:
            error = failed.error
            expected = isinstance(error, MerPrepError)
            message = (
                str(error)
                if expected
                else "".join(traceback.format_exception_only(type(error), error)).strip()
            )
            file = getattr(error, "file", "") or sample.source
            file, message = (relative_to_root(text, sample.root) for text in (file, message))
            failure = Failure(sample.sample_id, file, "process", message, failed.kind)
        except SchemaError as error:  # the sample's arrays do not fit the recipe: a bug
            failure = Failure(sample.sample_id, sample.source, "process", str(error), PERMANENT)
        if failure is not None:  # the sample and its copies are failed rows
            failures.append(failure)
            for k in range(copies + 1):
                rows[row + k] = sample_row(
                    sample,
                    class_names,
                    status="failed",
                    error=failure.message,
                    fingerprint=fingerprint,
                    failure_kind=failure.kind,
                    augmentation=(k, {}) if k else None,
                )
            continue
        for stage, seconds in processed.timings.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
        details = dict(
            fingerprint=fingerprint,
            source_frames=processed.source_frames,
            face_box=processed.face_box,
            detector=processed.detector,
            detector_score=processed.detector_score,
            detector_confirmation=processed.detector_confirmation,
            apex=processed.apex,
            apex_source=processed.apex_source,
            flow_error_px=processed.flow_error_px,
        )
        rows[row] = sample_row(sample, class_names, content_crc=crcs[0], **details)
        for k, (params, _) in enumerate(augmented, start=1):
            rows[row + k] = sample_row(
                sample, class_names, augmentation=(k, params), content_crc=crcs[k], **details
            )
    return BatchResult(fork=job.fork, rows=rows, failures=failures, timings=timings)


def _stop_if_abandoned(job: BatchJob, sample: Sample) -> None:
    if job.watch is not None and not job.watch.alive():
        raise RunAbandoned(
            f"the run writing {job.watch.location} is gone (its branch "
            f"{job.watch.branch} no longer exists): stopped before "
            f"{sample.sample_id}"
        )


@dataclass
class RunResult:
    """All batches of a run put together, in store row order."""

    forks: list[ic.ForkSession]
    rows: list[dict]
    failures: list[Failure]
    timings: dict[str, float]

    @property
    def n_ok(self) -> int:
        return sum(row["status"] == "ok" for row in self.rows)


def combine_batches(
    results: list[BatchResult], n_rows: int, reused: dict[int, dict] | None = None
) -> RunResult:
    """Merge batch results (any order) and ``reused`` rows (kept from the previous version)
    into rows 0..n_rows-1, failures and summed timings."""
    rows = dict(reused or {})
    rows.update({row: record for result in results for row, record in result.rows.items()})
    missing = sorted(set(range(n_rows)) - set(rows))
    if missing:
        raise PipelineError(f"no batch reported rows {missing[:10]}; refusing to commit a gap")
    timings: dict[str, float] = {}
    for result in results:
        for stage, seconds in result.timings.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
    return RunResult(
        forks=[r.fork for r in results],
        rows=[rows[i] for i in range(n_rows)],
        failures=[f for r in results for f in r.failures],
        timings=timings,
    )

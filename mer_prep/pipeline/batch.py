"""A coarse unit of work: process a batch of samples and write them through one store fork."""

from __future__ import annotations

import time
import traceback
from collections.abc import Container
from dataclasses import dataclass, field

import icechunk as ic

from mer_prep.errors import MerPrepError, PipelineError
from mer_prep.pipeline.augment import augment_copies
from mer_prep.pipeline.process import process_sample
from mer_prep.recipes import ArraySpec, Recipe
from mer_prep.sample import Failure, Sample
from mer_prep.store.table import sample_row
from mer_prep.store.writer import SampleWriter, VersionPlan


@dataclass(frozen=True)
class SampleJob:
    """One sample to compute: its store row (its augmented copies take the rows after it), the
    sample and the fingerprint of its inputs."""

    row: int
    sample: Sample
    fingerprint: str


def sample_jobs(plan: VersionPlan, reused: Container[int] = ()) -> list[SampleJob]:
    """The samples of ``plan`` still to compute (their first row not in ``reused``), in order."""
    stride = plan.recipe.rows_per_sample  # a sample's row, then its augmented copies
    return [SampleJob(row, sample, fingerprint) for row, sample, fingerprint
            in zip(range(0, plan.n_rows, stride), plan.samples, plan.fingerprints)
            if row not in reused]


@dataclass(frozen=True)
class BatchJob:
    """What a worker gets: samples to compute and everything needed to write them through its
    own fork of the version's session."""

    fork: ic.ForkSession
    samples: list[SampleJob]
    recipe: Recipe
    specs: dict[str, ArraySpec]
    class_names: list[str]


@dataclass
class BatchResult:
    """What a batch hands back: its fork (to merge), table rows, failures and stage timings."""

    fork: ic.ForkSession
    rows: dict[int, dict]
    failures: list[Failure]
    timings: dict[str, float] = field(default_factory=dict)


def process_batch(job: BatchJob) -> BatchResult:
    """Process the job's samples; a bad sample is recorded, never fatal.

    A sample's augmented copies (``recipe.augment`` after alignment, ``recipe.source_augment``
    before it) go to the rows right after its own.
    """
    recipe, class_names = job.recipe, job.class_names
    rows: dict[int, dict] = {}
    failures: list[Failure] = []
    timings: dict[str, float] = {}
    writer = SampleWriter(job.fork, job.specs)
    copies = recipe.n_copies
    split = recipe.split.mode if recipe.split is not None else None
    for row, sample, fingerprint in ((j.row, j.sample, j.fingerprint) for j in job.samples):
        try:
            processed = process_sample(sample, recipe)
            tick = time.perf_counter()
            writer.write(row, processed.arrays)
            processed.timings["write"] = time.perf_counter() - tick
            augmented = processed.copies  # made before alignment: (parameters, arrays)
            if recipe.augment is not None:
                tick = time.perf_counter()
                augmented = [(params.to_dict(), arrays) for params, arrays in augment_copies(
                    processed.arrays, recipe.augment, sample.sample_id, split=split)]
                processed.timings["augment"] = time.perf_counter() - tick
            if augmented:
                tick = time.perf_counter()
                for k, (_, arrays) in enumerate(augmented, start=1):
                    writer.write(row + k, arrays)
                processed.timings["write"] += time.perf_counter() - tick
        except Exception as error:  # noqa: BLE001 - any failure of one sample must not stop the run
            expected = isinstance(error, MerPrepError)
            message = str(error) if expected else "".join(
                traceback.format_exception_only(type(error), error)).strip()
            file = getattr(error, "file", "") or sample.source
            failures.append(Failure(sample.sample_id, file, "process", message))
            for k in range(copies + 1):
                rows[row + k] = sample_row(sample, class_names, status="failed", error=message,
                                           fingerprint=fingerprint,
                                           augmentation=(k, {}) if k else None)
            continue
        for stage, seconds in processed.timings.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
        details = dict(fingerprint=fingerprint, source_frames=processed.source_frames,
                       face_box=processed.face_box, detector=processed.detector,
                       apex=processed.apex, apex_source=processed.apex_source,
                       flow_error_px=processed.flow_error_px)
        rows[row] = sample_row(sample, class_names, **details)
        for k, (params, _) in enumerate(augmented, start=1):
            rows[row + k] = sample_row(sample, class_names, augmentation=(k, params), **details)
    return BatchResult(fork=job.fork, rows=rows, failures=failures, timings=timings)


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


def combine_batches(results: list[BatchResult], n_rows: int,
                    reused: dict[int, dict] | None = None) -> RunResult:
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
    return RunResult(forks=[r.fork for r in results], rows=[rows[i] for i in range(n_rows)],
                     failures=[f for r in results for f in r.failures], timings=timings)

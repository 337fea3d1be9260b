"""A coarse unit of work: process a batch of samples and write them through one store fork."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

import icechunk as ic

from mer_prep.pipeline.augment import augment_copies
from mer_prep.errors import MerPrepError
from mer_prep.pipeline.process import process_sample
from mer_prep.recipes import Recipe
from mer_prep.sample import Sample
from mer_prep.store.table import sample_row
from mer_prep.store.writer import SampleWriter


@dataclass
class BatchResult:
    """What a batch hands back: its fork (to merge), table rows, failures and stage timings."""

    fork: ic.ForkSession
    rows: dict[int, dict]
    failures: list[dict]
    timings: dict[str, float] = field(default_factory=dict)


def process_batch(fork: ic.ForkSession, items: list[tuple[int, Sample, str]], recipe: Recipe,
                  specs: dict[str, dict], class_names: list[str]) -> BatchResult:
    """Process ``(row, sample, fingerprint)`` items; a bad sample is recorded, never fatal.

    A sample's augmented copies (``recipe.augment``) go to the rows right after its own.
    """
    rows: dict[int, dict] = {}
    failures: list[dict] = []
    timings: dict[str, float] = {}
    writer = SampleWriter(fork, specs)
    copies = recipe.augment.copies if recipe.augment is not None else 0
    split = recipe.split.mode if recipe.split is not None else None
    for row, sample, fingerprint in items:
        try:
            processed = process_sample(sample, recipe)
            tick = time.perf_counter()
            writer.write(row, processed.arrays)
            processed.timings["write"] = time.perf_counter() - tick
            augmented = []
            if copies:
                tick = time.perf_counter()
                augmented = augment_copies(processed.arrays, recipe.augment, sample.sample_id,
                                           split=split)
                processed.timings["augment"] = time.perf_counter() - tick
                tick = time.perf_counter()
                for k, (_, arrays) in enumerate(augmented, start=1):
                    writer.write(row + k, arrays)
                processed.timings["write"] += time.perf_counter() - tick
        except Exception as error:  # noqa: BLE001 - any failure of one sample must not stop the run
            expected = isinstance(error, MerPrepError)
            message = str(error) if expected else "".join(
                traceback.format_exception_only(type(error), error)).strip()
            file = getattr(error, "file", "") or sample.source
            failures.append({"sample_id": sample.sample_id, "file": file,
                             "stage": "process", "message": message})
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
            rows[row + k] = sample_row(sample, class_names, augmentation=(k, params.to_dict()),
                                       **details)
    return BatchResult(fork=fork, rows=rows, failures=failures, timings=timings)


@dataclass
class RunResult:
    """All batches of a run put together, in store row order."""

    forks: list[ic.ForkSession]
    rows: list[dict]
    failures: list[dict]
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
        raise RuntimeError(f"no batch reported rows {missing[:10]}; refusing to commit a gap")
    timings: dict[str, float] = {}
    for result in results:
        for stage, seconds in result.timings.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
    return RunResult(forks=[r.fork for r in results], rows=[rows[i] for i in range(n_rows)],
                     failures=[f for r in results for f in r.failures], timings=timings)

"""A coarse unit of work: process a batch of samples and write them through one store fork."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

import icechunk as ic

from mer_prep.errors import MerPrepError
from mer_prep.process import process_sample
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
    """Process ``(row, sample, fingerprint)`` items; a bad sample is recorded, never fatal."""
    rows: dict[int, dict] = {}
    failures: list[dict] = []
    timings: dict[str, float] = {}
    writer = SampleWriter(fork, specs)
    for row, sample, fingerprint in items:
        try:
            processed = process_sample(sample, recipe)
            tick = time.perf_counter()
            writer.write(row, processed.arrays)
            processed.timings["write"] = time.perf_counter() - tick
        except Exception as error:  # noqa: BLE001 - any failure of one sample must not stop the run
            expected = isinstance(error, MerPrepError)
            message = str(error) if expected else "".join(
                traceback.format_exception_only(type(error), error)).strip()
            file = getattr(error, "file", "") or sample.source
            failures.append({"sample_id": sample.sample_id, "file": file,
                             "stage": "process", "message": message})
            rows[row] = sample_row(sample, class_names, status="failed", error=message,
                                   fingerprint=fingerprint)
            continue
        for stage, seconds in processed.timings.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
        rows[row] = sample_row(sample, class_names, fingerprint=fingerprint,
                               source_frames=processed.source_frames,
                               face_box=processed.face_box, detector=processed.detector)
    return BatchResult(fork=fork, rows=rows, failures=failures, timings=timings)

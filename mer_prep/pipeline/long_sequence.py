"""One long-video store version, start to end: plan -> up to date? -> begin -> faces -> time
chunks -> finish.

This is ``mer_prep.pipeline.sequence.make_version``'s story for a long-video recipe, with the
same runners (``InProcess``, the Dask runner of ``flows.preprocess``), told separately because
its units of work differ: a clip run hands out batches of whole samples (``BatchJob``, one
table row each, written through ``SampleWriter``), a long-video run hands out one face job per
video and then one job per time chunk of each video and pair distance (a video of 12,000
frames is dozens of independent chunks, which is what lets two workers share one video). Both
kinds of job carry their own ``run()``, so a runner computes them through one method,
``submit_calls(jobs)`` (results as they finish), beside its ``submit`` for clip batches.

Refresh: a video is recomputed exactly when its input fingerprint (``long_jobs.
video_fingerprint``: fps, frame numbers, frame bytes) changed since ``main``'s version of the
same dataset, recipe and code; the others keep their stored groups (``long_writer``), their
aligned ``faces`` included. With ``store_faces`` the time chunks of a video's smallest k also
write its aligned faces (``long_video.faces_to_store``); ``_compute`` gathers each zarr chunk's
CRC-32C in time order.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mer_prep.datasets.long_video import scan_long_videos
from mer_prep.pipeline.fingerprint import dataset_fingerprint
from mer_prep.pipeline.long_jobs import (
    ChunkJob,
    ChunkResult,
    FaceJob,
    FaceResult,
    video_fingerprint,
)
from mer_prep.pipeline.long_video import chunk_ranges
from mer_prep.pipeline.summary import RunSummary
from mer_prep.recipes.long_video import LongVideoRecipe, load_long_video_recipe
from mer_prep.sample import Failure, Problem, relative_to_root
from mer_prep.store.long_writer import LongVersionPlan, LongVersionWriter, VideoOutcome
from mer_prep.store.repo import Location, StoreLocation
from mer_prep.store.versions import current_version, existing_version

LOG = logging.getLogger("mer_prep.pipeline")


class CallRunner(Protocol):
    """Where a long-video run's jobs are computed (``sequence.InProcess``,
    ``flows.preprocess._OnDask``)."""

    #: jobs handed out may outlive the run (a standing or remote cluster finishes them)
    outlives_run: bool

    def submit_calls(self, jobs: Sequence[Any]) -> Iterator[Any]:
        """Hand every job out, then yield each one's ``run()`` result as it finishes."""
        ...


@dataclass
class LongVersionRun:
    """What ``make_long_version`` did (as ``sequence.VersionRun`` for clips): ``writer`` None
    when nothing was begun; ``computed``: the videos this run computed (ids)."""

    summary: RunSummary
    plan: LongVersionPlan
    writer: LongVersionWriter | None = None
    computed: tuple[str, ...] = ()
    nothing_processed: str | None = None


def plan_long_version(
    dataset: str,
    root: str | os.PathLike,
    recipe: LongVideoRecipe | str,
    store: Location,
    **options: Any,
) -> LongVersionPlan:
    """Scan ``dataset``'s long videos under ``root`` and fingerprint them: the version's plan."""
    recipe = load_long_video_recipe(recipe)
    scan = scan_long_videos(dataset, root, **options)
    videos = sorted(scan.videos, key=lambda v: v.key)
    prints = [video_fingerprint(video) for video in videos]
    problems = [
        Problem(p.sample_id, relative_to_root(p.file, root), relative_to_root(p.message, root))
        for p in scan.problems
    ]
    # the version names the truths too (they are stored); a video's print only its frames
    inputs = [
        f"{fp}|{json.dumps([str(i) for i in v.intervals])}"
        for v, (fp, _) in zip(videos, prints, strict=True)
    ]
    return LongVersionPlan(
        location=StoreLocation.parse(store),
        dataset=dataset,
        recipe=recipe,
        videos=videos,
        fingerprints=[fp for fp, _ in prints],
        problems=problems,
        input_fingerprint=dataset_fingerprint(inputs, problems, labels="long_video"),
        unreadable=frozenset(v.key for v, (_, ok) in zip(videos, prints, strict=True) if not ok),
    )


def make_long_version(
    dataset: str,
    root: str | os.PathLike | Mapping[str, str],
    recipe: LongVideoRecipe | str,
    store: Location,
    runner: CallRunner,
    *,
    options: Mapping[str, Any] | None = None,
    state: Any = None,
    logger: logging.Logger | logging.LoggerAdapter = LOG,
) -> LongVersionRun:
    """Plan the version; unless the store holds it already, begin it (keeping unchanged
    videos), find the face of every video to compute, compute their time chunks in the
    runner, and commit. Failed videos are recorded in the version, never raised. ``state``: a
    ``sequence.RunState`` filled in as the run goes (for a cancellation)."""
    if isinstance(root, Mapping):
        from mer_prep.errors import InvalidArgumentError

        raise InvalidArgumentError(f"{dataset}: a long-video dataset takes one root folder")
    started = time.perf_counter()
    plan = plan_long_version(dataset, root, recipe, store, **dict(options or {}))
    if state is not None:
        state.location, state.before = str(plan.location), current_version(plan.location)
    summary = RunSummary(
        store=str(plan.location),
        version_id=plan.version_id,
        dataset=dataset,
        recipe=plan.recipe.name,
        n_samples=len(plan.videos),
        n_scan_problems=len(plan.problems),
        artifact_key="",
        phase_seconds={"plan": time.perf_counter() - started},
    )
    done = LongVersionRun(summary, plan)
    if not plan.videos:
        done.nothing_processed = f"{dataset}: no long videos found under {root}"
        return done
    snapshot = existing_version(plan.location, plan.version_id)
    if snapshot is not None:
        logger.info("%s is up to date: version %s", plan.location, plan.version_id)
        summary.snapshot, summary.up_to_date, summary.n_reused = snapshot, True, len(plan.videos)
        return done
    writer = done.writer = LongVersionWriter.begin(plan)
    try:
        done.computed = tuple(v.key for v in writer.to_compute)
        logger.info(
            "%d videos (%d to compute, %d unchanged) -> %s version %s",
            len(plan.videos),
            len(done.computed),
            len(writer.reused),
            plan.location,
            plan.version_id,
        )
        if state is not None:
            state.submitted = writer
        outcomes, forks, seconds = _compute(plan, writer, runner, str(root), logger)
        failures = [Failure.from_problem(p) for p in plan.problems] + [
            o.failure for o in outcomes.values() if o.failure is not None
        ]
        summary.snapshot = writer.finish(forks, outcomes, failures, seconds)
    except BaseException:
        # jobs handed to a standing or remote cluster may still write: keep a new store then
        writer.abort(remove_new_store=not runner.outlives_run)
        raise
    n_failed = sum(o.failure is not None for o in outcomes.values())
    summary.version_id, summary.failures = writer.version_id, failures
    summary.n_ok = len(plan.videos) - n_failed
    summary.n_failed, summary.stage_seconds = n_failed, seconds
    summary.n_recomputed, summary.n_reused = len(done.computed), len(writer.reused)
    summary.reused_from = writer.reused_from
    summary.wall_seconds = time.perf_counter() - started
    logger.info(
        "committed %s as %s: %d videos ok, %d failed",
        plan.location,
        writer.version_id,
        summary.n_ok,
        n_failed,
    )
    if summary.n_ok == 0:
        done.nothing_processed = f"{dataset}: every one of {len(plan.videos)} videos failed"
    return done


def _compute(
    plan: LongVersionPlan,
    writer: LongVersionWriter,
    runner: CallRunner,
    root: str,
    logger: logging.Logger | logging.LoggerAdapter,
) -> tuple[dict[str, VideoOutcome], list, dict[str, float]]:
    """Faces, then every time chunk, in the runner; per video its outcome, the forks to
    merge and CPU seconds per stage."""
    readable = {v.key: v.key not in plan.unreadable for v in plan.videos}
    face_jobs = [
        FaceJob(v, plan.recipe, plan.ks(v), root, readable[v.key]) for v in writer.to_compute
    ]
    outcomes: dict[str, VideoOutcome] = {}
    seconds = {"face": 0.0, "motion": 0.0}
    faces: list[FaceResult] = list(runner.submit_calls(face_jobs))
    watch = writer.watch() if runner.outlives_run else None
    by_key = {v.key: v for v in plan.videos}
    chunk_jobs = []
    for found in faces:
        seconds["face"] += found.seconds
        outcomes[found.video_id] = VideoOutcome(
            face=None if found.face is None else found.face.to_dict(), failure=found.failure
        )
        if found.face is None:
            logger.warning("failed %s", found.failure)
            continue
        video = by_key[found.video_id]
        for k in plan.ks(video):
            for index, pairs in enumerate(
                chunk_ranges(video.n_frames - k, plan.recipe.chunk_pairs)
            ):
                chunk_jobs.append(
                    ChunkJob(
                        writer.fork(),
                        video,
                        found.face,
                        plan.recipe,
                        k,
                        pairs,
                        index,
                        root,
                        readable[video.key],
                        watch,
                    )
                )
    chunks: dict[str, list[ChunkResult]] = {}
    for result in runner.submit_calls(chunk_jobs):
        seconds["motion"] += result.seconds
        chunks.setdefault(result.video_id, []).append(result)
    forks = []
    for video_id, results in chunks.items():
        outcome = outcomes[video_id]
        failed = sorted((r for r in results if r.failure is not None), key=lambda r: r.index)
        if failed:
            outcome.failure = failed[0].failure
            logger.warning("failed %s", outcome.failure)
            continue  # its chunks are dropped with its arrays (long_writer.finish)
        forks += [r.fork for r in results]
        for result in sorted(results, key=lambda r: (r.k, r.index)):
            for path, crcs in result.crcs.items():  # ``faces``: from the smallest k's chunks
                outcome.crcs.setdefault(path, []).extend(crcs)
        if plan.recipe.track:  # where each chunk found the face (the smallest k's chunks)
            first_k = min(r.k for r in results)
            outcome.chunk_boxes = [
                list(r.box or ()) for r in sorted(results, key=lambda r: r.index) if r.k == first_k
            ]
    return outcomes, forks, seconds

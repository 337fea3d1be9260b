"""The only module that writes long-video versions (layout: ``mer_prep.store.long_layout``).

The protocol is the clip writer's (``mer_prep.store.writer``), so readers never see half a
version:

1. ``LongVersionWriter.begin`` lays out, on a private snapshot of ``main``, the group and the
   time-chunked arrays of every video to compute (and its ``frame_numbers``), and opens a
   session on a scratch branch there. On a refresh (``main`` holds a version of the same
   dataset, recipe hash, code version and regions) the groups of unchanged videos are kept as
   they are (Icechunk shares their chunks: nothing is copied or recomputed); the groups of
   changed or vanished videos are dropped first.
2. Workers write time chunks through picklable ``ForkSession``s (``write_chunk``): one chunk of
   each motion array per call, its values' CRC-32C returned. With a recipe's ``store_faces``,
   the call of the smallest k's time chunk also writes that chunk's aligned faces (the last
   chunk its last ``k`` frames too), so each zarr chunk of ``faces`` has one writer.
3. ``finish`` merges the forks, writes every video's attributes (face, status, fingerprint,
   truths, chunk CRCs) and the root's, validates the whole version against
   ``storage_schemas/long_video_store.v1.json``, commits and publishes it exactly as a clip
   version is published (``writer.publish_version``: ``main`` moved by compare-and-set, the
   version id tagged, the scratch branch dropped).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

import icechunk as ic
import numpy as np
import zarr
import zarr.api.asynchronous
from zarr.core.sync import sync

from mer_prep.datasets.long_video import LongVideo
from mer_prep.errors import CorruptDataError, SchemaError, StoreWriteError
from mer_prep.recipes.long_video import LongVideoRecipe
from mer_prep.sample import Failure, Problem
from mer_prep.store.layout import MAIN, TRANSIENT, RecipeAttrs
from mer_prep.store.long_layout import (
    FACE_DIMS,
    FACES,
    FRAME_NUMBERS,
    MOTION_ARRAYS,
    MOTION_DIMS,
    LongReuseAttrs,
    LongVersionAttrs,
    VideoAttrs,
    is_long_video_attrs,
    k_path,
    motion_path,
    validate_long_group,
    video_attrs,
    video_path,
)
from mer_prep.store.nodes import async_array_at, group_at
from mer_prep.store.repo import NewStore, StoreLocation
from mer_prep.store.run_watch import RunWatch
from mer_prep.store.schema import DIGEST_KEY, attrs_digest, content_crc
from mer_prep.store.versions import incomplete_version_id, make_version_id, root_attrs
from mer_prep.store.writer import (
    COMPRESSORS,
    delete_branch,
    interrupts_deferred,
    publish_version,
    scratch_of,
)
from mer_prep.version import code_version


@dataclass
class LongVersionPlan:
    """Everything that determines one long-video version, known before any pixel is decoded:
    the videos in store order, each one's input ``fingerprints`` (32 hex: its frames' bytes,
    numbers and fps), the scan's problems and the ``input_fingerprint`` over all of it (the
    truths included: they are stored). ``unreadable``: videos with a file that could not be read
    while fingerprinting (their failure is permanent under that print)."""

    location: StoreLocation
    dataset: str
    #: its hash is one of the version id's three inputs
    recipe: LongVideoRecipe
    # the long lists stay out of the repr (a dataset has hundreds of videos and quirks)
    #: sorted by ``key``; a video's group is ``videos/<key>``
    videos: list[LongVideo] = field(repr=False)
    #: per video, what a refresh compares
    fingerprints: list[str] = field(repr=False)
    #: the scan's (sheet quirks, videos it could not use), recorded as ``scan`` failures
    problems: list[Problem] = field(repr=False)
    #: over every video's fingerprint and truths and the problems
    input_fingerprint: str
    code_version: str = field(default_factory=code_version)
    unreadable: frozenset[str] = frozenset()

    @property
    def version_id(self) -> str:
        return make_version_id(self.recipe.hash, self.input_fingerprint, self.code_version)

    def ks(self, video: LongVideo) -> tuple[int, ...]:
        """The pair distances stored for ``video`` (frames)."""
        return self.recipe.ks_for(video.fps)


@dataclass
class VideoOutcome:
    """What a run computed for one video: its face record (``VideoFace.to_dict``) and, per
    array path, the CRC-32C of each chunk in time order; ``failure`` when it failed."""

    face: dict | None = None
    crcs: dict[str, list[int]] = field(default_factory=dict)
    failure: Failure | None = None
    #: with a tracking recipe, the face box of each time chunk (left, top, right, bottom)
    chunk_boxes: list[list[int]] | None = None


def truth_attrs(video: LongVideo) -> list[dict]:
    """The video's annotated intervals as stored (inclusive frame numbers)."""
    return [
        {"kind": i.kind, "onset": i.onset, "apex": i.apex, "offset": i.offset, "emotion": i.emotion}
        for i in video.intervals
    ]


def reusable_videos(
    repo: ic.Repository, base: str, plan: LongVersionPlan
) -> tuple[dict[str, VideoAttrs], str] | None:
    """Videos of ``main``'s long-video version at ``base`` that ``plan`` may keep as they are
    (same fingerprint, pair distances and chunking, processed ok), and that version's id; None
    unless that version has the same dataset, recipe hash, code version and regions."""
    attrs = root_attrs(repo, base)
    if not is_long_video_attrs(attrs):
        return None
    same = (
        attrs.get("dataset") == plan.dataset
        and attrs.get("recipe", {}).get("hash") == plan.recipe.hash
        and attrs.get("code_version") == plan.code_version
        and attrs.get("roi_names") == list(plan.recipe.regions)
    )
    if not same:
        return None
    root = zarr.open_group(repo.readonly_session(snapshot_id=base).store, mode="r")
    stored = set(attrs.get("videos", []))
    reused = {}
    for video, fingerprint in zip(plan.videos, plan.fingerprints, strict=True):
        if video.key not in stored:
            continue
        digest = attrs.get("video_digests", {}).get(video.key)
        try:
            old = video_attrs(group_at(root, video_path(video.key)), video.key, digest)
        except (SchemaError, CorruptDataError):  # damaged: computed again
            continue
        if (
            old.status == "ok"
            and old.fingerprint == fingerprint
            and old.ks == list(plan.ks(video))
            and old.chunk_pairs == plan.recipe.chunk_pairs
        ):
            reused[video.key] = old
    return reused, str(attrs["version_id"])


def write_chunk(
    fork: ic.ForkSession,
    video_id: str,
    k: int,
    pairs: range,
    rows: np.ndarray,
    faces: np.ndarray | None = None,
) -> dict[str, list[int]]:
    """Store rows ``pairs`` of a video's three ``k`` arrays (``rows``: (3, len(pairs), R)
    float32, in ``MOTION_ARRAYS`` order) and, when given, ``faces`` ((n, h, w) uint8, frame
    positions ``pairs.start ..``) through a worker's fork. Returns, by array path, the CRC-32C
    of each zarr chunk written, in time order (one per motion array; ``faces`` may span more).
    Any error storing them is a ``StoreWriteError`` (the run stops)."""
    writes = [(motion_path(k, name), rows[i]) for i, name in enumerate(MOTION_ARRAYS)]
    writes += [] if faces is None else [(FACES, faces)]
    start = pairs.start

    async def write_all(arrays: list) -> None:
        cells = zip(arrays, writes, strict=True)
        await asyncio.gather(*(a.setitem(slice(start, start + len(v)), v) for a, (_, v) in cells))

    try:
        group = sync(zarr.api.asynchronous.open_group(store=fork.store, mode="r+"))
        arrays = [async_array_at(group, f"{video_path(video_id)}/{path}") for path, _ in writes]
        steps = [array.chunks[0] for array in arrays]
        if any(start % step for step in steps):  # two forks would write one chunk: a conflict
            raise SchemaError(f"pairs from {start} do not start a chunk of {steps}")
        sync(write_all(arrays))
    except Exception as error:  # disk full, S3, I/O: never a video failure
        raise StoreWriteError(
            f"writing {video_id} k={k} pairs {pairs.start}..{pairs.stop - 1} failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    return {
        path: [content_crc(values[a : a + step]) for a in range(0, len(values), step)]
        for (path, values), step in zip(writes, steps, strict=True)
    }


class LongVersionWriter:
    """Writes one long-video version; see the module docstring for the protocol."""

    def __init__(
        self,
        plan: LongVersionPlan,
        repo: ic.Repository,
        base: str,
        branch: str,
        session: ic.Session,
        reused: dict[str, VideoAttrs],
        reused_from: str | None,
        new_store: NewStore | None = None,
    ) -> None:
        self.plan, self.repo, self.base, self.branch = plan, repo, base, branch
        self.session = session
        #: video id -> its attributes in ``reused_from``, for videos kept as they are
        self.reused = reused
        self.reused_from = reused_from
        self.version_id = plan.version_id
        #: what ``begin`` created on disk (removed again if the run never commits)
        self.new_store = new_store or NewStore(plan.location, None)

    @property
    def to_compute(self) -> list[LongVideo]:
        """The videos workers must compute, in store order."""
        return [v for v in self.plan.videos if v.key not in self.reused]

    @classmethod
    def begin(cls, plan: LongVersionPlan, *, reuse: bool = True) -> LongVersionWriter:
        """Lay the version out (module docstring, step 1) and open its scratch session; the
        scratch branch (and a store this call created) is removed again if this fails."""
        with scratch_of(plan.location, plan.version_id) as (new, repo, branch):
            base = repo.lookup_branch(MAIN)
            previous = reusable_videos(repo, base, plan) if reuse else None
            reused, reused_from = previous if previous is not None else ({}, None)
            kept = None if previous is None else reused
            repo.create_branch(branch, _lay_out_version(repo, base, plan, kept))
            session = repo.writable_session(branch)
            return cls(plan, repo, base, branch, session, reused, reused_from, new)

    def fork(self) -> ic.ForkSession:
        """A picklable session for one worker task."""
        return self.session.fork()

    def watch(self) -> RunWatch:
        """What a worker task checks to learn that this run is gone."""
        return RunWatch(str(self.plan.location), self.branch)

    def reuse_summary(self) -> dict:
        """What the version recomputed and what it kept from ``reused_from``, in videos."""
        return LongReuseAttrs(
            from_version=self.reused_from,
            n_reused=len(self.reused),
            n_recomputed=len(self.to_compute),
        ).model_dump(mode="json")

    def finish(
        self,
        forks: list[ic.ForkSession],
        outcomes: dict[str, VideoOutcome],
        failures: list[Failure],
        stage_seconds: dict[str, float] | None = None,
    ) -> str:
        """Merge the forks, write the videos' and the root's attributes, validate, commit and
        publish (module docstring, step 3); the snapshot id. ``outcomes``: one per video
        computed; ``failures``: the scan's and the videos' (a transient one makes the version
        incomplete, as for clip stores: ``versions.incomplete_version_id``)."""
        plan = self.plan
        transient = [f for f in failures if f.kind == TRANSIENT]
        complete = not transient
        if not complete:
            rows = [
                {"sample_id": f.sample_id, "error": f.message, "status": "failed"}
                | {"failure_kind": TRANSIENT}
                for f in transient
            ]
            self.version_id = incomplete_version_id(plan.version_id, rows)
        try:
            if forks:
                self.session.merge(*forks)
            root = zarr.open_group(self.session.store, mode="r+")
            n_ok, digests = 0, {}
            for video, fingerprint in zip(plan.videos, plan.fingerprints, strict=True):
                attrs = self._video_attrs(root, video, fingerprint, outcomes.get(video.key))
                n_ok += attrs["status"] == "ok"
                group_at(root, video_path(video.key)).attrs.put(attrs)
                digests[video.key] = attrs_digest(attrs)
        except (ic.IcechunkError, OSError) as error:
            what = f"{type(error).__name__}: {error}"
            raise StoreWriteError(f"store {plan.location}: {self.version_id}: {what}") from error
        attrs = LongVersionAttrs(
            dataset=plan.dataset,
            recipe=RecipeAttrs(
                name=plan.recipe.name, hash=plan.recipe.hash, parameters=plan.recipe.parameters()
            ),
            input_fingerprint=plan.input_fingerprint,
            code_version=plan.code_version,
            version_id=self.version_id,
            inputs_version_id=plan.version_id,
            complete=complete,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            n_videos=len(plan.videos),
            n_ok=n_ok,
            roi_names=list(plan.recipe.regions),
            videos=[video.key for video in plan.videos],
            failures=[failure.to_dict() for failure in failures],
            reuse=self.reuse_summary(),
            video_digests=digests,
            stage_seconds=stage_seconds,
        ).to_attrs()
        attrs[DIGEST_KEY] = attrs_digest(attrs)
        root.attrs.put(attrs)
        validate_long_group(root)
        message = f"{plan.dataset}/{plan.recipe.name} {self.version_id} (long videos)"
        return publish_version(
            self.repo, self.session, self.base, self.branch, self.version_id, message, plan.location
        )

    def _video_attrs(
        self, root: zarr.Group, video: LongVideo, fingerprint: str, outcome: VideoOutcome | None
    ) -> dict:
        """A video's attributes for the version: kept ones (truths refreshed) for a reused
        video; else what its outcome says (a failed video's arrays are dropped)."""
        if video.key in self.reused:
            kept = self.reused[video.key].model_dump(mode="json", exclude_none=True)
            return kept | {"truths": truth_attrs(video)}
        outcome = outcome or VideoOutcome(
            failure=Failure(video.key, "", "process", "not computed (the run lost its result)")
        )
        attrs = {
            "video_id": video.key,
            "subject": video.subject,
            "video": video.video,
            "fps": float(video.fps),
            "n_frames": video.n_frames,
            "status": "ok" if outcome.failure is None else "failed",
            "fingerprint": fingerprint,
            "ks": list(self.plan.ks(video)),
            "chunk_pairs": self.plan.recipe.chunk_pairs,
            "truths": truth_attrs(video),
            "face": outcome.face,
            "content_crc32c": outcome.crcs
            | {FRAME_NUMBERS: [content_crc(np.asarray(video.frame_numbers, np.int64))]},
        }
        if outcome.chunk_boxes is not None:
            attrs["chunk_boxes"] = outcome.chunk_boxes
        if outcome.failure is not None:
            group = group_at(root, video_path(video.key))
            for name in list(group.keys()):
                del group[name]
            attrs |= {"error": outcome.failure.message, "content_crc32c": {}}
        return attrs

    def abort(self, *, remove_new_store: bool = True) -> None:
        """Drop the scratch branch and, with ``remove_new_store``, a store this run created and
        never committed to. Never raises."""
        with interrupts_deferred():
            delete_branch(self.repo, self.branch)
            if remove_new_store:
                self.new_store.remove_if_unused(self.repo)


def _lay_out_version(
    repo: ic.Repository, base: str, plan: LongVersionPlan, kept: dict[str, VideoAttrs] | None
) -> str:
    """The snapshot the scratch branch starts at: ``main`` (at ``base``) with the groups of
    videos not ``kept`` dropped on a refresh (everything on a fresh layout: ``kept`` None), and
    every video to compute laid out."""
    prepare = repo.writable_session(MAIN)
    root = zarr.open_group(prepare.store, mode="a", zarr_format=3)
    if kept is None:  # a fresh layout
        kept = {}
        for name in list(root.keys()):
            del root[name]
        root.attrs.put({})
    else:  # unchanged videos stay as they are
        for video_id in root_attrs(repo, base).get("videos", []):
            if video_id not in kept and video_path(video_id) in root:
                del root[video_path(video_id)]
    for video in plan.videos:
        if video.key not in kept:
            _lay_out(root, plan, video)
    if not prepare.has_uncommitted_changes:
        return base
    return prepare.flush(f"layout of {plan.version_id}")


def _lay_out(root: zarr.Group, plan: LongVersionPlan, video: LongVideo) -> None:
    """A video's group: its ``frame_numbers`` written (one chunk) and its motion arrays (and,
    with ``store_faces``, its ``faces``) laid out empty, ``chunk_pairs`` rows per chunk along
    time: chunk ``i`` of ``faces`` is frames ``[i * chunk_pairs, (i + 1) * chunk_pairs)``, the
    frames of the smallest k's time chunk ``i``, whose job alone writes them."""
    group = root.create_group(video_path(video.key), overwrite=True)
    numbers = np.asarray(video.frame_numbers, np.int64)
    array = group.create_array(
        FRAME_NUMBERS,
        shape=numbers.shape,
        chunks=(max(len(numbers), 1),),
        dtype="int64",
        compressors=COMPRESSORS,
        dimension_names=("frame",),
    )
    if len(numbers):
        array[:] = numbers
    shapes: dict[str, tuple[int, ...]] = {}
    if plan.recipe.store_faces:
        shapes[FACES] = (video.n_frames, *plan.recipe.size)
    n_rois = len(plan.recipe.regions)
    for k in plan.ks(video):
        group.create_group(k_path(k))  # explicit: zarr v3 has no implicit groups
        for name in MOTION_ARRAYS:
            shapes[motion_path(k, name)] = (max(video.n_frames - k, 0), n_rois)
    for path, shape in shapes.items():
        faces = path == FACES
        group.create_array(
            path,
            shape=shape,
            chunks=(min(plan.recipe.chunk_pairs, max(shape[0], 1)), *shape[1:]),
            dtype="uint8" if faces else "float32",
            compressors=COMPRESSORS,
            dimension_names=FACE_DIMS if faces else MOTION_DIMS,
            fill_value=0,
        )

"""The units of work of a long-video run, each a picklable job with a ``run()``: what a worker
(in this process, or a Dask worker through a Prefect task) computes.

- ``FaceJob``: find one video's face on its first frame (``long_video.locate_face``): the
  detection, once per video.
- ``ChunkJob``: one time chunk of one video at one pair distance ``k``: pairs ``a..b-1`` from
  frames ``a..b-1+k`` (chunks overlap by ``k`` frames), written through the job's own fork of
  the version's session (``long_writer.write_chunk``); with a tracking recipe it finds the face
  again on its first frame (``long_video.chunk_face``). With ``store_faces``, a chunk at the
  video's smallest k also writes the aligned faces it computed the motion from
  (``long_video.faces_to_store``: its own frames, the last chunk its final ``k`` too).

A bad input (an unreadable or corrupt frame, no face, a video too short for ``k``) is the
job's ``Failure``, one line naming the file (relative to the dataset root) and the video; the
run records it and goes on with the other videos. An error writing the store is raised.

Input fingerprints (``video_fingerprint``): a video's fps, frame numbers and the bytes of every
frame file (or of its video file): what its motion is computed from; a refresh recomputes a
video exactly when this changes.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

import icechunk as ic

from mer_prep.datasets.long_video import LongVideo
from mer_prep.errors import FrameIOError, FrameReadError, MerPrepError, RunAbandoned
from mer_prep.pipeline.fingerprint import _hash_file, _hash_video
from mer_prep.pipeline.long_video import (
    VideoFace,
    check_length,
    chunk_face,
    faces_to_store,
    locate_face,
    motion_and_frames,
)
from mer_prep.recipes.long_video import LongVideoRecipe
from mer_prep.sample import Failure, relative_to_root
from mer_prep.store.layout import PERMANENT, TRANSIENT
from mer_prep.store.long_writer import write_chunk
from mer_prep.store.run_watch import RunWatch


def video_fingerprint(video: LongVideo) -> tuple[str, bool]:
    """``(fingerprint, readable)``: sha256 (32 hex) of the video's key, fps, frame numbers and
    the bytes of every frame (or its video file); readable is False when a file could not be
    read (the fingerprint then names that state)."""
    record = {"id": video.key, "fps": video.fps, "frames": list(video.frame_numbers)}
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode())
    if video.video_path is not None:
        return digest.hexdigest()[:32], _hash_video(digest, video.video_path)
    readable = True
    for path in video.frame_paths:
        readable &= _hash_file(digest, path)
    return digest.hexdigest()[:32], readable


def _failure(error: Exception, video: LongVideo, root: str, stage: str, readable: bool) -> Failure:
    """One line naming the file (relative to ``root``) and the video; an OS-level read error on
    a video that was readable when planned may pass (transient), anything else is permanent."""
    transient = readable and isinstance(error, (FrameIOError, OSError, MemoryError))
    file = relative_to_root(getattr(error, "file", "") or video.source, root)
    message = relative_to_root(str(error), root)
    if video.key not in message:
        message = f"video {video.key}: {message}"
    return Failure(video.key, file, stage, message, TRANSIENT if transient else PERMANENT)


@dataclass
class FaceResult:
    """A ``FaceJob``'s outcome: the face (None when it failed) or the failure."""

    video_id: str
    face: VideoFace | None
    failure: Failure | None
    seconds: float = 0.0


@dataclass(frozen=True)
class FaceJob:
    """Find one video's face (and check it is long enough for every ``ks``)."""

    video: LongVideo
    recipe: LongVideoRecipe
    ks: tuple[int, ...]
    root: str
    readable: bool = True

    def run(self) -> FaceResult:
        tick = time.process_time()
        try:
            for k in self.ks:
                check_length(self.video, self.recipe, k)
            face = locate_face(self.video, self.recipe)
        except (MerPrepError, OSError, MemoryError) as error:
            failure = _failure(error, self.video, self.root, "face", self.readable)
            return FaceResult(self.video.key, None, failure, time.process_time() - tick)
        return FaceResult(self.video.key, face, None, time.process_time() - tick)


@dataclass
class ChunkResult:
    """A ``ChunkJob``'s outcome: its fork (to merge), where it belongs (video, ``k``, chunk
    index), the CRC-32C of each zarr chunk written (by array path, in time order: one per
    motion array, one or more of ``faces``) or the failure."""

    fork: ic.ForkSession
    video_id: str
    k: int
    index: int
    crcs: dict[str, list[int]] = field(default_factory=dict)
    failure: Failure | None = None
    seconds: float = 0.0
    #: the face box the chunk was aligned with (left, top, right, bottom; source pixels)
    box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class ChunkJob:
    """One time chunk: pairs ``pairs`` of ``video`` at pair distance ``k``, chunk ``index``."""

    fork: ic.ForkSession
    video: LongVideo
    face: VideoFace
    recipe: LongVideoRecipe
    k: int
    pairs: range
    index: int
    root: str
    readable: bool = True
    #: the run's liveness (None: the caller's process is the run)
    watch: RunWatch | None = None

    def run(self) -> ChunkResult:
        if self.watch is not None and not self.watch.alive():
            raise RunAbandoned(f"the run writing {self.watch.location} is gone")
        tick = time.process_time()
        result = ChunkResult(self.fork, self.video.key, self.k, self.index)
        try:
            face = chunk_face(self.video, self.recipe, self.face, self.pairs)
            result.box = face.box
            rows, frames = motion_and_frames(self.video, face, self.recipe, self.pairs, self.k)
        except (FrameReadError, MerPrepError, OSError, MemoryError) as error:
            result.failure = _failure(error, self.video, self.root, "process", self.readable)
        else:
            faces = faces_to_store(self.video, self.recipe, self.k, self.pairs, frames)
            del frames  # the chunk's float frames: only its uint8 faces are still needed
            result.crcs = write_chunk(self.fork, self.video.key, self.k, self.pairs, rows, faces)
        result.seconds = time.process_time() - tick
        return result

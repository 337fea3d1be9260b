"""One long video through the long-video recipe, streamed in time chunks: bounded memory at any
length.

    face = locate_face(video, recipe)  # once per video, on its first frame
    rows = motion_chunk(video, face, recipe, range(0, 512))  # pairs 0..511, any worker
    rows, frames = motion_and_frames(video, face, recipe, range(0, 512))  # + aligned frames
    motion = video_motion(video, recipe)  # every chunk in turn, concatenated

The face box is found on the first frame (as the field's spotting pipelines do; the next frames
are tried when it shows none), the 68 landmarks fitted there, and the one alignment they give
is applied to every frame, so the regions stay put in the aligned face and head motion shows as
flow (which the nose's mean removes). A recipe with ``track: true`` finds the face again at the
first frame of every time chunk instead (``chunk_face``), for recordings where the head moves
far. A chunk of pairs ``a..b-1`` decodes frames ``a..b-1+k``
(its last ``k`` frames are the next chunk's first: chunks overlap by ``k``), ``DECODE_BATCH``
source frames at a time, each batch aligned at once: a worker holds at most ``chunk_pairs + k``
aligned faces and one batch of source frames, whatever the video's length. Every pair is
computed from its own two frames only, so the chunks' rows concatenate to exactly the rows of
the whole video computed at once (tests/test_long_video_stream.py). The frames a chunk aligned
are also what a store keeps as the video's ``faces`` (``faces_to_store``: the smallest k's
chunks, each frame once).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mer_prep.datasets.long_video import LongVideo
from mer_prep.errors import InvalidArgumentError, NoFaceError
from mer_prep.face.align import align_clip, alignment_matrix, transform_points
from mer_prep.face.cascade import detect_clip_face
from mer_prep.face.frames import read_frames, read_video_frames
from mer_prep.face.landmarks import fit_landmarks
from mer_prep.motion.region_motion import FaceRegions, face_regions, region_motion
from mer_prep.motion.video_motion import VideoMotion
from mer_prep.recipes.long_video import LongVideoRecipe

#: source frames decoded (and aligned) at a time
DECODE_BATCH = 16


def video_id(video: LongVideo) -> str:
    """``<dataset>/<subject>/<video>``: the subject is dataset-qualified, so this is ``key``."""
    return video.key


@dataclass(frozen=True)
class VideoFace:
    """What is found once per video, on its first frame: the face ``box`` (left, top, right,
    bottom, source pixels) and the ``detector`` stage that found it; the 68 ``landmarks``
    (source pixels); the alignment ``matrix`` (2, 3), source -> aligned; the ``regions`` in the
    aligned face."""

    box: tuple[int, int, int, int]
    detector: str
    landmarks: np.ndarray
    matrix: np.ndarray
    regions: FaceRegions

    def to_dict(self) -> dict:
        """What a store records of it (plain JSON)."""
        return {
            "box": list(self.box),
            "detector": self.detector,
            "landmarks": np.round(self.landmarks, 3).tolist(),
            "matrix": self.matrix.tolist(),
        }


def decode_frames(video: LongVideo, start: int, stop: int) -> np.ndarray:
    """Frames ``start..stop-1`` (0-based positions in the video) decoded gray: (n, H, W) uint8."""
    if not 0 <= start < stop <= video.n_frames:
        raise InvalidArgumentError(
            f"{video_id(video)}: frames {start}..{stop - 1} outside 0..{video.n_frames - 1}"
        )
    sample = video_id(video)
    if video.video_path is not None:
        return read_video_frames(
            video.video_path, range(start, stop), gray=True, sample=sample, seek_gap=DECODE_BATCH
        )
    return read_frames(video.frame_paths[start:stop], gray=True, sample=sample)


def locate_face(video: LongVideo, recipe: LongVideoRecipe, at: int = 0) -> VideoFace:
    """Detect the face on frame ``at`` (0: the video's first; the next ones when it shows
    none), fit the landmarks there and derive the alignment and the regions (``NoFaceError``
    when none)."""
    first = decode_frames(video, at, at + 1)[0]

    def later(offset: int) -> np.ndarray | None:
        index = at + offset
        return decode_frames(video, index, index + 1)[0] if index < video.n_frames else None

    box = detect_clip_face(
        first,
        later,
        method=recipe.detect.method,
        fallback=recipe.detect.fallback,
        upsample=recipe.detect.upsample,
        sample=video_id(video),
    )
    landmarks = fit_landmarks(first, box)
    matrix = alignment_matrix(
        landmarks,
        size=recipe.size,
        inter_ocular=recipe.align.inter_ocular,
        eye_row=recipe.align.eye_row,
    )
    regions = face_regions(
        transform_points(landmarks.astype(np.float64), matrix),
        recipe.size,
        names=recipe.regions,
        margin=recipe.margin,
        eye_margin=recipe.eye_margin,
    )
    return VideoFace(
        (box.left, box.top, box.right, box.bottom), box.method, landmarks, matrix, regions
    )


def aligned_frames(video: LongVideo, face: VideoFace, size: tuple[int, int], start: int, stop: int):
    """Frames ``start..stop-1`` aligned: (n, h, w) float32 in [0, 1], decoded ``DECODE_BATCH``
    at a time (only one batch of source frames is held)."""
    out = np.empty((stop - start, *size), np.float32)
    for a in range(start, stop, DECODE_BATCH):
        b = min(a + DECODE_BATCH, stop)
        out[a - start : b - start] = align_clip(decode_frames(video, a, b), face.matrix, size)
    return out


def chunk_face(
    video: LongVideo, recipe: LongVideoRecipe, face: VideoFace, pairs: range
) -> VideoFace:
    """The face a chunk of ``pairs`` is aligned with: the video's (``face``, found on its first
    frame), or with ``recipe.track`` the face found again on the chunk's first frame (the
    video's when that frame and the next show none). Each chunk depends on its own frames only,
    so tracked chunks still concatenate to the whole video's rows at the same ``chunk_pairs``."""
    if not recipe.track or pairs.start == 0:
        return face
    try:
        return locate_face(video, recipe, pairs.start)
    except NoFaceError:
        return face


def chunk_ranges(n_pairs: int, chunk_pairs: int) -> list[range]:
    """The pair ranges of a video's time chunks: ``chunk_pairs`` pairs each, the last shorter."""
    if chunk_pairs < 1:
        raise InvalidArgumentError(f"chunk_pairs must be at least 1, got {chunk_pairs}")
    return [range(a, min(a + chunk_pairs, n_pairs)) for a in range(0, n_pairs, chunk_pairs)]


def motion_chunk(
    video: LongVideo, face: VideoFace, recipe: LongVideoRecipe, pairs: range, k: int | None = None
) -> np.ndarray:
    """Rows ``pairs`` of the video's motion at pair distance ``k`` (None: the recipe's
    ``k_for``): (3, len(pairs), R) float32, magnitude, main_direction and strain; decodes
    frames ``pairs.start .. pairs.stop - 1 + k``."""
    return motion_and_frames(video, face, recipe, pairs, k)[0]


def motion_and_frames(
    video: LongVideo, face: VideoFace, recipe: LongVideoRecipe, pairs: range, k: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``motion_chunk``'s rows and the aligned frames they were computed from: frame positions
    ``pairs.start .. pairs.stop - 1 + k``, (len(pairs) + k, h, w) float32 in [0, 1] (what a
    store's ``faces`` keeps, as ``grey_levels``, without decoding the frames again)."""
    k = recipe.k_for(video.fps) if k is None else k
    if pairs.start < 0 or pairs.stop > video.n_frames - k or len(pairs) == 0:
        raise InvalidArgumentError(
            f"{video_id(video)}: pairs {pairs.start}..{pairs.stop - 1} outside the video's "
            f"{video.n_frames - k} pairs (k={k})"
        )
    frames = aligned_frames(video, face, recipe.size, pairs.start, pairs.stop + k)
    return np.stack(region_motion(frames, face.regions, k, recipe.flow)), frames


def grey_levels(frames: np.ndarray) -> np.ndarray:
    """Aligned float frames in [0, 1] as stored faces: ``round(255 * frames)``, same shape,
    uint8 (half a grey level from the floats at most)."""
    return np.rint(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)


def faces_to_store(
    video: LongVideo, recipe: LongVideoRecipe, k: int, pairs: range, frames: np.ndarray
) -> np.ndarray | None:
    """Which of a time chunk's aligned ``frames`` (positions ``pairs.start ..``, as
    ``motion_and_frames`` gives them) its job stores in ``faces``, as ``grey_levels``: the
    chunk's own frames ``pairs.start .. pairs.stop - 1`` at the video's smallest k, and the
    last chunk's final ``k`` frames too, so every frame is stored once and zarr chunk ``i`` of
    ``faces`` (frames ``[i * chunk_pairs, (i + 1) * chunk_pairs)``) by one job only. None for
    the other ks' chunks and when the recipe does not ``store_faces``."""
    if not recipe.store_faces or k != min(recipe.ks_for(video.fps)):
        return None
    last = pairs.stop == video.n_frames - k
    return grey_levels(frames if last else frames[: len(pairs)])


def assemble_motion(
    video: LongVideo, recipe: LongVideoRecipe, rows: np.ndarray, k: int | None = None
) -> VideoMotion:
    """The ``VideoMotion`` of ``video`` from its (3, n_pairs, R) rows at pair distance ``k``
    (None: the recipe's ``k_for``)."""
    return VideoMotion(
        video_id=video_id(video),
        subject=video.subject,
        fps=float(video.fps),
        k=recipe.k_for(video.fps) if k is None else k,
        frame_numbers=np.asarray(video.frame_numbers, np.int64),
        roi_names=tuple(recipe.regions),
        magnitude=np.ascontiguousarray(rows[0], np.float32),
        main_direction=np.ascontiguousarray(rows[1], np.float32),
        strain=np.ascontiguousarray(rows[2], np.float32),
    )


def check_length(video: LongVideo, recipe: LongVideoRecipe, k: int | None = None) -> int:
    """The video's number of pairs at ``k`` (None: the recipe's ``k_for``);
    ``InvalidArgumentError`` when it has ``k`` frames or fewer."""
    k = recipe.k_for(video.fps) if k is None else k
    if video.n_frames <= k:
        raise InvalidArgumentError(
            f"{video_id(video)}: {video.n_frames} frames, but k={k} needs more than {k}"
        )
    return video.n_frames - k


def video_motion(
    video: LongVideo,
    recipe: LongVideoRecipe,
    k: int | None = None,
    *,
    chunk_pairs: int | None = None,
    face: VideoFace | None = None,
) -> VideoMotion:
    """The whole video's motion at pair distance ``k`` (None: the recipe's ``k_for``),
    computed chunk by chunk in this process (``chunk_pairs``: default the recipe's)."""
    k = recipe.k_for(video.fps) if k is None else k
    n_pairs = check_length(video, recipe, k)
    face = face if face is not None else locate_face(video, recipe)
    rows = np.empty((3, n_pairs, len(recipe.regions)), np.float32)
    for pairs in chunk_ranges(n_pairs, chunk_pairs or recipe.chunk_pairs):
        here = chunk_face(video, recipe, face, pairs)
        rows[:, pairs.start : pairs.stop] = motion_chunk(video, here, recipe, pairs, k)
    return assemble_motion(video, recipe, rows, k)

"""One clip through a recipe: decode → detect → landmarks → align → [apex] → [magnify] →
select frames → [flow, strain] → [mask] → [split] → [depth].

Detection and landmarks run once, on the onset frame; the same alignment warp is applied to
every frame so that the micro-motion between frames is preserved rather than re-estimated
(per-frame landmark jitter is larger than the motion itself). Detection is the cascade of
``mer_prep.face.cascade`` (downscaled HOG, HOG at a lower threshold, the CNN, then the frames
after the onset); the landmarks are fitted on the full-resolution onset frame.

``channels: rgb`` recipes decode colour and carry (..., 3) frames through alignment,
magnification, masks and halves; keyframes, apex spotting and flow take the BT.601 luma of
those frames (``render.luma``); detection and landmarks run on the onset frame decoded in gray,
as for gray recipes, so that both get the same box and landmarks.

``depth: true`` recipes read the sample's 16-bit depth frames at the stored positions and
warp them by the same alignment (each copy made before alignment by its own), nearest
neighbour, 0 outside: ``render.read_depth`` / ``render.warp_depth``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from mer_prep.face import (
    MIRROR_68,
    align_clip,
    alignment_matrix,
    apply_mask,
    fit_landmarks,
    landmark_split_row,
    read_frames,
    read_video_frames,
    region_mask,
    split_halves,
    transform_points,
)
from mer_prep.face.cascade import detect_clip_face
from mer_prep.motion.apex import spot_apex
from mer_prep.motion.flow import float16_error_bound
from mer_prep.motion.keyframes import select_keyframes
from mer_prep.pipeline.frame_selection import (
    ClipSpan,
    clip_span,
    select_frames,
    sequence_positions,
)
from mer_prep.pipeline.render import (
    flow_arrays,
    luma,
    magnify_clip,
    read_depth,
    warp_depth,
)
from mer_prep.recipes import Recipe
from mer_prep.recipes.model import SourceCopy
from mer_prep.sample import Sample

__all__ = [
    "ProcessedSample",
    "process_sample",
    "decode_clip_frames",
    "magnify_clip",
    "spotted_apex",
    "stored_positions",
    "source_copy_matrix",
    "sampling_rate",
]


@dataclass
class ProcessedSample:
    """The arrays one sample contributes to the store, and what was learnt on the way.

    arrays: name -> per-sample array as declared by ``Recipe.array_specs``.
    source_frames: dataset frame numbers behind ``arrays["frames"]`` (T,).
    face_box: (left, top, right, bottom) on the onset frame, source pixels.
    detector: the detection stage that found it (``hog``, ``hog-low``, ``cnn``, ``hog@+2``:
    ``mer_prep.face.cascade``); detector_score: its score (``FaceBox.score``);
    detector_confirmation: how a low-confidence box was confirmed (``FaceBox.confirmation``,
    ``""`` when it needed none).
    apex: dataset frame number of the apex used (None when the recipe needed none and the
    annotation gives none); apex_source: "annotated", "spotted" or "none".
    flow_error_px: largest error of storing the flow in ``store_dtype`` (0 without flow).
    timings: stage name -> seconds.
    copies: copies made before alignment (``recipe.source_augment``): (parameters, arrays).
    """

    arrays: dict[str, np.ndarray]
    source_frames: list[int]
    face_box: tuple[int, int, int, int]
    detector: str
    detector_score: float = float("nan")
    detector_confirmation: str = ""
    apex: int | None = None
    apex_source: str = "none"
    flow_error_px: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    copies: list[tuple[dict, dict[str, np.ndarray]]] = field(default_factory=list)


class _Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._tick = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._tick
        self._tick = now


def decode_clip_frames(sample: Sample, positions: np.ndarray, *, gray: bool = True) -> np.ndarray:
    """Decode the frames at sorted, distinct ``positions``: uint8 (U, H, W), or (U, H, W, 3)
    RGB without ``gray``."""
    if sample.video_path:
        indices = [sample.frame_numbers[i] for i in positions]
        return read_video_frames(sample.video_path, indices, gray=gray, sample=sample.sample_id)
    paths = [sample.frame_paths[i] for i in positions]
    return read_frames(paths, gray=gray, sample=sample.sample_id)


def _later_frames(sample: Sample, unique: np.ndarray, decoded: np.ndarray, onset: int):
    """``later(k)``: the gray frame k positions after the onset (decoded when the recipe did
    not read it), None past the clip's last frame; for the detection cascade."""

    def later(k: int) -> np.ndarray | None:
        position = onset + k
        if position >= len(sample.frame_numbers):
            return None
        at = int(np.searchsorted(unique, position))
        if decoded.ndim == 3 and at < len(unique) and unique[at] == position:
            return decoded[at]
        return decode_clip_frames(sample, np.array([position]))[0]

    return later


# Apex spotting was tuned on 128x128 faces; a smaller recipe output spots on its own warp.
SPOTTING_SIZE = (128, 128)


def spotted_apex(
    decoded: np.ndarray,
    positions: np.ndarray,
    span: ClipSpan,
    landmarks: np.ndarray,
    recipe: Recipe,
    aligned: np.ndarray,
) -> int:
    """Position of the apex spotted in onset..offset (``positions``: those of ``decoded``).

    decoded: (U, H, W) uint8 source frames; landmarks: (68, 2) on the onset frame, source
    pixels; aligned: the same frames at the recipe's size, used when it is at least
    ``SPOTTING_SIZE``.
    """
    if span.offset - span.onset < 2:  # nothing lies strictly between onset and offset
        return span.offset
    first, last = (int(i) for i in np.searchsorted(positions, [span.onset, span.offset]))
    own_size = tuple(recipe.align.size)
    big_enough = own_size[0] >= SPOTTING_SIZE[0] and own_size[1] >= SPOTTING_SIZE[1]
    size = own_size if big_enough else SPOTTING_SIZE
    matrix = alignment_matrix(
        landmarks, size=size, inter_ocular=recipe.align.inter_ocular, eye_row=recipe.align.eye_row
    )
    frames = luma(
        aligned[first : last + 1]
        if big_enough
        else align_clip(decoded[first : last + 1], matrix, size)
    )
    points = transform_points(landmarks, matrix)
    return int(positions[first + spot_apex(frames, points, 0, last - first)])


# The keyframe score's temporal blur was tuned at 1.5 frames on 200 fps clips: keep its duration
# (not its frame count) so that a 25 fps expression is not blurred over its whole rise.
KEYFRAME_BLUR_SECONDS = 1.5 / 200.0


def stored_positions(
    recipe: Recipe,
    span: ClipSpan,
    apex: int | None,
    aligned: np.ndarray,
    read: np.ndarray,
    fps: float,
) -> np.ndarray:
    """Positions of the frames the recipe stores, given the aligned frames it read."""
    mode = recipe.frames.mode
    if mode == "onset_apex":
        return np.array([span.onset, apex], dtype=np.int64)
    if mode == "sequence":
        return read
    k, n = recipe.frames.n_frames, len(read)
    if n <= k:  # every frame, nearest-repeated up to k: onset and apex are among them
        return sequence_positions(0, n - 1, k)
    return select_keyframes(
        luma(aligned), k, span.onset, apex, temporal_sigma=KEYFRAME_BLUR_SECONDS * fps
    )


def source_copy_matrix(matrix: np.ndarray, copy: SourceCopy, size: tuple[int, int]) -> np.ndarray:
    """The alignment warp of a copy made before alignment: the face box moved by ``copy.shift``
    source pixels (the output shows the content moved the other way), then mirrored
    left-right in the output when ``copy.flip``. (2, 3) float64, source -> output."""
    moved = matrix.copy()
    moved[:, 2] -= matrix[:, :2] @ np.asarray(copy.shift, dtype=np.float64)
    if copy.flip:
        mirror = np.array([[-1.0, 0.0, size[1] - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        moved = (mirror @ np.vstack([moved, [0.0, 0.0, 1.0]]))[:2]
    return moved


def _mirrored(stack: np.ndarray, flip: bool) -> np.ndarray:
    """``stack`` (N, H, W[, C]) mirrored left-right (``x -> W - 1 - x``) when ``flip``, as a
    fresh contiguous array; ``stack`` itself otherwise."""
    return np.ascontiguousarray(stack[:, :, ::-1]) if flip else stack


def sampling_rate(clip: _Clip) -> float:
    """Frames per second of the decoded frames as a sequence (Hz): the clip's fps when every
    frame of the span was read, lower when a recipe reads every k-th frame (``sequence`` of 16
    frames over a 60-frame clip). Magnification's temporal band lives on this time axis."""
    numbers = np.asarray(clip.sample.frame_numbers)[clip.unique]
    if len(numbers) < 2 or numbers[-1] == numbers[0]:
        return clip.sample.fps
    return clip.sample.fps * (len(numbers) - 1) / float(numbers[-1] - numbers[0])


@dataclass
class _Clip:
    """What every rendering of one clip shares: decoded frames and their positions, the span,
    and the onset frame's landmarks (source pixels)."""

    sample: Sample
    decoded: np.ndarray
    unique: np.ndarray
    read: np.ndarray
    span: ClipSpan
    landmarks: np.ndarray


def _render(
    clip: _Clip,
    recipe: Recipe,
    matrix: np.ndarray,
    aligned: np.ndarray,
    clock: _Stopwatch,
    *,
    positions: np.ndarray | None = None,
    apex: int | None = None,
    mirrored: bool = False,
) -> tuple[dict[str, np.ndarray], np.ndarray, float]:
    """The stored arrays of one alignment of the clip: (arrays, stored positions, flow error).

    aligned: the clip warped by ``matrix``, one frame per unique position. ``positions``
    None: chosen here (keyframes on this rendering); a copy passes the clip's.
    """
    size = tuple(recipe.align.size)
    aligned_landmarks = transform_points(clip.landmarks, matrix).astype(np.float32)
    if mirrored:
        aligned_landmarks = aligned_landmarks[MIRROR_68]
    frames_source = aligned
    if recipe.magnify is not None:
        frames_source = magnify_clip(aligned, recipe.magnify, sampling_rate(clip))
        clock.lap("magnify")
    if positions is None:
        positions = stored_positions(recipe, clip.span, apex, aligned, clip.read, clip.sample.fps)
        clock.lap("keyframes" if recipe.frames.mode == "keyframes" else "select")
    frames = frames_source[np.searchsorted(clip.unique, positions)]

    arrays = {"landmarks": aligned_landmarks}
    flow_error = 0.0
    if recipe.flow is not None:
        reference = int(np.flatnonzero(positions == clip.span.onset)[0])
        flow, strain = flow_arrays(
            frames,
            reference,
            recipe,
            matrix,
            clip.decoded,
            np.searchsorted(clip.unique, positions),
            sampling_rate(clip),
            lap=clock.lap,
        )
        arrays["flow"] = flow.astype(recipe.store_dtype)
        if recipe.store_dtype == "float16":
            flow_error = float16_error_bound(flow)
        if strain is not None:
            arrays["strain"] = strain.astype(recipe.store_dtype)

    if recipe.mask is not None:
        mask = region_mask(
            aligned_landmarks, size, regions=recipe.mask.regions, margin=recipe.mask.margin
        )
        frames = apply_mask(frames, mask, mode=recipe.mask.mode)
    arrays["frames"] = frames.astype(recipe.store_dtype)
    if recipe.split is not None:
        row = landmark_split_row(aligned_landmarks) if recipe.split.mode == "landmarks" else None
        upper, lower = split_halves(frames, split_row=row)
        arrays["upper"] = upper.astype(recipe.store_dtype)
        arrays["lower"] = lower.astype(recipe.store_dtype)
    clock.lap("mask_split")
    return arrays, positions, flow_error


def process_sample(sample: Sample, recipe: Recipe) -> ProcessedSample:
    """Run the recipe's stages on one clip; raises SampleError (naming file and sample).

    With ``recipe.source_augment``, ``copies`` holds the copies made before alignment, each
    ``(parameters, arrays)``, rendered at the clip's own stored positions and apex.
    """
    clock = _Stopwatch()
    span = clip_span(sample)
    read = select_frames(sample, recipe)
    unique = np.unique(read)
    gray = recipe.channels == "gray"
    decoded = decode_clip_frames(sample, unique, gray=gray)
    # Colour recipes decode the onset once more in gray: the face box and landmarks are then
    # those of the gray recipes (the shape predictor tells libjpeg's luma from a conversion).
    onset_frame = (
        decoded[int(np.searchsorted(unique, span.onset))]
        if gray
        else decode_clip_frames(sample, np.array([span.onset]))[0]
    )
    clock.lap("decode")

    box = detect_clip_face(
        onset_frame,
        _later_frames(sample, unique, decoded, span.onset),
        method=recipe.detect.method,
        fallback=recipe.detect.fallback,
        upsample=recipe.detect.upsample,
        sample=sample.sample_id,
    )
    clock.lap("detect")
    landmarks = fit_landmarks(onset_frame, box)
    clock.lap("landmarks")
    clip = _Clip(sample, decoded, unique, read, span, landmarks)

    size = tuple(recipe.align.size)
    matrix = alignment_matrix(
        landmarks, size=size, inter_ocular=recipe.align.inter_ocular, eye_row=recipe.align.eye_row
    )
    aligned = align_clip(decoded, matrix, size)
    clock.lap("align")
    apex, apex_source = span.apex, "annotated" if span.apex is not None else "none"
    if apex is None and recipe.needs_apex:
        apex = spotted_apex(decoded, unique, span, landmarks, recipe, aligned)
        apex_source = "spotted"
        clock.lap("apex")
    arrays, positions, flow_error = _render(clip, recipe, matrix, aligned, clock, apex=apex)
    depth = None
    if recipe.depth:
        depth = read_depth(sample, positions, decoded.shape[1:3])
        arrays["depth"] = warp_depth(depth, matrix, size)
        clock.lap("depth")

    copies = []
    for copy in recipe.source_augment.copies() if recipe.source_augment is not None else ():
        moved = source_copy_matrix(matrix, copy, size)
        # The mirror is a slice of the unmirrored warp, exact by construction: warping again
        # through the mirrored matrix moves OpenCV's fixed-point sample grid, which changes
        # bilinear values in the last bits and nearest-neighbour depth by a whole source pixel
        # where a sample falls half-way (2 of 8,192 pixels on some CPU/OpenCV builds).
        shifted = not (copy.shift[0] == 0.0 and copy.shift[1] == 0.0)
        unmirrored = source_copy_matrix(matrix, copy._replace(flip=False), size)
        copy_aligned = _mirrored(
            align_clip(decoded, unmirrored, size) if shifted else aligned, copy.flip
        )
        clock.lap("align")
        copy_arrays, _, error = _render(
            clip, recipe, moved, copy_aligned, clock, positions=positions, mirrored=copy.flip
        )
        if depth is not None:
            copy_depth = warp_depth(depth, unmirrored, size) if shifted else arrays["depth"]
            copy_arrays["depth"] = _mirrored(copy_depth, copy.flip)
            clock.lap("depth")
        copies.append((copy.to_dict(), copy_arrays))
        flow_error = max(flow_error, error)

    return ProcessedSample(
        arrays=arrays,
        source_frames=[int(sample.frame_numbers[i]) for i in positions],
        face_box=(box.left, box.top, box.right, box.bottom),
        detector=box.method,
        detector_score=box.score,
        detector_confirmation=box.confirmation,
        apex=None if apex is None else int(sample.frame_numbers[apex]),
        apex_source=apex_source,
        flow_error_px=flow_error,
        timings=clock.timings,
        copies=copies,
    )

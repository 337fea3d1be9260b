"""One clip through the face stages of a recipe: decode → detect → landmarks → align → mask → split.

Detection and landmarks run once, on the onset frame; the same alignment warp is applied to
every frame so that the micro-motion between frames is preserved rather than re-estimated
(per-frame landmark jitter is larger than the motion itself).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from mer_prep.face import (
    alignment_matrix,
    apply_mask,
    detect_face,
    fit_landmarks,
    source_window,
    to_unit,
    warp_frames,
    landmark_split_row,
    read_frames,
    read_video_frames,
    region_mask,
    split_halves,
    transform_points,
)
from mer_prep.frame_selection import select_frames
from mer_prep.recipes import Recipe
from mer_prep.sample import Sample


@dataclass
class ProcessedSample:
    """The arrays one sample contributes to the store, and what was learnt on the way.

    arrays: name -> per-sample array as declared by ``Recipe.array_specs``.
    source_frames: dataset frame numbers behind ``arrays["frames"]`` (T,).
    face_box: (left, top, right, bottom) on the onset frame, source pixels.
    timings: stage name -> seconds.
    """

    arrays: dict[str, np.ndarray]
    source_frames: list[int]
    face_box: tuple[int, int, int, int]
    detector: str
    timings: dict[str, float] = field(default_factory=dict)


def decode_clip_frames(sample: Sample, positions: np.ndarray) -> np.ndarray:
    """Decode each distinct frame at ``positions`` once, gray uint8 (U,H,W), sorted by position."""
    if sample.video_path:
        indices = [sample.frame_numbers[i] for i in positions]
        return read_video_frames(sample.video_path, indices, gray=True, sample=sample.sample_id)
    paths = [sample.frame_paths[i] for i in positions]
    return read_frames(paths, gray=True, sample=sample.sample_id)


def process_sample(sample: Sample, recipe: Recipe) -> ProcessedSample:
    """Run the recipe's face stages on one clip; raises SampleError (naming file and sample)."""
    timings: dict[str, float] = {}
    tick = time.perf_counter()

    positions = select_frames(sample, recipe)
    unique, inverse = np.unique(positions, return_inverse=True)
    decoded = decode_clip_frames(sample, unique)
    onset_frame = decoded[int(inverse[0])]
    timings["decode"], tick = time.perf_counter() - tick, time.perf_counter()

    box = detect_face(onset_frame, method=recipe.detect.method, fallback=recipe.detect.fallback,
                      upsample=recipe.detect.upsample, sample=sample.sample_id)
    timings["detect"], tick = time.perf_counter() - tick, time.perf_counter()

    landmarks = fit_landmarks(onset_frame, box)
    timings["landmarks"], tick = time.perf_counter() - tick, time.perf_counter()

    size = tuple(recipe.align.size)
    matrix = alignment_matrix(landmarks, size=size, inter_ocular=recipe.align.inter_ocular,
                              eye_row=recipe.align.eye_row)
    # Only the pixels that reach the output are converted; interpolating in float keeps the
    # sub-grey-level detail of the motion that a uint8 warp would round away.
    # The pad covers warp_frames' anti-alias blur support (3 sigma, sigma = (1/scale - 1) / 2).
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    pad = int(np.ceil(1.5 / min(scale, 1.0))) + 2
    rows, cols, shifted = source_window(matrix, size, decoded.shape[1:3], pad=pad)
    frames = warp_frames(to_unit(decoded[:, rows, cols]), shifted, size)[inverse]
    aligned_landmarks = transform_points(landmarks, matrix).astype(np.float32)
    timings["align"], tick = time.perf_counter() - tick, time.perf_counter()

    if recipe.mask is not None:
        mask = region_mask(aligned_landmarks, size, regions=recipe.mask.regions,
                           margin=recipe.mask.margin)
        frames = apply_mask(frames, mask, mode=recipe.mask.mode)
    arrays = {"frames": frames.astype(recipe.store_dtype), "landmarks": aligned_landmarks}
    if recipe.split is not None:
        row = landmark_split_row(aligned_landmarks) if recipe.split.mode == "landmarks" else None
        upper, lower = split_halves(frames, split_row=row)
        arrays["upper"] = upper.astype(recipe.store_dtype)
        arrays["lower"] = lower.astype(recipe.store_dtype)
    timings["mask_split"] = time.perf_counter() - tick

    return ProcessedSample(
        arrays=arrays,
        source_frames=[int(sample.frame_numbers[i]) for i in positions],
        face_box=(box.left, box.top, box.right, box.bottom),
        detector=box.method,
        timings=timings,
    )

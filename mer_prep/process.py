"""One clip through the face stages of a recipe: decode → detect → landmarks → align → mask → split.

Detection and landmarks run once, on the onset frame; the same alignment warp is applied to
every frame so that the micro-motion between frames is preserved rather than re-estimated
(per-frame landmark jitter is larger than the motion itself).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from mer_prep.face import (
    alignment_matrix,
    apply_mask,
    detect_face,
    fit_landmarks,
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


def warp_to_unit(frames: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp uint8 frames (N,H,W) by a 2x3 affine into float32 (N,h,w) in [0, 1].

    Interpolates in float so that sub-grey-level detail of the motion survives; only the
    source region the output maps onto is converted to float.
    """
    h, w = size
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64) @ inverse.T
    H, W = frames.shape[1:3]
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - 2, 0, W - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - 2, 0, H - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 3, x0 + 1, W))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 3, y0 + 1, H))
    shifted = matrix.copy()
    shifted[:, 2] += matrix[:, :2] @ np.array([x0, y0], dtype=np.float64)
    region = frames[:, y0:y1, x0:x1].astype(np.float32) * np.float32(1 / 255)
    out = np.empty((len(frames), h, w), dtype=np.float32)
    for i, frame in enumerate(region):
        # Outside the image is black (0), as the papers' crops pad.
        out[i] = cv2.warpAffine(frame, shifted, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


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
    frames = warp_to_unit(decoded, matrix, size)[inverse]
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

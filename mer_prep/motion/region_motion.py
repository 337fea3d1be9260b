"""Region motion of aligned frames: the per frame pair arrays of a ``VideoMotion``.

    regions = face_regions(landmarks, (128, 128))  # aligned-face landmarks, (68, 2) (x, y)
    magnitude, main_direction, strain = region_motion(frames, regions, k=6)

For every pair ``i -> i + k`` of the aligned grayscale frames ``(T, H, W)`` (float in [0, 1]):

1. TV-L1 flow from frame ``i`` to frame ``i + k`` (``mer_prep.motion.flow``'s convention: the
   forward motion of the point seen at ``x`` in frame ``i``), at the frames' size;
2. head motion removed: the mean flow of the nose region (its pixels outside the eye mask) is
   subtracted from the whole field: a head translation moves the nose as much as the rest of
   the face, an expression hardly moves it;
3. the eyes masked: each eye's six-point polygon, grown by ``eye_margin``, is left out of every
   region, so a blink is not a facial movement;
4. per region: the mean flow magnitude (pixels of the aligned face per pair), the
   main-directional mean (MDMD: the flow vectors' directions fall in 8 bins of 45 degrees, bin
   ``b`` holding angles in ``[-pi + b pi/4, -pi + (b+1) pi/4)``; the mean magnitude of the
   vectors in the most populated bin, the lowest bin on a tie) and the mean optical strain
   magnitude (``optical_strain`` of the head-free flow; subtracting a constant field does not
   change it).

Regions (``ROI_NAMES``' order) are boxes around landmark groups of the iBUG 68-point layout, in
aligned-face pixels, grown by ``margin`` (a fraction of the inter-ocular distance): the brows
(points 17-21 and 22-26), the eyes (36-41 and 42-47, grown twice as much: the skin around the
eye, the eye itself masked), the nose (27-35, less the mouth and brow boxes: the head-motion
reference must not move with an expression) and the mouth (48-67), cut at the mouth's centre
column into its image-left and image-right halves. Everything here is a pure function of its
inputs: the same frames give the same rows, whichever chunk of a video they were computed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from mer_prep.errors import InvalidArgumentError
from mer_prep.motion.flow import DEFAULT_TVL1, TVL1Params, optical_strain
from mer_prep.motion.video_motion import ROI_NAMES

__all__ = [
    "N_DIRECTION_BINS",
    "FaceRegions",
    "face_regions",
    "main_directional_mean",
    "pair_motion",
    "region_motion",
]

#: the direction bins of the main-directional mean
N_DIRECTION_BINS = 8

# landmark groups of the iBUG 68-point layout (image left = the subject's right); motion/ sits
# beside face/ in the import layers, so the indices are spelt out here
_GROUPS: dict[str, range] = {
    "brow_left": range(17, 22),
    "brow_right": range(22, 27),
    "eye_left": range(36, 42),
    "eye_right": range(42, 48),
    "nose": range(27, 36),
    "mouth": range(48, 68),
}
_EYES = (range(36, 42), range(42, 48))


@dataclass(frozen=True)
class FaceRegions:
    """The regions of one aligned face: ``names``; ``masks`` (R, H, W) bool, the eyes already
    left out; ``eye_mask`` (H, W) bool, what is left out; ``nose``: the head-motion reference
    (H, W) bool (the nose box outside the eye mask)."""

    names: tuple[str, ...]
    masks: NDArray[np.bool_]
    eye_mask: NDArray[np.bool_]
    nose: NDArray[np.bool_]

    @property
    def size(self) -> tuple[int, int]:
        return int(self.masks.shape[1]), int(self.masks.shape[2])


def _box(points: np.ndarray, grow: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Rows and columns ``(y0, y1, x0, x1)`` (ends exclusive) of the points' box grown by
    ``grow`` pixels on every side, clipped to ``size``."""
    h, w = size
    x0 = int(np.clip(np.floor(points[:, 0].min() - grow), 0, w))
    x1 = int(np.clip(np.ceil(points[:, 0].max() + grow) + 1, 0, w))
    y0 = int(np.clip(np.floor(points[:, 1].min() - grow), 0, h))
    y1 = int(np.clip(np.ceil(points[:, 1].max() + grow) + 1, 0, h))
    return y0, y1, x0, x1


def face_regions(
    landmarks: np.ndarray,
    size: tuple[int, int],
    *,
    names: Sequence[str] = ROI_NAMES,
    margin: float = 0.1,
    eye_margin: float = 0.05,
) -> FaceRegions:
    """The regions ``names`` (a subset of ``ROI_NAMES``) of a face whose 68 landmarks
    ``(x, y)`` are given in the aligned frame of ``size`` ``(H, W)``. ``margin`` / ``eye_margin``:
    how far boxes / eye polygons grow, as fractions of the inter-ocular distance."""
    points = np.asarray(landmarks, np.float64)
    if points.shape != (68, 2):
        raise InvalidArgumentError(f"expected (68, 2) landmarks, got shape {points.shape}")
    unknown = [n for n in names if n not in ROI_NAMES]
    if unknown or not names:
        raise InvalidArgumentError(f"unknown region(s) {unknown}; regions: {', '.join(ROI_NAMES)}")
    h, w = size
    left, right = (points[list(eye)].mean(axis=0) for eye in _EYES)
    iod = float(np.hypot(*(right - left)))
    if iod < 1e-6:
        raise InvalidArgumentError("eye centres coincide; landmarks are degenerate")
    grow, eye_grow = max(1.0, margin * iod), max(1.0, eye_margin * iod)
    eye_mask = np.zeros((h, w), np.uint8)
    for eye in _EYES:
        centre = points[list(eye)].mean(axis=0)
        polygon = points[list(eye)]
        # grow the polygon away from its centre by eye_grow pixels
        away = polygon - centre
        lengths = np.maximum(np.hypot(away[:, 0], away[:, 1]), 1e-6)[:, None]
        grown = polygon + away / lengths * eye_grow
        cv2.fillConvexPoly(eye_mask, np.round(grown).astype(np.int32), 1)
    eyes = eye_mask.astype(bool)

    def box_mask(group: str, factor: float = 1.0) -> np.ndarray:
        y0, y1, x0, x1 = _box(points[list(_GROUPS[group])], grow * factor, size)
        mask = np.zeros((h, w), bool)
        mask[y0:y1, x0:x1] = True
        return mask

    # the nose, the head-motion reference, keeps clear of the mouth and brows: what moves with
    # an expression must not count as head motion
    nose = box_mask("nose") & ~eyes & ~box_mask("mouth")
    nose &= ~box_mask("brow_left") & ~box_mask("brow_right")
    masks = []
    for name in names:
        if name == "nose":
            mask = nose
        elif name.startswith("mouth_"):
            mask = box_mask("mouth")
            centre = int(round((points[48, 0] + points[54, 0]) / 2.0))
            centre = int(np.clip(centre, 0, w))
            if name == "mouth_left":
                mask[:, centre:] = False
            else:
                mask[:, :centre] = False
        else:
            mask = box_mask(name, 2.0 if name.startswith("eye_") else 1.0)
        masks.append(mask & ~eyes)
    if not nose.any():
        raise InvalidArgumentError("the nose region is empty: landmarks outside the frame?")
    for name, mask in zip(names, masks, strict=True):
        if not mask.any():
            raise InvalidArgumentError(f"region {name!r} is empty: landmarks outside the frame?")
    return FaceRegions(tuple(names), np.stack(masks), eyes, nose)


def main_directional_mean(flow: np.ndarray, bins: int = N_DIRECTION_BINS) -> float:
    """MDMD of flow vectors ``(N, 2)`` (dx, dy): the mean magnitude of the vectors whose direction
    falls in the most populated of ``bins`` equal direction bins (lowest bin on a tie); 0 for
    no vectors."""
    if len(flow) == 0:
        return 0.0
    dx, dy = flow[:, 0], flow[:, 1]
    which = _direction_bins(dx, dy, bins)
    main = int(np.argmax(np.bincount(which, minlength=bins)))
    return float(np.hypot(dx, dy)[which == main].mean())


def _direction_bins(dx: np.ndarray, dy: np.ndarray, bins: int) -> np.ndarray:
    angle = np.arctan2(dy, dx)  # (-pi, pi]
    which = np.floor((angle + np.pi) * (bins / (2.0 * np.pi))).astype(np.int64)
    return np.minimum(which, bins - 1)  # angle == pi falls in the last bin


def pair_motion(
    flow: np.ndarray, regions: FaceRegions
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """One pair's (magnitude, main_direction, strain), each (R,) float32, from its flow
    ``(H, W, 2)``: head motion removed by the nose's mean flow, eyes left out (module
    docstring)."""
    if flow.shape[:2] != regions.size or flow.shape[2:] != (2,):
        raise InvalidArgumentError(
            f"flow of shape {flow.shape} does not fit regions of size {regions.size}"
        )
    head = flow[regions.nose].mean(axis=0, dtype=np.float64).astype(np.float32)
    free = flow - head
    magnitude = np.hypot(free[..., 0], free[..., 1])
    strain = optical_strain(free)
    n = len(regions.names)
    out = np.empty((3, n), np.float32)
    for r in range(n):
        mask = regions.masks[r]
        vectors = free[mask]
        out[0, r] = magnitude[mask].mean()
        out[1, r] = main_directional_mean(vectors)
        out[2, r] = strain[mask].mean()
    return out[0], out[1], out[2]


def region_motion(
    frames: np.ndarray,
    regions: FaceRegions,
    k: int,
    params: TVL1Params = DEFAULT_TVL1,
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """(magnitude, main_direction, strain), each (T - k, R) float32: row ``i`` is the pair
    ``frames[i] -> frames[i + k]`` of aligned grayscale ``frames`` (T, H, W) (float in [0, 1]
    or uint8). A stack of ``k`` frames or fewer gives empty (0, R) arrays."""
    if frames.ndim != 3:
        raise InvalidArgumentError(f"expected (T, H, W) aligned frames, got shape {frames.shape}")
    if k < 1:
        raise InvalidArgumentError(f"k must be at least 1, got {k}")
    if frames.shape[1:] != regions.size:
        raise InvalidArgumentError(
            f"frames of size {frames.shape[1:]} do not fit regions of size {regions.size}"
        )
    n_pairs = max(frames.shape[0] - k, 0)
    n = len(regions.names)
    out = np.zeros((3, n_pairs, n), np.float32)
    if n_pairs == 0:
        return out[0], out[1], out[2]
    if frames.dtype == np.uint8:
        frames = frames.astype(np.float32) / np.float32(255.0)
    else:
        frames = np.asarray(frames, np.float32)
    solver = params.create()
    for i in range(n_pairs):
        flow = solver.calc(frames[i], frames[i + k], None)
        out[0, i], out[1, i], out[2, i] = pair_motion(flow, regions)
    return out[0], out[1], out[2]

"""Stage 4: eye and mouth masks from the landmark polygons (papers 002/004 black them out).

Region names are in *image* terms: ``left_eye`` is points 36-41, the eye on the image left
(the subject's right eye), matching :func:`~mer_prep.face.align.eye_centers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

from mer_prep.errors import InvalidArgumentError
from mer_prep.face.landmarks import (
    INNER_LIP,
    JAW,
    LEFT_BROW,
    LEFT_EYE,
    NOSE_BRIDGE,
    OUTER_LIP,
    RIGHT_BROW,
    RIGHT_EYE,
)

__all__ = ["REGIONS", "REGION_GROUPS", "region_mask", "apply_mask"]

# Each region is one closed polygon through these dlib indices, in drawing order.
REGIONS: dict[str, tuple[int, ...]] = {
    "left_eye": tuple(LEFT_EYE),
    "right_eye": tuple(RIGHT_EYE),
    "mouth": tuple(OUTER_LIP),
    "inner_mouth": tuple(INNER_LIP),
    "left_brow": tuple(LEFT_BROW),
    "right_brow": tuple(RIGHT_BROW),
    "nose": (NOSE_BRIDGE[0], 31, 32, 33, 34, 35),  # bridge top down to the nostril base
    "face": tuple(JAW) + tuple(reversed([*LEFT_BROW, *RIGHT_BROW])),  # jaw closed over the brows
}

# Names that stand for several separate polygons.
REGION_GROUPS: dict[str, tuple[str, ...]] = {
    "eyes": ("left_eye", "right_eye"),
    "brows": ("left_brow", "right_brow"),
}

# Polygons are rasterised on a grid this many times finer, then a pixel is masked when any of
# its sub-samples is inside: the mask covers every pixel the polygon overlaps, even thin slivers
# of a nearly closed eye that a pixel-centre rule would drop.
_SUPERSAMPLE = 4
# fillPoly takes fixed-point vertices with this many fractional bits.
_SHIFT = 4


def _polygons(regions: Sequence[str]) -> list[tuple[int, ...]]:
    names: list[str] = []
    for name in regions:
        if name in REGION_GROUPS:
            names.extend(REGION_GROUPS[name])
        elif name in REGIONS:
            names.append(name)
        else:
            known = ", ".join(sorted([*REGIONS, *REGION_GROUPS]))
            raise InvalidArgumentError(f"unknown face region {name!r}; known: {known}")
    return [REGIONS[name] for name in names]


def region_mask(
    landmarks: np.ndarray,
    shape: tuple[int, int],
    *,
    regions: Sequence[str] = ("left_eye", "right_eye", "mouth"),
    margin: int = 0,
) -> np.ndarray:
    """``(h, w)`` bool mask, True inside the filled landmark polygons of ``regions``.

    ``landmarks``: ``(68, 2)`` ``(x, y)`` in the coordinates of the target frames. ``shape``:
    ``(h, w)``. Every pixel the polygon overlaps is included; ``margin`` grows the mask
    by that many pixels in every direction (disc-shaped dilation).
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2):
        raise InvalidArgumentError(f"expected (68, 2) landmarks, got {points.shape}")
    if margin < 0:
        raise InvalidArgumentError(f"margin must be >= 0 pixels, got {margin}")
    height, width = shape[:2]
    fine = np.zeros((height * _SUPERSAMPLE, width * _SUPERSAMPLE), np.uint8)
    # Pixel x spans [x - 0.5, x + 0.5]; on the fine grid its sub-sample centres are
    # S*x .. S*x + S-1, so x maps to S*x + (S-1)/2.
    offset = (_SUPERSAMPLE - 1) / 2.0
    scale = _SUPERSAMPLE * (1 << _SHIFT)
    fixed = [
        np.round(points[list(idx)] * scale + offset * (1 << _SHIFT)).astype(np.int32)
        for idx in _polygons(regions)
    ]
    cv2.fillPoly(fine, fixed, 255, lineType=cv2.LINE_8, shift=_SHIFT)
    # Area averaging over exact SxS blocks: any covered sub-sample leaves a block mean >= 255/S².
    canvas = cv2.resize(fine, (width, height), interpolation=cv2.INTER_AREA)
    if margin > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
        canvas = cv2.dilate(canvas, kernel)
    return canvas > 0


def apply_mask(
    frames: np.ndarray, mask: np.ndarray, *, mode: Literal["black_out", "keep_only"] = "black_out"
) -> np.ndarray:
    """Zero the masked pixels (``black_out``) or everything else (``keep_only``).

    ``frames``: ``(N, h, w[, C])`` or a single ``(h, w[, C])``, any dtype; ``mask``: ``(h, w)``
    bool. Returns a new array; the two modes are exact complements (their sum is ``frames``).
    """
    mask = np.asarray(mask, dtype=bool)
    if mode not in ("black_out", "keep_only"):
        raise InvalidArgumentError(f"unknown mask mode {mode!r}; use 'black_out' or 'keep_only'")
    # Locate the (h, w) axes: the mask shape must appear right after the leading frame axis
    # or at the front of a single frame.
    if frames.shape[1:3] == mask.shape:
        expand = mask.reshape((1, *mask.shape) + (1,) * (frames.ndim - 3))
    elif frames.shape[:2] == mask.shape:
        expand = mask.reshape(mask.shape + (1,) * (frames.ndim - 2))
    else:
        raise InvalidArgumentError(f"mask {mask.shape} does not match frames {frames.shape}")
    keep = ~expand if mode == "black_out" else expand
    return np.where(keep, frames, np.zeros((), frames.dtype))

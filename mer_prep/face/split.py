"""Stage 5: upper/lower face split (paper 002: a 128x128 face -> two 128-wide x 64-high halves)."""

from __future__ import annotations

import numpy as np

from mer_prep.errors import InvalidArgumentError
from mer_prep.face.align import resize_frames

__all__ = ["split_halves", "landmark_split_row"]

# Lower nose bridge: roughly halfway between the eye line and the upper lip on a frontal face.
# Splitting there keeps brows, eyes and the cheek raiser (AU6) region in the upper half and the
# nose wrinkler / lip region (AU9, AU10 and below) in the lower half.
SPLIT_LANDMARK = 29


def split_halves(
    frames: np.ndarray, *, split_row: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``(N, H, W[, C])`` aligned faces into upper and lower halves.

    Without ``split_row`` the cut is at ``H // 2``: a 128x128 face gives two ``(N, 64, 128)``
    views (no copy). With ``split_row`` (e.g. from :func:`landmark_split_row`) rows
    ``[0, split_row)`` and ``[split_row, H)`` are each resized back to ``(H // 2, W)`` so both
    halves keep the fixed shape trainers expect.
    """
    if frames.ndim not in (3, 4):
        raise InvalidArgumentError(
            f"expected (N,H,W) or (N,H,W,C) frames, got shape {frames.shape}"
        )
    height, width = frames.shape[1:3]
    half = height // 2
    if split_row is None:
        return frames[:, :half], frames[:, half : 2 * half]
    if not 0 < split_row < height:
        raise InvalidArgumentError(
            f"split_row {split_row} is outside the face rows 1..{height - 1}"
        )
    upper, lower = frames[:, :split_row], frames[:, split_row:]
    return resize_frames(upper, (half, width)), resize_frames(lower, (half, width))


def landmark_split_row(landmarks: np.ndarray) -> int:
    """Row of landmark 29 (lower nose bridge), rounded; rows above it form the upper half.

    ``landmarks``: ``(68, 2)`` ``(x, y)`` in the coordinates of the frames being split (i.e.
    already mapped through the alignment with :func:`transform_points`).
    """
    points = np.asarray(landmarks)
    if points.shape != (68, 2):
        raise InvalidArgumentError(f"expected (68, 2) landmarks, got {points.shape}")
    return int(round(float(points[SPLIT_LANDMARK, 1])))

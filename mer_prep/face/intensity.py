"""Stage 3b: grayscale conversion and intensity normalisation."""

from __future__ import annotations

import cv2
import numpy as np

from mer_prep.errors import InvalidArgumentError

__all__ = ["to_gray", "to_unit"]


def to_gray(frames: np.ndarray) -> np.ndarray:
    """``(N, H, W, 3)`` RGB uint8 -> ``(N, H, W)`` uint8 luma, ITU-R BT.601 weights.

    ``Y = 0.299 R + 0.587 G + 0.114 B``, rounded (OpenCV's fixed-point conversion, the same one
    libjpeg uses, so decoding with ``gray=True`` and converting later agree to within 1).
    A ``(N, H, W)`` stack is returned unchanged.
    """
    if frames.ndim == 3:
        return frames
    if frames.ndim != 4 or frames.shape[3] != 3:
        raise InvalidArgumentError(
            f"expected (N,H,W,3) RGB or (N,H,W) gray, got shape {frames.shape}"
        )
    n, height, width = frames.shape[:3]
    # One call over the stack viewed as a single tall image instead of N calls.
    tall = np.ascontiguousarray(frames).reshape(n * height, width, 3)
    return cv2.cvtColor(tall, cv2.COLOR_RGB2GRAY).reshape(n, height, width)


def to_unit(frames: np.ndarray) -> np.ndarray:
    """uint8 (any shape) -> float32 in [0, 1] (value / 255)."""
    if frames.dtype != np.uint8:
        raise InvalidArgumentError(f"expected uint8 frames, got {frames.dtype}")
    out = frames.astype(np.float32)
    out *= np.float32(1.0 / 255.0)
    return out

"""Stage 3a: alignment (eye-line rotation, fixed inter-ocular distance), crop and resize.

Coordinates are ``(x, y)`` pixels, x right and y down, pixel centres on integers (OpenCV's
convention). Sizes are ``(height, width)``, like numpy shapes. Affine matrices are ``(2, 3)``
float64 and map *source* pixels to *output* pixels: ``[x', y'] = M[:, :2] @ [x, y] + M[:, 2]``.
Rotation, scale, crop and resize happen in a single resampling (:func:`warp_frames`), so the
image is interpolated once.
"""

from __future__ import annotations

import cv2
import numpy as np

from mer_prep.errors import InvalidArgumentError
from mer_prep.face.detect import FaceBox
from mer_prep.face.landmarks import eye_centers

__all__ = [
    "align_clip",
    "alignment_matrix",
    "crop_box",
    "resize_frames",
    "source_window",
    "transform_points",
    "warp_frames",
]


def alignment_matrix(
    landmarks: np.ndarray, *, size: tuple[int, int], inter_ocular: float, eye_row: float = 0.35
) -> np.ndarray:
    """Similarity transform that aligns a face to an output of ``size`` ``(height, width)``.

    In the output the eye line is horizontal, the eye centres are ``inter_ocular * width``
    pixels apart (``inter_ocular`` is a fraction of the width) and their midpoint lies at
    ``(0.5 * width, eye_row * height)``. Returns a ``(2, 3)`` float64 matrix, source -> output.
    """
    height, width = size
    if not 0.0 < inter_ocular <= 1.0:
        raise InvalidArgumentError(
            f"inter_ocular is a fraction of the output width, got {inter_ocular}"
        )
    left, right = eye_centers(landmarks)
    dx, dy = right - left
    distance = float(np.hypot(dx, dy))
    if distance < 1e-6:
        raise InvalidArgumentError("eye centres coincide; landmarks are degenerate")
    scale = inter_ocular * width / distance
    cos, sin = dx / distance, dy / distance
    # Rotating by minus the eye-line angle maps the eye vector onto the +x axis.
    linear = scale * np.array([[cos, sin], [-sin, cos]])
    midpoint = (left + right) / 2.0
    target = np.array([0.5 * width, eye_row * height])
    return np.hstack([linear, (target - linear @ midpoint)[:, None]])


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map ``(..., 2)`` ``(x, y)`` points through a ``(2, 3)`` affine; keeps float32 as float32."""
    points = np.asarray(points)
    dtype = np.float32 if points.dtype == np.float32 else np.float64
    matrix = np.asarray(matrix, dtype=np.float64)
    out = points.astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]
    return out.astype(dtype)


def _check_stack(frames: np.ndarray) -> None:
    if frames.ndim not in (3, 4):
        raise InvalidArgumentError(
            f"expected a frame stack (N,H,W) or (N,H,W,C), got shape {frames.shape}"
        )


def warp_into(
    out: np.ndarray, source: np.ndarray, matrix: np.ndarray, *, interpolation: int, border_mode: int
) -> None:
    """Warp each frame ``source[i]`` by the ``(2, 3)`` affine ``matrix`` into the preallocated
    ``out[i]`` (its height and width give the output size; zero outside the source with a
    constant border)."""
    height, width = out.shape[1:3]
    for i in range(source.shape[0]):
        # Writing into the preallocated slice avoids one allocation and copy per frame.
        cv2.warpAffine(
            source[i],
            matrix,
            (width, height),
            dst=out[i],
            flags=interpolation,
            borderMode=border_mode,
        )


def warp_frames(
    frames: np.ndarray,
    matrix: np.ndarray,
    size: tuple[int, int],
    *,
    interpolation: int = cv2.INTER_LINEAR,
    border_mode: int = cv2.BORDER_CONSTANT,
    antialias: bool = True,
) -> np.ndarray:
    """Warp every frame of ``(N, H, W[, C])`` by the same ``(2, 3)`` affine into ``size``.

    Returns ``(N, height, width[, C])`` of the input dtype. Outside the source, ``border_mode``
    decides (black by default). With ``antialias``, when the warp shrinks the image the source
    region that reaches the output is first Gaussian-blurred with sigma ``(1/scale - 1) / 2``
    (scikit-image's rule), because bilinear sampling below half scale aliases and turns head
    jitter into pixel flicker.
    """
    _check_stack(frames)
    height, width = size
    matrix = np.asarray(matrix, dtype=np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    sigma = (1.0 / scale - 1.0) / 2.0 if antialias and scale < 1.0 else 0.0
    source = frames
    if sigma > 0.25:
        source, matrix = _blurred_source(frames, matrix, size, sigma)
    out = np.empty((frames.shape[0], height, width, *frames.shape[3:]), frames.dtype)
    warp_into(out, source, matrix, interpolation=interpolation, border_mode=border_mode)
    return out


def source_window(
    matrix: np.ndarray, size: tuple[int, int], source_shape: tuple[int, ...], *, pad: int = 2
) -> tuple[slice, slice, np.ndarray]:
    """The source rectangle an output of ``size`` samples from, grown by ``pad`` pixels.

    Returns ``(rows, cols, shifted)``: slices into the source (clipped to ``source_shape``'s
    height and width) and the ``(2, 3)`` matrix that maps the *cut-out* to the same output.
    Lets a caller convert or filter only the pixels that reach the output.
    """
    height, width = size
    inverse = cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))
    corners = np.array(
        [[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], dtype=np.float64
    )
    source_corners = corners @ inverse[:, :2].T + inverse[:, 2]
    src_h, src_w = source_shape[:2]
    x0 = int(np.clip(np.floor(source_corners[:, 0].min()) - pad, 0, src_w))
    x1 = int(np.clip(np.ceil(source_corners[:, 0].max()) + pad + 1, 0, src_w))
    y0 = int(np.clip(np.floor(source_corners[:, 1].min()) - pad, 0, src_h))
    y1 = int(np.clip(np.ceil(source_corners[:, 1].max()) + pad + 1, 0, src_h))
    if x1 <= x0 or y1 <= y0:  # the output lies entirely outside the source
        return slice(0, src_h), slice(0, src_w), np.asarray(matrix, dtype=np.float64)
    shifted = np.asarray(matrix, dtype=np.float64).copy()
    shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], dtype=np.float64)
    return slice(y0, y1), slice(x0, x1), shifted


def align_clip(frames: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Align a decoded clip with one anti-aliased warp: (N, H, W) uint8 -> (N, h, w) float32
    in [0, 1].

    Only the source window that reaches the output is converted to float; interpolating in
    float keeps the sub-grey-level detail of the motion that a uint8 warp would round away.
    """
    if frames.dtype != np.uint8:
        raise InvalidArgumentError(f"expected uint8 frames, got {frames.dtype}")
    # The pad covers warp_frames' anti-alias blur support (3 sigma, sigma = (1/scale - 1) / 2).
    scale = float(np.sqrt(abs(np.linalg.det(np.asarray(matrix, np.float64)[:, :2]))))
    pad = int(np.ceil(1.5 / min(scale, 1.0))) + 2
    rows, cols, shifted = source_window(matrix, size, frames.shape[1:3], pad=pad)
    unit = frames[:, rows, cols].astype(np.float32)
    unit *= np.float32(1.0 / 255.0)
    return warp_frames(unit, shifted, size)


def _blurred_source(
    frames: np.ndarray, matrix: np.ndarray, size: tuple[int, int], sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Blur only the source rectangle the output samples from; shift the matrix to match."""
    rows, cols, shifted = source_window(
        matrix, size, frames.shape[1:3], pad=int(np.ceil(3 * sigma)) + 2
    )
    cut = frames[:, rows, cols]
    region = np.empty_like(cut)
    for i in range(frames.shape[0]):
        cv2.GaussianBlur(cut[i], (0, 0), sigma, dst=region[i], borderType=cv2.BORDER_REPLICATE)
    return region, shifted


def crop_box(frames: np.ndarray, box: FaceBox, *, margin: float = 0.0) -> np.ndarray:
    """Cut ``box`` (grown by ``margin`` x its width/height on each side) out of every frame.

    Returns ``(N, h, w[, C])`` with ``h, w`` the grown box size; parts of the box outside the
    image are zero-padded so every crop of a clip has the same shape.
    """
    _check_stack(frames)
    grow_x, grow_y = round(margin * box.width), round(margin * box.height)
    left, right = box.left - grow_x, box.right + grow_x
    top, bottom = box.top - grow_y, box.bottom + grow_y
    if right <= left or bottom <= top:
        raise InvalidArgumentError(f"empty crop box {box} with margin {margin}")
    src_h, src_w = frames.shape[1:3]
    out = np.zeros((frames.shape[0], bottom - top, right - left, *frames.shape[3:]), frames.dtype)
    x0, x1 = max(left, 0), min(right, src_w)
    y0, y1 = max(top, 0), min(bottom, src_h)
    if x1 > x0 and y1 > y0:
        out[:, y0 - top : y1 - top, x0 - left : x1 - left] = frames[:, y0:y1, x0:x1]
    return out


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize every frame of ``(N, H, W[, C])`` to ``size`` ``(height, width)``, same dtype.

    Area averaging when shrinking (no aliasing), bilinear when enlarging.
    """
    _check_stack(frames)
    height, width = size
    shrinking = height < frames.shape[1] or width < frames.shape[2]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    out = np.empty((frames.shape[0], height, width, *frames.shape[3:]), frames.dtype)
    for i in range(frames.shape[0]):
        cv2.resize(frames[i], (width, height), dst=out[i], interpolation=interpolation)
    return out

"""What a rendering of a clip needs beyond the face stages: luma of colour frames,
magnification of gray or colour clips, the flow stage (at the output size or at a
recipe's working size), and the depth frames of recipes that store them.

Colour frames are ``(..., 3)`` RGB; their luma is ITU-R BT.601 (``Y = 0.299 R + 0.587 G +
0.114 B``), the weights of ``mer_prep.face.to_gray`` and of libjpeg's gray decoding.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from mer_prep.errors import SampleError
from mer_prep.face import align_clip, read_depth_frames, resize_frames, warp_frames
from mer_prep.motion.flow import flows_from_reference, optical_strain
from mer_prep.motion.magnify import magnify
from mer_prep.recipes import Recipe
from mer_prep.recipes.model import MagnifyConfig
from mer_prep.sample import Sample

__all__ = ["luma", "magnify_clip", "working_matrix", "flow_arrays", "read_depth", "warp_depth"]

BT601 = np.array([0.299, 0.587, 0.114], np.float32)


def luma(frames: np.ndarray) -> np.ndarray:
    """A stack of colour frames ``(T, h, w, 3)`` -> ``(T, h, w)`` float32 luma; a gray stack
    ``(T, h, w)`` is returned as it is."""
    if frames.ndim != 4:
        return frames
    return np.tensordot(frames.astype(np.float32, copy=False), BT601, axes=([-1], [0]))


def magnify_clip(frames: np.ndarray, config: MagnifyConfig, fps: float) -> np.ndarray:
    """The recipe's magnification on an aligned clip, (T, h, w) or (T, h, w, 3) float32, each
    colour channel on its own (the filter is linear, so the luma of the result is the
    magnified luma, up to the clipping to the input's range); band capped at Nyquist."""
    f_high = min(config.f_high, 0.5 * fps)
    if config.f_low >= f_high:
        return frames  # the whole band lies above this clip's Nyquist frequency: nothing to amplify
    if frames.ndim == 4:
        return np.stack(
            [magnify_clip(frames[..., c], config, fps) for c in range(frames.shape[-1])], axis=-1
        )
    # MagnifyConfig's fields are magnify's parameters
    return magnify(frames, fps=fps, **{**config.model_dump(), "f_high": f_high})


def working_matrix(
    matrix: np.ndarray, size: tuple[int, int], working: tuple[int, int]
) -> np.ndarray:
    """The alignment ``matrix`` (source -> output of ``size``) made to output ``working``
    instead, on the same face geometry: output pixel ``x`` of ``size`` covers what pixel
    ``(x + 0.5) * working / size - 0.5`` covers, as an area resize from ``working`` to
    ``size`` sees it. (2, 3) float64."""
    a, b = working[1] / size[1], working[0] / size[0]
    scale = np.array([[a, 0.0, 0.5 * a - 0.5], [0.0, b, 0.5 * b - 0.5], [0.0, 0.0, 1.0]])
    return (scale @ np.vstack([np.asarray(matrix, np.float64), [0.0, 0.0, 1.0]]))[:2]


def flow_arrays(
    frames: np.ndarray,
    reference: int,
    recipe: Recipe,
    matrix: np.ndarray,
    decoded: np.ndarray,
    at: np.ndarray,
    fps: float,
    lap: Callable[[str], None] = lambda _stage: None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(flow (T, h, w, 2), strain (T, h, w) or None): TV-L1 from ``frames[reference]`` to
    every stored frame, at the recipe's output size.

    frames: the stored frames (T, h, w[, 3]) float32, magnified where the recipe magnifies.
    With ``recipe.flow.working_size``, the clip ``decoded`` (uint8, one frame per unique
    position; ``at``: the stored frames' indices into it) is aligned again by ``matrix``
    rescaled to the working size (and magnified again over the whole clip at ``fps`` where the
    recipe magnifies); flow and strain are computed there and area-resized to the output size,
    the flow vectors scaled by the size ratio. ``lap("flow")`` / ``lap("strain")`` after each.
    """
    config = recipe.flow
    size = tuple(recipe.align.size)
    if config.working_size is None:
        flow = flows_from_reference(luma(frames), reference, config)
        lap("flow")
        strain = None
        if config.strain:
            strain = optical_strain(flow)
            lap("strain")
        return flow, strain
    working = tuple(config.working_size)
    moved = working_matrix(matrix, size, working)
    if recipe.magnify is not None:
        work = magnify_clip(align_clip(decoded, moved, working), recipe.magnify, fps)[at]
    else:
        work = align_clip(decoded[at], moved, working)
    fine = flows_from_reference(luma(work), reference, config)
    flow = resize_frames(fine, size)
    flow *= np.array([size[1] / working[1], size[0] / working[0]], np.float32)
    lap("flow")
    strain = None
    if config.strain:
        strain = resize_frames(optical_strain(fine), size)
        lap("strain")
    return flow, strain


def read_depth(sample: Sample, positions: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """The sample's 16-bit depth frames at ``positions`` (indices into ``frame_paths``, in
    that order, repeats allowed): (T, H, W) uint16, each file decoded once. ``frame_size``:
    the colour frames' (height, width), which every depth frame must have for the alignment
    to apply. Raises ``SampleError`` when the sample has no depth frames, ``FrameReadError``
    naming the file and sample for a missing or unreadable one."""
    if not sample.depth_paths:
        why = dict(sample.extra).get("depth", "")
        raise SampleError(
            "the recipe stores depth but the sample has no depth frames"
            + (f" ({why})" if why else ""),
            file=sample.video_path or "",
            sample=sample.sample_id,
        )
    if len(sample.depth_paths) != len(sample.frame_paths):
        raise SampleError(
            f"{len(sample.depth_paths)} depth frames for {len(sample.frame_paths)} frames",
            sample=sample.sample_id,
        )
    unique, at = np.unique(np.asarray(positions), return_inverse=True)
    depth = read_depth_frames(
        [sample.depth_paths[i] for i in unique], sample=sample.sample_id, size=tuple(frame_size)
    )
    return depth[at.reshape(-1)]


def warp_depth(depth: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Depth frames (T, H, W) uint16 warped by the alignment ``matrix`` into ``size``:
    nearest-neighbour, no anti-alias blur (a depth value is never blended with its neighbours,
    so every stored value is one of the source's), 0 outside the source."""
    return warp_frames(
        np.ascontiguousarray(depth, np.uint16),
        matrix,
        size,
        interpolation=cv2.INTER_NEAREST,
        antialias=False,
    )

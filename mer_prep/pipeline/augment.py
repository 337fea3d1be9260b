"""Stage 9: deterministic, recorded data augmentation of one processed sample's arrays.

What the papers do, and how it maps onto :class:`AugmentConfig`:

- 002 / 004: rotation up to 15 degrees (``rotation_deg=15``), a 10 % crop (``crop=0.1``),
  contrast up to 30 % (``contrast=0.3``) and brightness (``brightness``).
- 003: face-box shifts of up to +-15 px (``shift_px=15``) and flips (``flip=True``). The paper
  says "vertical flip" but shows and means mirroring the face left-right (a face upside down is
  not a plausible input); here a flip is always a horizontal mirror, ``x -> W - 1 - x``.
- 001: brightness and contrast.

Every augmented copy is fully described by an :class:`AugmentParams` drawn by
:func:`draw_params` from ``(config.seed, sample_id, index)`` alone, so a copy can be rebuilt
from its parent and the recorded ``params.to_dict()``.

Conventions (as in :mod:`mer_prep.face.align`): coordinates are ``(x, y)`` pixels, x right and
y down, pixel centres on integers; sizes are ``(height, width)``; a ``(2, 3)`` float64 affine
maps *input* pixels to *output* pixels, ``[x', y'] = M[:, :2] @ [x, y] + M[:, 2]``. The output
has the input's size.

The geometric transform, applied in this order (:func:`augmentation_matrix`):

1. crop-and-resize: a window of ``(1 - crop)`` times each side, placed by ``crop_offset``
   (0 = flush with the left/top edge, 1 = flush with the right/bottom edge), is scaled back up
   to the full frame; i.e. a zoom by ``1 / (1 - crop)`` about the window's centre;
2. rotation by ``angle_deg`` about the frame centre ``((W - 1) / 2, (H - 1) / 2)``; positive
   angles turn the content counter-clockwise as displayed (OpenCV's
   ``getRotationMatrix2D`` convention);
3. the horizontal mirror when ``flip``;
4. the shift: the content moves by ``shift_px = (dx, dy)`` output pixels. Moving the face box
   by ``(bx, by)`` (paper 003) moves the content by ``(-bx, -by)``; the draw is symmetric, so the
   two readings give the same distribution.

Decisions:

- Outside the input after the warp every array is filled with 0: black frames (the same fill
  the alignment warp and the black-out masks use), zero flow (no motion rather than a reflected,
  wrongly-signed one) and zero strain. Reflected borders would invent facial structure and
  motion.
- Photometric changes (contrast around each frame's own mean, then brightness) act on frames
  only, on the whole frame *before* the warp, as the papers' image-level jitter does, and the
  result is clipped to [0, 1]. Masked (blacked-out) regions are therefore shifted by the
  brightness change like every other pixel; the warp's zero fill stays exactly 0. Flow and
  strain are left alone: a brightness/contrast change common to all frames does not change
  the motion between them.
- ``upper``/``lower`` halves are not transformed on their own: they are recomputed from the
  augmented frames with :func:`mer_prep.face.split_halves` (pass ``split``).
- Flow vectors are resampled at the moved positions and mapped by the linear part of the
  affine (rotated, scaled by the crop zoom, ``dx`` negated by the mirror). Strain, a scalar
  magnitude invariant to rotation, mirroring and uniform scaling, is only resampled.
- Landmarks go through the same affine; after a mirror they are re-indexed with
  :data:`mer_prep.face.landmarks.MIRROR_68` so that dlib's image-based order stays valid
  (points 36-41 remain the eye on the image left).
- dtypes are preserved (float16 arrays are warped in float32 and cast back).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from mer_prep.errors import InvalidArgumentError
from mer_prep.face.align import transform_points, warp_into
from mer_prep.face.landmarks import MIRROR_68
from mer_prep.face.split import landmark_split_row, split_halves
from mer_prep.recipes.model import AugmentConfig

__all__ = [
    "ARRAY_NAMES",
    "AugmentConfig",
    "AugmentParams",
    "augment_arrays",
    "augment_copies",
    "augmentation_matrix",
    "draw_all",
    "draw_params",
    "photometric",
    "sample_entropy",
]

# Per-sample arrays :func:`augment_arrays` knows how to transform.
ARRAY_NAMES = ("frames", "landmarks", "flow", "strain", "upper", "lower")


@dataclass(frozen=True)
class AugmentParams:
    """One concrete augmentation; the default is the identity.

    angle_deg: rotation about the frame centre, degrees, counter-clockwise as displayed.
    crop: fraction of each side removed before resizing back, in [0, 1).
    crop_offset: ``(ox, oy)`` in [0, 1], where the crop window sits within the removable
    margin (0.5, 0.5 = centred).
    shift_px: ``(dx, dy)`` content shift, output pixels.
    flip: horizontal mirror.
    brightness: additive intensity change, [0, 1] units.
    contrast: multiplicative factor on the deviation from each frame's mean (> 0).
    """

    angle_deg: float = 0.0
    crop: float = 0.0
    crop_offset: tuple[float, float] = (0.5, 0.5)
    shift_px: tuple[float, float] = (0.0, 0.0)
    flip: bool = False
    brightness: float = 0.0
    contrast: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.crop < 1.0:
            raise InvalidArgumentError(f"crop must lie in [0, 1), got {self.crop}")
        if not all(0.0 <= o <= 1.0 for o in self.crop_offset) or len(self.crop_offset) != 2:
            raise InvalidArgumentError(
                f"crop_offset must be two values in [0, 1], got {self.crop_offset}"
            )
        if len(self.shift_px) != 2:
            raise InvalidArgumentError(f"shift_px must be (dx, dy), got {self.shift_px}")
        if not self.contrast > 0.0:
            raise InvalidArgumentError(f"contrast factor must be positive, got {self.contrast}")
        values = (
            self.angle_deg,
            self.crop,
            *self.crop_offset,
            *self.shift_px,
            self.brightness,
            self.contrast,
        )
        if not all(math.isfinite(v) for v in values):
            raise InvalidArgumentError(f"augmentation parameters must be finite: {self}")

    @property
    def is_geometric_identity(self) -> bool:
        """True when the warp changes nothing (no rotation, crop, shift or flip)."""
        return (
            self.angle_deg == 0.0
            and self.crop == 0.0
            and not self.flip
            and self.shift_px == (0.0, 0.0)
        )

    @property
    def is_photometric_identity(self) -> bool:
        """True when brightness and contrast are unchanged."""
        return self.brightness == 0.0 and self.contrast == 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record (floats, lists, a bool); :meth:`from_dict` restores it exactly."""
        return {
            "angle_deg": float(self.angle_deg),
            "crop": float(self.crop),
            "crop_offset": [float(v) for v in self.crop_offset],
            "shift_px": [float(v) for v in self.shift_px],
            "flip": bool(self.flip),
            "brightness": float(self.brightness),
            "contrast": float(self.contrast),
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> AugmentParams:
        """Inverse of :meth:`to_dict`; rejects missing or unknown keys."""
        expected = set(cls.__dataclass_fields__)
        if set(record) != expected:
            raise InvalidArgumentError(
                f"augmentation record keys {sorted(record)} != {sorted(expected)}"
            )
        ox, oy = record["crop_offset"]
        dx, dy = record["shift_px"]
        return cls(
            angle_deg=float(record["angle_deg"]),
            crop=float(record["crop"]),
            crop_offset=(float(ox), float(oy)),
            shift_px=(float(dx), float(dy)),
            flip=bool(record["flip"]),
            brightness=float(record["brightness"]),
            contrast=float(record["contrast"]),
        )


def sample_entropy(sample_id: str) -> int:
    """A stable 128-bit integer for ``sample_id`` (SHA-256 of its UTF-8 bytes; not ``hash()``,
    which is salted per process)."""
    return int.from_bytes(hashlib.sha256(sample_id.encode("utf-8")).digest()[:16], "little")


# Uniform draws per copy, always all of them and in this order, so that changing one bound
# (or switching a transform off) leaves the other parameters of a copy unchanged.
_N_DRAWS = 9


def _symmetric(bound: float, u: float) -> float:
    """Uniform in [-bound, bound] from u in [0, 1); exactly 0.0 (never -0.0) when bound is 0."""
    return bound * (2.0 * u - 1.0) if bound > 0.0 else 0.0


def draw_params(config: AugmentConfig, sample_id: str, index: int) -> AugmentParams:
    """The augmentation of copy ``index`` of ``sample_id``.

    Deterministic in ``(config.seed, sample_id, index)`` and the bounds only: a
    ``numpy.random.SeedSequence`` over ``[seed, sample_entropy(sample_id), index]`` seeds a
    fresh PCG64 generator per copy, so draws do not depend on other samples or call order.
    """
    if index < 0:
        raise InvalidArgumentError(f"copy index must be >= 0, got {index}")
    sequence = np.random.SeedSequence([config.seed, sample_entropy(sample_id), index])
    u = [float(v) for v in np.random.default_rng(sequence).random(_N_DRAWS)]
    crop = config.crop * u[1] if config.crop > 0.0 else 0.0
    return AugmentParams(
        angle_deg=_symmetric(config.rotation_deg, u[0]),
        crop=crop,
        crop_offset=(u[2], u[3]) if crop > 0.0 else (0.5, 0.5),
        shift_px=(_symmetric(config.shift_px, u[4]), _symmetric(config.shift_px, u[5])),
        flip=bool(config.flip and u[6] < 0.5),
        brightness=_symmetric(config.brightness, u[7]),
        contrast=1.0 + _symmetric(config.contrast, u[8]),
    )


def draw_all(config: AugmentConfig, sample_id: str) -> list[AugmentParams]:
    """``[draw_params(config, sample_id, i) for i in range(config.copies)]``."""
    return [draw_params(config, sample_id, i) for i in range(config.copies)]


def augmentation_matrix(params: AugmentParams, size: tuple[int, int]) -> np.ndarray:
    """The ``(2, 3)`` float64 affine, input -> output pixels, of ``params`` on a frame of
    ``size`` ``(height, width)``: crop-zoom, then rotation about the centre, then mirror,
    then shift (see the module docstring)."""
    height, width = size
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])

    def about(linear: np.ndarray, fixed_in: np.ndarray, fixed_out: np.ndarray) -> np.ndarray:
        out = np.eye(3)
        out[:2, :2] = linear
        out[:2, 2] = fixed_out - linear @ fixed_in
        return out

    scale = 1.0 / (1.0 - params.crop)
    offset = np.asarray(params.crop_offset, dtype=np.float64) - 0.5
    crop_centre = centre + offset * params.crop * np.array([width, height], dtype=np.float64)
    zoom = about(scale * np.eye(2), crop_centre, centre)

    theta = math.radians(params.angle_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    rotate = about(np.array([[cos, sin], [-sin, cos]]), centre, centre)

    mirror = about(np.diag([-1.0, 1.0]), centre, centre) if params.flip else np.eye(3)

    shift = np.eye(3)
    shift[:2, 2] = params.shift_px
    return (shift @ mirror @ rotate @ zoom)[:2]


def photometric(frames: np.ndarray, params: AugmentParams) -> np.ndarray:
    """Contrast about each frame's mean, then brightness, clipped to [0, 1].

    ``frames``: ``(T, H, W[, C])`` float in [0, 1]; returns the same shape and dtype:
    ``clip((f - mean_t) * contrast + mean_t + brightness, 0, 1)`` with ``mean_t`` the mean of
    frame ``t`` over all its pixels.
    """
    if params.is_photometric_identity:
        return frames.copy()
    work = frames.astype(np.float32)
    axes = tuple(range(1, work.ndim))
    mean = work.mean(axis=axes, keepdims=True, dtype=np.float64).astype(np.float32)
    work -= mean
    work *= np.float32(params.contrast)
    work += mean + np.float32(params.brightness)
    np.clip(work, 0.0, 1.0, out=work)
    return work.astype(frames.dtype, copy=False)


def _warp(stack: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear warp of every ``(H, W[, C<=4])`` slice of ``stack`` (leading axis) by
    ``matrix``, zero outside; the same dtype back (float16 is warped in float32)."""
    height, width = size
    if stack.shape[1:3] == (height, width) and np.array_equal(
        matrix, [[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]]
    ):
        # a pure mirror is a slice, exact by construction: no interpolation code, whatever its
        # build, can then change a value
        return np.ascontiguousarray(stack[:, :, ::-1])
    work = np.ascontiguousarray(stack, dtype=np.float32 if stack.dtype == np.float16 else None)
    out = np.empty_like(work)  # size is the stack's own (checked by the caller)
    warp_into(out, work, matrix, interpolation=cv2.INTER_LINEAR, border_mode=cv2.BORDER_CONSTANT)
    return out.astype(stack.dtype, copy=False)


def _infer_size(arrays: dict[str, np.ndarray]) -> tuple[int, int] | None:
    sizes = {
        name: tuple(int(n) for n in arrays[name].shape[1:3])
        for name in ("frames", "flow", "strain")
        if name in arrays
    }
    if len(set(sizes.values())) > 1:
        raise InvalidArgumentError(f"arrays disagree on the frame size: {sizes}")
    return next(iter(sizes.values()), None)


def augment_arrays(
    arrays: dict[str, np.ndarray],
    params: AugmentParams,
    size: tuple[int, int] | None = None,
    *,
    split: Literal["middle", "landmarks"] | None = None,
) -> dict[str, np.ndarray]:
    """Apply one augmentation to a processed sample's arrays; returns new arrays.

    arrays: any of ``frames`` (T, H, W[, C]) float in [0, 1]; ``landmarks`` (68, 2) float
    ``(x, y)`` pixels; ``flow`` (T, H, W, 2) float ``(dx, dy)`` pixels; ``strain`` (T, H, W);
    ``upper``/``lower`` (T, H // 2, W) halves of ``frames``. Unknown names are an error
    (silently passing them through would store them unaugmented).
    size: ``(height, width)``; taken from the image arrays when omitted (needed only for
    landmarks alone).
    split: how ``upper``/``lower`` were cut (``SplitConfig.mode``), required when they are
    present: they are recomputed from the augmented frames (and, for ``"landmarks"``, the
    augmented landmarks) rather than warped separately.

    Every frame, flow and strain slice gets the same warp (:func:`augmentation_matrix`), zero
    outside the input; frames get :func:`photometric` first. dtypes and shapes are preserved.
    """
    unknown = set(arrays) - set(ARRAY_NAMES)
    if unknown:
        raise InvalidArgumentError(f"cannot augment arrays {sorted(unknown)}; known: {ARRAY_NAMES}")
    has_halves = "upper" in arrays or "lower" in arrays
    if has_halves and ("frames" not in arrays or split is None):
        raise InvalidArgumentError(
            "upper/lower are recomputed from the augmented frames: pass frames "
            "and split='middle' or 'landmarks'"
        )
    if split == "landmarks" and "landmarks" not in arrays:
        raise InvalidArgumentError("split='landmarks' needs the landmarks array")
    inferred = _infer_size(arrays)
    if size is None:
        if inferred is None:
            raise InvalidArgumentError("size is required when no frames, flow or strain are given")
        size = inferred
    elif inferred is not None and tuple(size) != inferred:
        raise InvalidArgumentError(f"size {tuple(size)} does not match the arrays' {inferred}")
    size = (int(size[0]), int(size[1]))

    matrix = augmentation_matrix(params, size)
    geometric = not params.is_geometric_identity
    out: dict[str, np.ndarray] = {}

    if "frames" in arrays:
        frames = np.asarray(arrays["frames"])
        if frames.ndim not in (3, 4):
            raise InvalidArgumentError(f"expected frames (T, H, W[, C]), got {frames.shape}")
        frames = photometric(frames, params)
        out["frames"] = _warp(frames, matrix, size) if geometric else frames
    if "landmarks" in arrays:
        points = np.asarray(arrays["landmarks"])
        moved = transform_points(points, matrix).astype(points.dtype, copy=False)
        if params.flip:
            if points.shape != (68, 2):
                raise InvalidArgumentError(
                    f"mirroring needs dlib's (68, 2) landmarks, got {points.shape}"
                )
            moved = moved[MIRROR_68]
        out["landmarks"] = np.ascontiguousarray(moved)
    if "flow" in arrays:
        flow = np.asarray(arrays["flow"])
        if flow.ndim != 4 or flow.shape[-1] != 2:
            raise InvalidArgumentError(f"expected flow (T, H, W, 2), got {flow.shape}")
        if geometric:
            moved = _warp(flow, matrix, size).astype(np.float32, copy=False)
            # A displacement field maps like a tangent vector: v' = A v (A: linear part).
            linear = matrix[:, :2].astype(np.float32)
            flow = (moved @ linear.T).astype(flow.dtype, copy=False)
        out["flow"] = flow.copy() if not geometric else flow
    if "strain" in arrays:
        strain = np.asarray(arrays["strain"])
        if strain.ndim != 3:
            raise InvalidArgumentError(f"expected strain (T, H, W), got {strain.shape}")
        out["strain"] = _warp(strain, matrix, size) if geometric else strain.copy()
    if has_halves:
        dtype = np.asarray(arrays["upper" if "upper" in arrays else "lower"]).dtype
        row = landmark_split_row(out["landmarks"]) if split == "landmarks" else None
        upper, lower = split_halves(out["frames"], split_row=row)
        if "upper" in arrays:
            out["upper"] = np.ascontiguousarray(upper, dtype=dtype)
        if "lower" in arrays:
            out["lower"] = np.ascontiguousarray(lower, dtype=dtype)
    return {name: out[name] for name in arrays}


def augment_copies(
    arrays: dict[str, np.ndarray],
    config: AugmentConfig,
    sample_id: str,
    *,
    split: Literal["middle", "landmarks"] | None = None,
) -> list[tuple[AugmentParams, dict[str, np.ndarray]]]:
    """All ``config.copies`` augmented copies of one sample: ``[(params, arrays), ...]`` in
    copy-index order; record ``params.to_dict()`` with each copy and its parent's id."""
    return [
        (params, augment_arrays(arrays, params, split=split))
        for params in draw_all(config, sample_id)
    ]

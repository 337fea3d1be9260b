"""Rendering: the neutral canvas, warped frame by frame by the known motion, plus sensor noise.

Frame ``t`` is ``frame_t(q) = round(S(p) + noise)``, where ``p`` solves ``p + a(t) D(p) + j(t) = q``
(see ``motion`` for the convention), i.e. an exact backward warp of the forward motion, not the
first-order ``q - u(q)``. ``S`` is the continuous neutral scene: the cubic B-spline
interpolant of the neutral canvas, tabulated on a 4x finer grid and read bilinearly there.
Both choices matter at micro-expression scale. OpenCV's bicubic kernel (a = -0.75) biases
sub-pixel positions by ~0.03 px (pixel locking), the B-spline by < 0.002 px on face-like
content; and OpenCV's remap quantises sample positions to 1/32 of a source pixel, which on the
4x grid is 1/128 canvas px (<= 0.004 px error) instead of 1/32 px.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import spline_filter1d
from scipy.special import ndtri

from mer_prep.synth.motion import FieldSampler, invert_motion

__all__ = ["Scene", "make_scene", "render_frames", "gaussian_noise"]

_UP = 4


@dataclass(frozen=True)
class Scene:
    """A neutral canvas ready for sub-pixel warping.

    size: (H, W) of the frames; dense: (4H, 4W, C) float32, C = 3 (RGB) or 1 (gray).
    """

    size: tuple[int, int]
    dense: np.ndarray

    @property
    def gray(self) -> bool:
        return self.dense.shape[2] == 1


def make_scene(neutral: np.ndarray, *, gray: bool = False) -> Scene:
    """neutral: (H, W, 3) float32 RGB in [0, 255]. gray: render single-channel frames (ITU-R
    BT.601 luma, as ``cv2.COLOR_RGB2GRAY``)."""
    img = np.asarray(neutral, np.float32)
    if gray:
        img = (img @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    dense = _upsample_axis(_upsample_axis(img, 0), 1)
    return Scene(img.shape[:2], np.ascontiguousarray(dense, np.float32))


def _bspline3(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return np.where(ax < 1, 2 / 3 - ax**2 + ax**3 / 2, np.where(ax < 2, (2 - ax) ** 3 / 6, 0.0))


def _upsample_axis(img: np.ndarray, axis: int) -> np.ndarray:
    """Cubic B-spline interpolation of ``img`` at 4x density along ``axis``.

    Fine sample ``i`` sits at coarse position ``(i - 1.5) / 4`` (pixel-area alignment, as
    ``cv2.resize``): offsets -3/8, -1/8, 1/8, 3/8 around each coarse sample. Mirror boundary.
    """
    coef = np.moveaxis(spline_filter1d(img, 3, axis=axis, mode="mirror", output=np.float32),
                       axis, 0)
    n = coef.shape[0]
    padded = np.pad(coef, [(2, 2)] + [(0, 0)] * (coef.ndim - 1), mode="reflect")
    out = np.empty((n * _UP,) + coef.shape[1:], np.float32)
    for k in range(_UP):
        delta = (k - (_UP - 1) / 2) / _UP
        view = out[k::_UP]
        view[...] = 0.0
        for d in range(-2, 3):
            weight = float(_bspline3(np.array(delta - d)))
            if weight:
                view += np.float32(weight) * padded[2 + d:2 + d + n]
    return np.moveaxis(out, 0, axis)


@functools.lru_cache(maxsize=1)
def _normal_table() -> np.ndarray:
    # 2**16 equiprobable N(0, 1) quantiles, renormalised to unit variance: a table lookup is
    # ~4x faster than numpy's normal sampler and the noise is rounded to grey levels anyway.
    table = ndtri((np.arange(2**16) + 0.5) / 2**16)
    return (table / table.std()).astype(np.float32)


def gaussian_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean Gaussian noise, float32, std ``sigma`` (grey levels), tails cut at ~4.2 sigma."""
    idx = np.frombuffer(rng.bytes(2 * int(np.prod(shape))), np.uint16).reshape(shape)
    return _normal_table()[idx] * np.float32(sigma)


def render_frames(scene: Scene, field: np.ndarray, profile: np.ndarray, jitter: np.ndarray,
                  noise_sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Render a clip.

    field: (H, W, 2) float32 D; profile: (T,) a(t); jitter: (T, 2) j(t) px; noise_sigma: grey
    levels (0 for none); rng: noise source. Returns (T, H, W, 3) uint8 RGB, or (T, H, W) uint8
    for a gray scene.
    """
    h, w = scene.size
    n = len(profile)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    # Pixels farther than the largest motion from the field's support only see the jitter.
    reach = float(np.abs(field).max()) * float(np.abs(profile).max()) + float(np.abs(jitter).max())
    sampler = FieldSampler(field, margin=int(np.ceil(reach)) + 2)
    x0, y0, x1, y1 = sampler.box
    roi_y, roi_x = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    channels = scene.dense.shape[2]
    out = np.empty((n, h, w, channels), np.uint8)
    for t in range(n):
        j = np.asarray(jitter[t], np.float64)
        # Outside the field's support the motion is the pure translation j.
        map_x = _UP * (xs - np.float32(j[0])) + (_UP - 1) / 2
        map_y = _UP * (ys - np.float32(j[1])) + (_UP - 1) / 2
        if profile[t] != 0.0 and x1 > x0:
            p = invert_motion(sampler, float(profile[t]), j, roi_x, roi_y)
            map_x[y0:y1, x0:x1] = _UP * p[..., 0] + (_UP - 1) / 2
            map_y[y0:y1, x0:x1] = _UP * p[..., 1] + (_UP - 1) / 2
        img = cv2.remap(scene.dense, map_x, map_y, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT101).reshape(h, w, channels)
        if noise_sigma > 0:
            img += gaussian_noise(rng, img.shape, noise_sigma)
        np.clip(np.rint(img), 0, 255, out=img)
        out[t] = img
    return out[..., 0] if scene.gray else out

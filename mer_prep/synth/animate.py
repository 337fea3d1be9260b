"""Rendering: the neutral canvas, warped frame by frame by the known motion, plus sensor noise.

Frame ``t`` is ``frame_t(q) = round(S(p) + noise)`` where ``p`` solves ``p + a(t) D(p) + j(t) = q``
(convention in ``motion``): an exact backward warp of the forward motion, not the first-order
``q - u(q)``. ``S`` is the continuous neutral scene, the cubic B-spline interpolant of the
neutral canvas (mirror boundary), evaluated exactly: no position quantisation (OpenCV's remap
rounds positions to 1/32 px) and no kernel bias (OpenCV's bicubic, a = -0.75, shifts sub-pixel
content by ~0.03 px on face-like images; the B-spline by < 0.001 px). Away from the expression
the frame is ``S`` translated by ``j(t)``, a separable 5-tap filter; inside the field's support
box it is evaluated point by point.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import spline_filter1d
from scipy.special import ndtri

from mer_prep.errors import InvalidArgumentError
from mer_prep.synth.motion import FieldSampler, invert_motion

__all__ = ["Scene", "make_scene", "render_frames", "gaussian_noise"]

_PAD = 8  # coefficient border: room for motion + jitter + the 4-tap kernel at the canvas edge


@dataclass(frozen=True)
class Scene:
    """A neutral canvas ready for sub-pixel warping.

    coef: (H, W, C) float32 cubic B-spline coefficients, C = 3 (RGB) or 1 (gray);
    padded: the same with a mirrored ``_PAD``-px border, as a flat (N, C) array.
    """

    coef: np.ndarray
    padded: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return self.coef.shape[0], self.coef.shape[1]

    @property
    def gray(self) -> bool:
        return self.coef.shape[2] == 1

    def translated(self, shift: np.ndarray) -> np.ndarray:
        """``S(q - shift)`` at every pixel ``q``: (H, W, C) float32; shift (dx, dy) px."""
        kx, ky, r = _shift_kernels(np.asarray(shift, np.float64))
        out = cv2.sepFilter2D(
            self.coef, cv2.CV_32F, kx, ky, anchor=(r, r), borderType=cv2.BORDER_REFLECT_101
        )
        return out.reshape(self.coef.shape)

    def sample(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``S`` at float positions (any shape, within ``_PAD - 2`` px of the canvas):
        (*x.shape, C) float32."""
        h, w = self.size
        wp = w + 2 * _PAD
        ix, iy = np.floor(x).astype(np.intp), np.floor(y).astype(np.intp)
        wx, wy = _taps(x - ix), _taps(y - iy)
        base = (
            (np.clip(iy, 1 - _PAD, h + _PAD - 3) + _PAD - 1) * wp
            + np.clip(ix, 1 - _PAD, w + _PAD - 3)
            + _PAD
            - 1
        )
        out = np.zeros(x.shape + (self.coef.shape[2],), np.float32)
        for dy in range(4):
            row = np.zeros_like(out)
            for dx in range(4):
                row += wx[dx] * self.padded.take(base + (dy * wp + dx), axis=0)
            row *= wy[dy]
            out += row
        return out


def make_scene(neutral: np.ndarray, *, gray: bool = False) -> Scene:
    """neutral: (H, W, 3) float32 RGB in [0, 255]. gray: single-channel frames (ITU-R BT.601
    luma, as ``cv2.COLOR_RGB2GRAY``)."""
    img = np.asarray(neutral, np.float32)
    if gray:
        img = (img @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    coef = spline_filter1d(img, 3, axis=0, mode="mirror", output=np.float32)
    coef = spline_filter1d(coef, 3, axis=1, mode="mirror", output=np.float32)
    padded = np.pad(coef, ((_PAD, _PAD), (_PAD, _PAD), (0, 0)), mode="reflect")
    return Scene(np.ascontiguousarray(coef), padded.reshape(-1, coef.shape[2]))


def _bspline3(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return np.where(ax < 1, 2 / 3 - ax**2 + ax**3 / 2, np.where(ax < 2, (2 - ax) ** 3 / 6, 0.0))


def _taps(frac: np.ndarray) -> list[np.ndarray]:
    """Weights (*frac.shape, 1) float32 of the samples at offsets -1, 0, 1, 2 from ``floor(x)``;
    frac = x - floor(x) (float64, so positions keep full precision until here)."""
    f = np.asarray(frac, np.float64)[..., None]
    g = 1.0 - f
    taps = (g**3 / 6, 2 / 3 - f**2 + f**3 / 2, 2 / 3 - g**2 + g**3 / 2, f**3 / 6)
    return [t.astype(np.float32) for t in taps]


def _shift_kernels(shift: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    # out(q) = sum_o K[o + r] coef(q + o) with K[r + o] = beta3(o + shift): S(q - shift).
    r = 2 + int(np.ceil(np.abs(shift).max()))
    offsets = np.arange(-r, r + 1, dtype=np.float64)
    kx, ky = (_bspline3(offsets + s).astype(np.float32) for s in shift)
    return kx, ky, r


@functools.lru_cache(maxsize=1)
def _normal_table() -> np.ndarray:
    # 2**16 equiprobable N(0, 1) quantiles, renormalised to unit variance: a table lookup is
    # ~4x faster than numpy's normal sampler, and the noise is rounded to grey levels anyway.
    table = ndtri((np.arange(2**16) + 0.5) / 2**16)
    return (table / table.std()).astype(np.float32)


def gaussian_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean Gaussian noise, float32, std ``sigma`` (grey levels), tails cut at ~4.2 sigma."""
    idx = np.frombuffer(rng.bytes(2 * int(np.prod(shape))), np.uint16).reshape(shape)
    return np.take(_normal_table() * np.float32(sigma), idx)


def render_frames(
    scene: Scene,
    field: np.ndarray,
    profile: np.ndarray,
    jitter: np.ndarray,
    noise_sigma: float,
    rng: np.random.Generator | None,
) -> np.ndarray:
    """Render a clip.

    field: (H, W, 2) float32 D; profile: (T,) a(t); jitter: (T, 2) j(t) px; noise_sigma: grey
    levels (0: none, and ``rng`` may be None). Returns (T, H, W, 3) uint8 RGB, or (T, H, W)
    uint8 for a gray scene.
    """
    h, w = scene.size
    n = len(profile)
    reach = float(np.abs(field).max()) * float(np.abs(profile).max()) + float(np.abs(jitter).max())
    if reach > _PAD - 3:
        raise InvalidArgumentError(
            f"motion of up to {reach:.1f} px exceeds the renderer's {_PAD - 3} px"
        )
    # Farther than the largest motion from the field's support, frames only see the jitter.
    sampler = FieldSampler(field, margin=int(np.ceil(reach)) + 2)
    x0, y0, x1, y1 = sampler.box
    roi_y, roi_x = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    out = np.empty((n, h, w, scene.coef.shape[2]), np.uint8)
    for t in range(n):
        j = np.asarray(jitter[t], np.float64)
        img = scene.translated(j)
        if profile[t] != 0.0 and x1 > x0:
            # 1e-4 px moves even a 50 grey-level/px edge by 0.005 grey levels: invisible in uint8.
            p = invert_motion(sampler, float(profile[t]), j, roi_x, roi_y, tol=1e-4)
            img[y0:y1, x0:x1] = scene.sample(p[..., 0], p[..., 1])
        # cv2.add rounds half to even and saturates to 0..255 on its way to uint8.
        noise = (
            gaussian_noise(rng, img.shape, noise_sigma) if noise_sigma > 0 else np.zeros_like(img)
        )
        out[t] = cv2.add(img, noise, dtype=cv2.CV_8U).reshape(out.shape[1:])
    return out[..., 0] if scene.gray else out

"""What moves and when: AU-like displacement fields, temporal profiles and head jitter.

Sign convention (used by every synthetic clip and its ground truth): displacements are the
*forward motion of scene points*, in pixels, channel order ``(dx, dy)`` like OpenCV's flow. A
point of the neutral face at canvas position ``x`` is seen at ``x + u_t(x)`` in frame ``t``, with

    u_t(x) = a(t) * D(x) + j(t)

``D``: (H, W, 2) float32 spatial field (``max |D| == amplitude``, the apex amplitude);
``a``: (T,) temporal profile, 0 up to the onset and from the offset on, 1 at the apex;
``j``: (T, 2) global sub-pixel head/camera translation. The continuous field is *defined* as
the bilinear interpolation of the stored ``D`` (edge-clamped): renderer and ground truth both
use that definition, so they agree exactly; it differs from the underlying sum of Gaussians
(sigma >= 0.12 inter-ocular distances) by well under 1e-3 px.

Frame ``t`` therefore satisfies ``frame_t(x + u_t(x)) = neutral(x)`` (up to noise and uint8
rounding), and the optical flow from frame ``t0`` to ``t1`` at pixel ``q`` is
``u_t1(p) - u_t0(p)`` with ``p`` the solution of ``p + u_t0(p) = q`` (``invert_motion``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mer_prep.errors import InvalidArgumentError

__all__ = [
    "AU_PRIMITIVES",
    "EMOTION_AUS",
    "aus_for_emotion",
    "au_field",
    "temporal_profile",
    "head_jitter",
    "sample_field",
    "support_box",
    "FieldSampler",
    "invert_motion",
]


@dataclass(frozen=True)
class Push:
    """A Gaussian-windowed translation anchored on landmarks.

    anchor: dlib landmark indices whose mean is the centre; offset: shift of the centre and
    direction: unit-ish motion direction, both in the face frame (x along the eye line towards
    the image right, y down the face, units of the inter-ocular distance); sigma: window width
    in inter-ocular distances; weight: relative strength.
    """

    anchor: tuple[int, ...]
    direction: tuple[float, float]
    sigma: float
    weight: float = 1.0
    offset: tuple[float, float] = (0.0, 0.0)


# FACS action units as 2-D pushes; "L"/"R" below mean the image left/right side.
AU_PRIMITIVES: dict[str, tuple[Push, ...]] = {
    "1": (Push((21,), (0.15, -1.0), 0.22), Push((22,), (-0.15, -1.0), 0.22)),
    "2": (Push((17, 18), (0.0, -1.0), 0.25), Push((25, 26), (0.0, -1.0), 0.25)),
    "4": (Push((20, 21), (0.55, 0.8), 0.2), Push((22, 23), (-0.55, 0.8), 0.2)),
    "5": (Push((37, 38), (0.0, -1.0), 0.12), Push((43, 44), (0.0, -1.0), 0.12)),
    "6": (
        Push((40, 41), (0.0, -1.0), 0.25, 0.6, (0.0, 0.35)),
        Push((46, 47), (0.0, -1.0), 0.25, 0.6, (0.0, 0.35)),
    ),
    "7": (Push((40, 41), (0.0, -1.0), 0.12), Push((46, 47), (0.0, -1.0), 0.12)),
    "9": (
        Push((31,), (0.1, -1.0), 0.16),
        Push((35,), (-0.1, -1.0), 0.16),
        Push((28,), (0.0, 0.6), 0.14, 0.5),
    ),
    "10": (Push((50,), (0.0, -1.0), 0.17), Push((52,), (0.0, -1.0), 0.17)),
    "12": (Push((48,), (-0.6, -0.8), 0.22), Push((54,), (0.6, -0.8), 0.22)),
    "R14": (Push((54,), (0.9, -0.3), 0.2),),
    "14": (Push((48,), (-0.9, -0.2), 0.2), Push((54,), (0.9, -0.2), 0.2)),
    "15": (Push((48,), (-0.2, 1.0), 0.2), Push((54,), (0.2, 1.0), 0.2)),
    "17": (Push((57,), (0.0, -1.0), 0.28, 1.0, (0.0, 0.4)),),
    "20": (Push((48,), (-1.0, 0.2), 0.2), Push((54,), (1.0, 0.2), 0.2)),
    "24": (Push((51, 62), (0.0, 1.0), 0.14), Push((57, 66), (0.0, -1.0), 0.14)),
}

# Native class names (lower-cased) of every dataset -> the AUs that animate them.
EMOTION_AUS: dict[str, str] = {
    "happiness": "6+12",
    "happy": "6+12",
    "positive": "6+12",
    "surprise": "1+2",
    "disgust": "9+10",
    "repression": "15+17",
    "anger": "4+7",
    "sadness": "1+15",
    "sad": "1+15",
    "fear": "1+4+20",
    "contempt": "R14",
    "tense": "4+24",
    "negative": "4",
    "others": "7",
    "other": "7",
}


def aus_for_emotion(emotion: str) -> str:
    """The AU string (``"6+12"``) used for a native class name, case-insensitive."""
    try:
        return EMOTION_AUS[emotion.strip().lower()]
    except KeyError:
        raise InvalidArgumentError(
            f"no synthetic AU motion for emotion {emotion!r}; known: {sorted(EMOTION_AUS)}"
        ) from None


def au_field(
    landmarks: np.ndarray, action_units: str, size: tuple[int, int], amplitude: float
) -> np.ndarray:
    """Spatial displacement field of an AU combination at its apex.

    landmarks: (68, 2) canvas landmarks of the neutral face, dlib image order.
    action_units: ``"+"``-joined keys of ``AU_PRIMITIVES``; size: (H, W); amplitude: px.
    Returns (H, W, 2) float32 ``(dx, dy)`` with ``max |D| == amplitude``. Values below 1e-4 of
    the amplitude (beyond ~4.3 sigma) are set to exactly 0: the field gets a compact support
    that keeps rendering fast, at the cost of steps of at most 2e-4 px at its edge.
    """
    lm = np.asarray(landmarks, np.float64)
    left, right = lm[36:42].mean(0), lm[42:48].mean(0)
    iod = float(np.linalg.norm(right - left))
    ex = (right - left) / iod
    ey = np.array([-ex[1], ex[0]])  # eye line turned +90 deg: down the face (image y is down)
    frame = np.stack([ex, ey], axis=1)  # face-frame (x, y) -> canvas
    h, w = size
    field = np.zeros((h, w, 2), np.float64)
    for au in action_units.split("+"):
        for push in AU_PRIMITIVES[au.strip()]:
            centre = lm[list(push.anchor)].mean(0) + iod * (frame @ np.asarray(push.offset))
            direction = frame @ np.asarray(push.direction, np.float64)
            sigma = push.sigma * iod
            r = int(np.ceil(5 * sigma))
            x0, x1 = max(int(centre[0]) - r, 0), min(int(centre[0]) + r + 1, w)
            y0, y1 = max(int(centre[1]) - r, 0), min(int(centre[1]) + r + 1, h)
            if x0 >= x1 or y0 >= y1:
                continue
            gx = np.exp(-0.5 * ((np.arange(x0, x1) - centre[0]) / sigma) ** 2)
            gy = np.exp(-0.5 * ((np.arange(y0, y1) - centre[1]) / sigma) ** 2)
            field[y0:y1, x0:x1] += push.weight * np.outer(gy, gx)[..., None] * direction
    peak = float(np.hypot(field[..., 0], field[..., 1]).max())
    if peak == 0.0:
        raise InvalidArgumentError(f"AUs {action_units!r} produce no motion inside a {size} canvas")
    field *= amplitude / peak
    field[np.hypot(field[..., 0], field[..., 1]) < 1e-4 * amplitude] = 0.0
    return field.astype(np.float32)


def temporal_profile(n_frames: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """a(t) for frames 0..n_frames-1: (T,) float64.

    0 for t <= onset and t >= offset, exactly 1 at the apex, raised-cosine rise and fall in
    between (continuous with a continuous slope at both ends).
    """
    if not 0 <= onset < apex < offset < n_frames:
        raise InvalidArgumentError(
            f"need 0 <= onset < apex < offset < n_frames, got {onset}, {apex}, {offset}, {n_frames}"
        )
    t = np.arange(n_frames, dtype=np.float64)
    rise = 0.5 - 0.5 * np.cos(np.pi * (t - onset) / (apex - onset))
    fall = 0.5 + 0.5 * np.cos(np.pi * (t - apex) / (offset - apex))
    a = np.where(t <= apex, rise, fall)
    a[(t <= onset) | (t >= offset)] = 0.0
    return a


def head_jitter(n_frames: int, rng: np.random.Generator, max_px: float) -> np.ndarray:
    """Smooth random global translation per frame: (T, 2) float64 ``(dx, dy)`` pixels.

    A sum of three low-frequency sinusoids per axis (at most ~3 cycles over the clip), scaled
    so that ``max_t |j(t)| == max_px`` (0 gives no jitter).
    """
    t = np.arange(n_frames, dtype=np.float64) / max(n_frames, 1)
    jitter = np.zeros((n_frames, 2))
    for axis in range(2):
        for cycles in rng.uniform(0.3, 3.0, size=3):
            phase = rng.uniform(0, 2 * np.pi)
            jitter[:, axis] += rng.normal() * np.sin(2 * np.pi * cycles * t + phase)
    peak = float(np.hypot(jitter[:, 0], jitter[:, 1]).max())
    return jitter * (max_px / peak) if peak > 0 and max_px > 0 else np.zeros((n_frames, 2))


def sample_field(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``field`` ((H, W, 2)) at float positions ``x``, ``y`` (same
    shape, canvas px; clamped to the canvas). Returns (*x.shape, 2) float64, no quantisation."""
    return FieldSampler(field, margin=0)(x, y)


def support_box(field: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), end-exclusive: bounding box of the non-zero field grown by ``margin``
    px and clipped to the canvas; an empty box (0, 0, 0, 0) when the field is all zero."""
    nz_rows = np.flatnonzero(np.any(field != 0, axis=(1, 2)))
    nz_cols = np.flatnonzero(np.any(field != 0, axis=(0, 2)))
    if nz_rows.size == 0:
        return 0, 0, 0, 0
    h, w = field.shape[:2]
    return (
        max(int(nz_cols[0]) - margin, 0),
        max(int(nz_rows[0]) - margin, 0),
        min(int(nz_cols[-1]) + margin + 1, w),
        min(int(nz_rows[-1]) + margin + 1, h),
    )


class FieldSampler:
    """Repeated bilinear reads of a field, restricted to its support box for speed.

    With ``margin >= 2`` the crop has a zero border, so clamped reads outside it return the
    field's true value there, 0; with ``margin=0`` the whole canvas is kept (edge-clamped).
    """

    def __init__(self, field: np.ndarray, margin: int = 2) -> None:
        h, w = field.shape[:2]
        box = support_box(field, margin) if margin else (0, 0, w, h)
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            box = (0, 0, min(w, 2), min(h, 2))
        self.box = box
        x0, y0, x1, y1 = box
        self.crop = np.ascontiguousarray(field[y0:y1, x0:x1], np.float32)
        self._flat = [self.crop[..., c].ravel() for c in range(2)]
        # Inside a bilinear cell each partial derivative is a mix of the grid's differences,
        # so the Frobenius norm of these maxima bounds the interpolant's Lipschitz constant.
        dx = np.abs(np.diff(self.crop, axis=1)).max(axis=(0, 1)) if self.crop.shape[1] > 1 else 0
        dy = np.abs(np.diff(self.crop, axis=0)).max(axis=(0, 1)) if self.crop.shape[0] > 1 else 0
        self.lipschitz = float(np.sqrt(np.sum(np.square(dx)) + np.sum(np.square(dy))))

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Exact bilinear value at canvas positions: (*x.shape, 2) float64."""
        h, w = self.crop.shape[:2]
        x = np.clip(np.asarray(x, np.float64) - self.box[0], 0.0, w - 1.0)
        y = np.clip(np.asarray(y, np.float64) - self.box[1], 0.0, h - 1.0)
        x0 = np.minimum(x.astype(np.intp), w - 2)
        y0 = np.minimum(y.astype(np.intp), h - 2)
        fx, fy = x - x0, y - y0
        i00 = y0 * w + x0
        out = np.empty(x.shape + (2,), np.float64)
        for c, flat in enumerate(self._flat):
            top = flat.take(i00) * (1 - fx) + flat.take(i00 + 1) * fx
            bottom = flat.take(i00 + w) * (1 - fx) + flat.take(i00 + w + 1) * fx
            out[..., c] = top * (1 - fy) + bottom * fy
        return out

    def approx(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Fast read for 2-D position arrays via ``cv2.remap`` (positions quantised to 1/32
        px): (*x.shape, 2) float64, used to start the exact iteration close to its solution."""
        mx = (np.asarray(x) - self.box[0]).astype(np.float32)
        my = (np.asarray(y) - self.box[1]).astype(np.float32)
        h, w = self.crop.shape[:2]
        np.clip(mx, 0, w - 1, out=mx)
        np.clip(my, 0, h - 1, out=my)
        return cv2.remap(
            self.crop, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        ).astype(np.float64)


def invert_motion(
    field: np.ndarray | FieldSampler,
    a: float,
    jitter: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    tol: float = 1e-5,
    max_iter: int = 50,
) -> np.ndarray:
    """Neutral-face positions that frame-t pixels ``(x, y)`` show: solves ``p + a D(p) + j = q``.

    field: (H, W, 2) D or a ``FieldSampler`` of it; a: a(t); jitter: (2,) j(t); x, y: float
    arrays of frame positions q. Returns (*x.shape, 2) float64 p with error <= ``tol`` px.
    Fixed-point iteration, a contraction with constant ``L = |a| Lip(D) << 1`` for
    micro-expression fields, stopped by the bound ``error <= L / (1 - L) * last step``. 2-D
    inputs first iterate on fast quantised reads, then finish on exact ones.
    """
    sampler = field if isinstance(field, FieldSampler) else FieldSampler(field)
    target = np.stack([np.asarray(x, np.float64), np.asarray(y, np.float64)], axis=-1)
    target -= np.asarray(jitter, np.float64)
    p = target.copy()
    lip = abs(a) * sampler.lipschitz
    if a == 0.0 or p.size == 0:
        return p
    if lip >= 0.5:
        raise InvalidArgumentError(f"motion too steep to invert: |a| Lip(D) = {lip:.2f}")
    if p.ndim == 3:
        # Quantised reads stall at ~L / 64 px, so only a few are worth doing.
        for _ in range(4):
            new = target - a * sampler.approx(p[..., 0], p[..., 1])
            step = float(np.abs(new - p).max())
            p = new
            if step < 1e-2:
                break
    for _ in range(max_iter):
        new = target - a * sampler(p[..., 0], p[..., 1])
        step = float(np.abs(new - p).max())
        p = new
        if lip / (1 - lip) * step < tol:
            return p
    raise InvalidArgumentError("motion inversion did not converge")

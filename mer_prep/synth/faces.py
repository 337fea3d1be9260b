"""Synthetic subjects: one real face photograph, made into distinct-looking people.

The only real, frontal, high-resolution face bundled with the installed packages is
scikit-image's ``astronaut`` (Eileen Collins, public domain, 512x512 RGB, shipped inside the
wheel: no download). Each synthetic subject is that face with a seeded identity warp (face
width, height and jaw proportions, a few %), optional mirroring, skin tone, gamma and side
lighting, a scale/roll/position on the canvas and its own procedural background.

Coordinates are ``(x, y)`` pixels with pixel centres on integers (OpenCV's convention). A source
pixel ``p`` lands on the canvas at ``placement @ [*identity_warp(p), 1]``: the identity warp acts
in source pixels, then the exact 2x3 affine ``placement`` (which carries the mirroring) maps to
the canvas. The source landmarks are dlib's 68 points on the clean photograph, computed once per
process; this module deliberately does not use ``mer_prep.face`` so that the ground truth stays
independent of the stages it is used to check.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import dlib
import numpy as np

# Only the model file's location is shared with the stages under test, not their code.
from mer_prep.errors import EnvironmentProblem
from mer_prep.face.landmarks import MIRROR_68, eye_centers, predictor_path

__all__ = [
    "SourceFace",
    "IdentityWarp",
    "Subject",
    "source_face",
    "make_subject",
    "render_subject",
    "subject_landmarks",
    "subject_face_box",
]

# Soft shading patches per subject (see Subject.shading).
_SHADING_PATCHES = 3

# Soft head ellipse in astronaut pixels (centre x, y; semi-axes; edge width): face, hair, chin.
_HEAD_ELLIPSE = (224.0, 120.0, 88.0, 112.0, 12.0)


@dataclass(frozen=True)
class SourceFace:
    """The source photograph and what dlib finds on it.

    image: (512, 512, 3) uint8 RGB. landmarks: (68, 2) float64 source pixels, dlib order.
    box: dlib HOG box (left, top, right, bottom) in source pixels, the largest one found.
    """

    image: np.ndarray
    landmarks: np.ndarray
    box: tuple[float, float, float, float]


@functools.lru_cache(maxsize=1)
def source_face() -> SourceFace:
    """Load the astronaut and fit dlib's HOG box and 68 landmarks once per process."""
    import skimage.data  # bundled file; imported lazily as it is slow to import

    image = np.ascontiguousarray(skimage.data.astronaut())
    boxes = dlib.get_frontal_face_detector()(image, 1)
    if not boxes:
        raise EnvironmentProblem("dlib found no face on skimage.data.astronaut()")
    # HOG also fires on the suit's mission patch: the real face is the largest box.
    box = max(boxes, key=lambda r: r.area())
    shape = dlib.shape_predictor(str(predictor_path()))(image, box)
    landmarks = np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], np.float64)
    image.setflags(write=False)
    landmarks.setflags(write=False)
    corners = (float(box.left()), float(box.top()), float(box.right()), float(box.bottom()))
    return SourceFace(image, landmarks, corners)


@dataclass(frozen=True)
class IdentityWarp:
    """Smooth change of face proportions, in source pixels.

    ``W(p) = c + diag(sx, sy) (p - c) + (jaw * (x - cx) * s(y), 0)`` with
    ``s(y) = tanh((y - cy) / radius)``: width and height scaled about the face centre ``c``,
    and the lower face widened (jaw > 0) or narrowed, the upper face the opposite way.
    """

    cx: float
    cy: float
    sx: float
    sy: float
    jaw: float
    radius: float

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Forward map of (..., 2) source points -> (..., 2) warped source points (float64)."""
        p = np.asarray(points, np.float64)
        dx, dy = p[..., 0] - self.cx, p[..., 1] - self.cy
        x = self.cx + self.sx * dx + self.jaw * dx * np.tanh(dy / self.radius)
        return np.stack([x, self.cy + self.sy * dy], axis=-1)

    def invert(self, points: np.ndarray) -> np.ndarray:
        """Inverse map (..., 2) -> (..., 2), exact: y is affine, then x is linear given y."""
        q = np.asarray(points, np.float64)
        dy = (q[..., 1] - self.cy) / self.sy
        dx = (q[..., 0] - self.cx) / (self.sx + self.jaw * np.tanh(dy / self.radius))
        return np.stack([self.cx + dx, self.cy + dy], axis=-1)


@dataclass(frozen=True)
class Subject:
    """One synthetic person: how the source face is placed and coloured on the canvas.

    size: canvas (H, W). placement: (2, 3) float64 affine, warped-source -> canvas pixels
    (determinant < 0 when mirrored). gains: (3,) RGB multipliers; gamma: applied to [0, 1]
    intensities before the gains; light: relative brightness change across the face width;
    background: seed of the procedural background; shading: (K, 4) float64 rows
    ``(x, y, sigma, gain)`` in source pixels — soft multiplicative patches (complexion,
    shadows) that give each subject its own low-frequency look, which is what a perceptual
    hash sees; without them subjects made from one photograph hash alike once aligned.
    """

    size: tuple[int, int]
    placement: np.ndarray
    warp: IdentityWarp
    mirrored: bool
    gains: tuple[float, float, float]
    gamma: float
    light: float
    background: int
    shading: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))

    def to_canvas(self, points: np.ndarray) -> np.ndarray:
        """Source pixels (..., 2) -> canvas pixels (..., 2), float64."""
        w = self.warp.apply(points)
        return w @ self.placement[:, :2].T + self.placement[:, 2]

    def to_source(self, points: np.ndarray) -> np.ndarray:
        """Canvas pixels (..., 2) -> source pixels (..., 2), float64 (exact inverse)."""
        a_inv = np.linalg.inv(self.placement[:, :2])
        w = (np.asarray(points, np.float64) - self.placement[:, 2]) @ a_inv.T
        return self.warp.invert(w)


def make_subject(rng: np.random.Generator, size: tuple[int, int] = (480, 640)) -> Subject:
    """Draw one subject's appearance from ``rng``; ``size`` is the canvas (H, W).

    The face is scaled so that the inter-ocular distance is 64-86 px on a 480-row canvas
    (proportionally on other sizes), rolled by at most 4 degrees and kept well inside the frame.
    """
    src = source_face()
    h, w = size
    lm = src.landmarks
    centre = lm[17:].mean(axis=0)
    warp = IdentityWarp(
        float(centre[0]),
        float(centre[1]),
        sx=float(rng.uniform(0.93, 1.07)),
        sy=float(rng.uniform(0.94, 1.06)),
        jaw=float(rng.uniform(-0.06, 0.06)),
        radius=60.0,
    )
    mirrored = bool(rng.random() < 0.5)
    left_eye, right_eye = eye_centers(lm)
    iod_src = np.linalg.norm(right_eye - left_eye)
    scale = rng.uniform(64.0, 86.0) / iod_src * h / 480.0
    roll = np.deg2rad(rng.uniform(-4.0, 4.0))
    lin = scale * np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
    if mirrored:
        lin = lin @ np.diag([-1.0, 1.0])
    target = np.array([w * rng.uniform(0.42, 0.58), h * rng.uniform(0.44, 0.56)])
    placement = np.hstack([lin, (target - lin @ warp.apply(centre))[:, None]])
    gains = rng.uniform([0.85, 0.78, 0.70], [1.15, 1.08, 1.15])
    gamma, light = float(rng.uniform(0.75, 1.35)), float(rng.uniform(-0.18, 0.18))
    background = int(rng.integers(2**31))
    # Drawn last so that every earlier draw (and so each subject's geometry) is unchanged.
    cx, cy, ax, ay, _ = _HEAD_ELLIPSE
    k = _SHADING_PATCHES
    shading = np.column_stack(
        [
            rng.uniform(cx - 0.7 * ax, cx + 0.7 * ax, k),
            rng.uniform(cy - 0.6 * ay, cy + 0.7 * ay, k),
            rng.uniform(0.25, 0.45, k) * ax,
            rng.choice([-1.0, 1.0], k) * rng.uniform(0.15, 0.3, k),
        ]
    )
    return Subject(
        size=(int(h), int(w)),
        placement=placement,
        warp=warp,
        mirrored=mirrored,
        gains=(float(gains[0]), float(gains[1]), float(gains[2])),
        gamma=gamma,
        light=light,
        background=background,
        shading=shading,
    )


def _background(seed: int, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32 in [0, 255]: a two-colour gradient with soft blotches."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx / w + np.sin(angle) * yy / h
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    c0, c1 = rng.uniform(20, 235, size=(2, 3)).astype(np.float32)
    img = c0 + ramp[..., None] * (c1 - c0)
    blotch = cv2.GaussianBlur(
        rng.standard_normal((h, w, 3)).astype(np.float32), (0, 0), sigmaX=max(h, w) / 40
    )
    img += 40.0 * blotch / max(float(np.abs(blotch).max()), 1e-6)
    return np.clip(img, 0, 255)


def render_subject(subject: Subject) -> np.ndarray:
    """The subject's neutral canvas: (H, W, 3) float32 RGB in [0, 255], no jitter, no noise."""
    src = source_face()
    h, w = subject.size
    grid = np.stack(
        np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)), axis=-1
    )
    p = subject.to_source(grid)
    face = cv2.remap(
        src.image.astype(np.float32),
        p[..., 0].astype(np.float32),
        p[..., 1].astype(np.float32),
        cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REFLECT101,
    )
    face = np.clip(face / 255.0, 0, 1) ** subject.gamma * np.asarray(subject.gains, np.float32)
    # Side lighting: brightness ramps across the face along the canvas x axis.
    cx, cy, ax, ay, edge = _HEAD_ELLIPSE
    head_x = subject.to_canvas(np.array([cx, cy]))[0]
    half = ax * np.linalg.norm(subject.placement[:, 0])
    ramp = 1.0 + subject.light * np.clip((grid[..., 0] - head_x) / half, -1, 1)
    face = face * ramp[..., None].astype(np.float32)
    for x, y, sigma, gain in subject.shading:
        patch = np.exp(-((p[..., 0] - x) ** 2 + (p[..., 1] - y) ** 2) / (2 * sigma**2))
        face *= (1.0 + gain * patch)[..., None].astype(np.float32)
    face = np.clip(face, 0, 1) * 255.0
    # Soft elliptical matte, defined in source pixels so it follows the identity warp.
    r = np.hypot((p[..., 0] - cx) / ax, (p[..., 1] - cy) / ay)
    t = np.clip((1.0 - r) * min(ax, ay) / edge + 0.5, 0, 1)
    alpha = (t * t * (3 - 2 * t)).astype(np.float32)[..., None]
    out = alpha * face + (1 - alpha) * _background(subject.background, subject.size)
    return out.astype(np.float32)


def subject_landmarks(subject: Subject) -> np.ndarray:
    """The neutral face's 68 landmarks on the canvas: (68, 2) float64, dlib's image order."""
    pts = subject.to_canvas(source_face().landmarks)
    return pts[MIRROR_68] if subject.mirrored else pts


def subject_face_box(subject: Subject) -> tuple[float, float, float, float]:
    """Where a HOG detector should box the neutral face: (left, top, right, bottom) canvas px.

    The source image's dlib box, its corners mapped to the canvas, axis-aligned.
    """
    left, top, right, bottom = source_face().box
    corners = subject.to_canvas(
        np.array([[left, top], [right, top], [left, bottom], [right, bottom]], np.float64)
    )
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

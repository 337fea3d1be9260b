"""Frame files of one clip folder: numeric ordering and checks of an annotated range."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

_TRAILING_NUMBER = re.compile(r"(\d+)$")

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")


def frame_number(name: str) -> int | None:
    """The frame number in a file name: the last run of digits of its stem.

    ``img46.jpg`` -> 46, ``reg_img7.jpg`` -> 7, ``006_05562.jpg`` -> 5562, ``EP01_5-12.jpg`` -> 12;
    None when the stem does not end in digits.
    """
    match = _TRAILING_NUMBER.search(os.path.splitext(name)[0])
    return int(match.group(1)) if match else None


def list_frames(folder: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[tuple[int, Path]]:
    """(number, path) of every numbered image file in ``folder``, in numeric order.

    Sorting by number, not by name, puts img2 before img10. Files that carry no number
    (Thumbs.db, notes) are skipped. One directory read, no stat per file (a dataset scan lists
    tens of thousands of frames).
    """
    found: list[tuple[int, str]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if os.path.splitext(entry.name)[1].lower() not in suffixes or not entry.is_file():
                continue
            number = frame_number(entry.name)
            if number is not None:
                found.append((number, entry.name))
    found.sort()
    return [(number, folder / name) for number, name in found]


def timing_error(numbers: list[int], onset: int, apex: int | None, offset: int) -> str | None:
    """Why ``onset/apex/offset`` do not fit the frames on disk, or None when they do.

    ``numbers`` are the sorted frame numbers found in the folder. Checks, in order: onset
    before offset; apex inside the clip and between onset and offset; annotated range inside
    the frames present; no frame number missing inside onset..offset.
    """
    if not numbers:
        return "no frame files in the clip folder"
    first, last = numbers[0], numbers[-1]
    if onset > offset:
        return f"onset {onset} is after offset {offset}"
    if apex is not None and not first <= apex <= last:
        return f"apex {apex} is outside the clip (frames {first}..{last} on disk)"
    if apex is not None and apex < onset:
        return f"apex {apex} is before onset {onset}"
    if apex is not None and apex > offset:
        return f"apex {apex} is after offset {offset}"
    if onset < first or offset > last:
        return (
            f"onset..offset {onset}..{offset} is outside the clip (frames {first}..{last} on disk)"
        )
    present = set(numbers)
    missing = [n for n in range(onset, offset + 1) if n not in present]
    if missing:
        shown = ", ".join(str(n) for n in missing[:10]) + (" ..." if len(missing) > 10 else "")
        return f"{len(missing)} frame(s) missing inside onset..offset: {shown}"
    return None


# (leading bytes, trailing marker) of the formats frame folders hold; BMP has no end marker
_SIGNATURES: dict[str, tuple[bytes, bytes | None]] = {
    ".jpg": (b"\xff\xd8\xff", b"\xff\xd9"),
    ".jpeg": (b"\xff\xd8\xff", b"\xff\xd9"),
    ".png": (b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"),
    ".bmp": (b"BM", None),
}
_TAIL = 1024  # an end marker may be followed by padding


def unreadable_frame(path: Path | str) -> str | None:
    """Why the image file cannot be read (missing, empty, not an image of its suffix, truncated
    before its end marker), or None when it looks whole. Reads a few bytes at each end only: a
    cheap scan-time check, not a decode."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    head, tail = _SIGNATURES.get(suffix, (b"", None))
    try:
        with open(path, "rb") as handle:
            first = handle.read(max(len(head), 1))
            if not first:
                return "empty file"
            if head and not first.startswith(head):
                return f"not a {suffix[1:].upper()} image (bad signature)"
            if tail is None:
                return None
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _TAIL))
            end = handle.read()
    except OSError as exc:
        return f"cannot be opened ({exc.strerror or exc.__class__.__name__})"
    if tail not in end:
        return "truncated (no end-of-image marker)"
    return None


def unreadable_frames(frames: list[tuple[int, Path]]) -> str | None:
    """A problem message naming the unreadable frames among ``(number, path)``, or None."""
    bad = [(n, why) for n, p in frames if (why := unreadable_frame(p))]
    if not bad:
        return None
    shown = "; ".join(f"frame {n}: {why}" for n, why in bad[:5]) + (" ..." if len(bad) > 5 else "")
    return f"{len(bad)} unreadable frame file(s) inside onset..offset: {shown}"


VIDEO_SUFFIXES: tuple[str, ...] = (
    ".mp4",
    ".avi",
    ".mov",
    ".mkv",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".webm",
    ".flv",
)


def video_frame_count(path: Path | str) -> int:
    """Frames in a video file as its container states them (0 when unknown); ValueError when it
    cannot be opened. Opens the file, decodes nothing; remembered per file version (many rows
    share one long recording)."""
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise ValueError(
            f"cannot open video {path} ({exc.strerror or exc.__class__.__name__})"
        ) from exc
    return _frame_count(os.fspath(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=1024)
def _frame_count(path: str, _size: int, _mtime_ns: int) -> int:
    # size and mtime: only in the cache key, so that a replaced file is counted again
    import cv2  # local: only video sources need it at scan time

    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise ValueError(f"cannot open video {path}")
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    finally:
        capture.release()

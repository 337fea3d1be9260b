"""Frame files of one clip folder: numeric ordering and checks of an annotated range."""

from __future__ import annotations

import os
import re
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
        return f"onset..offset {onset}..{offset} is outside the clip (frames {first}..{last} on disk)"
    present = set(numbers)
    missing = [n for n in range(onset, offset + 1) if n not in present]
    if missing:
        shown = ", ".join(str(n) for n in missing[:10]) + (" ..." if len(missing) > 10 else "")
        return f"{len(missing)} frame(s) missing inside onset..offset: {shown}"
    return None

"""SAMM Long Videos: ``SAMM_longvideos/006_1/006_1_0001.jpg`` (200 fps) + the
``FACS_Movement_Only`` sheet of ``SAMM_LongVideos_V*_Release.xlsx``.

The sheet opens with text rows (a preamble of 9 in the release) before its header ``Subject,
Filename, Inducement Code, Onset, Apex, Offset, Duration, Type, Action Units, Notes``; the
header is found by its names. ``Filename`` ``006_1_2`` is subject_video_index: the movement's
video is ``006_1``. ``Type`` is ``Macro`` or ``Micro - 1/2``. Quirks: fractional frame numbers
(``566.4``) are rounded (``fractional-frame``), apex -1 means none (``apex-missing``), an onset
<= 1 lasting longer than ``LONG_FROM_START_S`` is flagged (``long-from-start``) and kept.
Emotions are not in this sheet: when SAMM's micro sheet (``SAMM_Micro_FACS_Codes*.xlsx``) is
beside it (or named by ``emotions=``), they are joined on (Filename, Type) as public code does.
"""

from __future__ import annotations

import re
from pathlib import Path

from mer_prep.datasets._annotated import child_dirs, subject_number
from mer_prep.datasets._sheets import SheetRow, as_text, find_table, read_workbook
from mer_prep.datasets.long_video import (
    LONG_FROM_START_S,
    LongVideoScan,
    RowInterval,
    RowNotes,
    assemble,
    quirk,
)
from mer_prep.errors import AnnotationError, DataRootError
from mer_prep.sample import Problem

DATASET = "samm-lv"
FPS = 200.0
FRAMES_DIR = "SAMM_longvideos"
SHEET_GLOB = "SAMM_LongVideos*.xlsx"
MICRO_SHEET_GLOB = "SAMM_Micro_FACS_Codes*.xlsx"
REQUIRED: dict[str, tuple[str, ...]] = {
    "subject": ("Subject",),
    "filename": ("Filename", "File name"),
    "onset": ("Onset", "Onset Frame"),
    "apex": ("Apex", "Apex Frame"),
    "offset": ("Offset", "Offset Frame"),
    "type": ("Type",),
}
OPTIONAL: dict[str, tuple[str, ...]] = {"aus": ("Action Units", "AUs"), "duration": ("Duration",)}
MICRO_REQUIRED: dict[str, tuple[str, ...]] = {
    "filename": ("Filename", "File name"),
    "emotion": ("Estimated Emotion", "Emotion"),
}
_FILENAME = re.compile(r"^(\d+_\d+)_\d+$")


def subject_id(number: int) -> str:
    """``samm-lv/006`` for subject 6."""
    return f"{DATASET}/{number:03d}"


def kind_of(value: object) -> str | None:
    """``"me"`` for ``Micro - 1/2`` (any spelling starting with micro), ``"mae"`` for ``Macro``."""
    text = as_text(value).lower()
    return "me" if text.startswith("micro") else "mae" if text.startswith("macro") else None


def find_sheet(root: Path) -> Path:
    """``SAMM_LongVideos_V*_Release.xlsx`` under ``root`` (the newest-named one if several)."""
    found = sorted(root.glob(SHEET_GLOB))
    if not found:
        raise AnnotationError("no SAMM long-video spreadsheet found", file=str(root / SHEET_GLOB))
    return found[-1]


def micro_emotions(sheet: Path) -> dict[tuple[str, str], str]:
    """(Filename, kind) -> emotion from SAMM's micro sheet; a row without ``Type`` is a micro
    one."""
    _, rows = find_table(read_workbook(sheet), MICRO_REQUIRED, {"type": ("Type",)}, file=sheet)
    out: dict[tuple[str, str], str] = {}
    for row in rows:
        name, emotion = as_text(row.values["filename"]), as_text(row.values["emotion"])
        if name and emotion:
            out[(name, kind_of(row.values.get("type")) or "me")] = emotion
    return out


def scan(
    root: Path | str, *, annotations: Path | str | None = None, emotions: Path | str | None = None
) -> LongVideoScan:
    """Scan a SAMM-LV copy; ``annotations`` overrides the long-video sheet, ``emotions`` the micro
    sheet the emotions come from (looked for under ``root`` when not given; none when absent)."""
    root = Path(root)
    frames = root / FRAMES_DIR
    if not frames.is_dir():
        raise DataRootError(f"{root}: no {FRAMES_DIR!r} folder")
    sheet = Path(annotations) if annotations is not None else find_sheet(root)
    _, rows = find_table(read_workbook(sheet), REQUIRED, OPTIONAL, file=sheet)
    micro = (
        Path(emotions)
        if emotions is not None
        else next(iter(sorted(root.glob(MICRO_SHEET_GLOB))), None)
    )
    joined = micro_emotions(micro) if micro is not None else {}
    folders: dict[Path, str] = {}
    for folder in child_dirs(frames):
        match = re.match(r"^(\d+)_\d+$", folder.name)
        if match:
            folders[folder] = subject_id(int(match.group(1)))
    problems: list[Problem] = []
    resolved = [
        found
        for row in rows
        if not row.problem
        for found in [_row(row, f"{sheet}:{row.row}", frames, joined, problems)]
        if found
    ]
    return assemble(DATASET, FPS, folders, resolved, problems)


def _row(
    row: SheetRow,
    where: str,
    frames: Path,
    joined: dict[tuple[str, str], str],
    problems: list[Problem],
) -> RowInterval | None:
    cells = row.values
    name = as_text(cells["filename"])
    match = _FILENAME.match(name)
    try:
        subject = subject_number(cells["subject"])
    except ValueError as exc:
        problems.append(quirk("bad-row", f"{DATASET} row {row.row}", where, str(exc)))
        return None
    notes = RowNotes(f"{subject_id(subject)}/{name}", where, problems)
    if match and int(match.group(1).split("_")[0]) != subject:
        notes.add("bad-row", f"Filename {name!r} is not of Subject {subject}")
        return None
    if not match or not (frames / match.group(1)).is_dir():
        notes.add("no-video", f"Filename {name!r} names no folder {frames}/<subject>_<video>")
        return None
    kind = kind_of(cells["type"])
    if kind is None:
        notes.add("unknown-type", f"Type {as_text(cells['type'])!r} is neither Micro nor Macro")
        return None
    found = notes.frames(
        cells, {"onset": "Onset", "apex": "Apex", "offset": "Offset"}, missing={"apex": (-1,)}
    )
    ordered = None if found is None else notes.ordered(*found, "Onset/Apex/Offset")
    if ordered is None:
        return None
    onset, apex, offset = ordered
    if apex is None:
        notes.add("apex-missing", f"Apex {as_text(cells['apex']) or 'blank'}: no apex")
    if onset <= 1 and (offset - onset + 1) > LONG_FROM_START_S * FPS:
        notes.add(
            "long-from-start",
            f"Onset {onset} with {offset - onset + 1} frames "
            f"({(offset - onset + 1) / FPS:.1f} s): the onset may be a placeholder",
        )
    emotion = joined.get((name, kind))
    return notes.interval(frames / match.group(1), kind, ordered, emotion, cells.get("aus"))

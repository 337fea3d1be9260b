"""SMIC-E long videos: ``{HS,VIS,NIR}_long/.../<Filename>/<frames>`` (found under the root or one
folder below it, such as ``SMIC-E_raw image/``) + ``SMIC-{X}-E_annotation.xlsx``.

The sheet's columns are ``Subject, Filename, OnsetF, OffsetF, Emotion, FirstF``; OnsetF and
OffsetF are absolute frame numbers, ``FirstF`` the number of the video's first frame. Frames are
renumbered from 0 at ``FirstF`` (frame files and intervals alike), as the public loaders do.
The data rows end at the first row whose OnsetF is no number; the text rows that follow are
ignored (one ``trailing-text`` problem names them). SMIC-E codes micro-expressions only, and no
apex. A ``FirstF`` that differs from the first frame file's number is a ``first-frame`` problem.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mer_prep.datasets._annotated import child_dirs, subject_number
from mer_prep.datasets._frames import IMAGE_SUFFIXES, frame_number
from mer_prep.datasets._sheets import as_text, find_table, read_workbook
from mer_prep.datasets.long_video import (
    LongInterval,
    LongVideoScan,
    RowInterval,
    RowNotes,
    assemble,
    quirk,
)
from mer_prep.errors import AnnotationError, DataRootError, InvalidArgumentError
from mer_prep.sample import Problem

DATASET = "smic-e-long"
FPS: dict[str, float] = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}
REQUIRED: dict[str, tuple[str, ...]] = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "onset": ("OnsetF",),
    "offset": ("OffsetF",),
    "first": ("FirstF",),
}
OPTIONAL: dict[str, tuple[str, ...]] = {"emotion": ("Emotion",)}
_SEARCH_DEPTH = 3  # modality folder / subject / video


def subject_id(number: int) -> str:
    """``smic-e-long/s01`` for subject 1."""
    return f"{DATASET}/s{number:02d}"


def modality_dir(root: Path, modality: str) -> Path:
    """``root/<X>_long`` or ``root/*/<X>_long`` (case-insensitive); DataRootError when absent."""
    if modality.upper() not in FPS:
        raise InvalidArgumentError(
            f"smic-e-long modality must be one of {sorted(FPS)}, got {modality!r}"
        )
    wanted = f"{modality.upper()}_LONG"
    for parent in [root, *child_dirs(root)]:
        for path in child_dirs(parent):
            if path.name.upper() == wanted:
                return path
    raise DataRootError(f"{root}: no SMIC-E {modality.upper()}_long folder")


def find_sheet(root: Path, modality: str) -> Path:
    """``SMIC-<X>-E_annotation.xlsx`` under ``root`` or one folder below it."""
    pattern = re.compile(rf"(?i)^smic-{modality}-e_annotation.*\.xlsx$")
    for parent in [root, *child_dirs(root)]:
        found = sorted(p for p in parent.iterdir() if p.is_file() and pattern.match(p.name))
        if found:
            return found[0]
    raise AnnotationError(
        "no SMIC-E annotation spreadsheet found",
        file=str(root / f"SMIC-{modality}-E_annotation.xlsx"),
    )


def video_folders(base: Path) -> list[Path]:
    """Folders under ``base`` (at most ``_SEARCH_DEPTH`` deep) that hold image files."""
    found, level = [], [base]
    for _ in range(_SEARCH_DEPTH):
        below = []
        for folder in level:
            for child in child_dirs(folder):
                with os.scandir(child) as entries:
                    images = any(
                        os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES for e in entries
                    )
                (found if images else below).append(child)
        level = below
    return found


def _subject_of(folder: Path) -> int | None:
    for text in (folder.parent.name, folder.name.split("_")[0]):
        try:
            return subject_number(text)
        except ValueError:
            continue
    return None


def scan(
    root: Path | str, *, modality: str = "HS", annotations: Path | str | None = None
) -> LongVideoScan:
    """Scan one modality of a SMIC-E copy's long videos."""
    root = Path(root)
    base = modality_dir(root, modality)
    sheet = Path(annotations) if annotations is not None else find_sheet(root, modality.upper())
    _, rows = find_table(read_workbook(sheet), REQUIRED, OPTIONAL, file=sheet)
    by_name: dict[str, Path] = {}
    folders: dict[Path, str] = {}
    for folder in video_folders(base):
        number = _subject_of(folder)
        if number is not None:
            folders[folder] = subject_id(number)
            by_name.setdefault(folder.name.lower(), folder)
    problems: list[Problem] = []
    resolved: list[RowInterval] = []
    shift: dict[Path, int] = {folder: _first_number(folder) for folder in folders}
    annotated: set[Path] = set()
    for index, row in enumerate(rows):
        where = f"{sheet}:{row.row}"
        if row.problem:
            continue
        if not _is_number(row.values["onset"]):
            rest = [r.row for r in rows[index:]]
            problems.append(
                quirk(
                    "trailing-text",
                    f"{DATASET} rows {rest[0]}-{rest[-1]}",
                    where,
                    f"{len(rest)} row(s) from row {rest[0]} hold text after the data: ignored",
                )
            )
            break
        found = _row(row.values, where, by_name, problems)
        if found is None:
            continue
        first, interval = found
        folder = by_name[as_text(row.values["filename"]).lower()]
        sample_id = f"{folders[folder]}/{folder.name}"
        if folder not in annotated:
            annotated.add(folder)
            if shift[folder] != first:
                problems.append(
                    quirk(
                        "first-frame",
                        sample_id,
                        where,
                        f"FirstF {first} but the first frame file "
                        f"of {folder} is number {shift[folder]}",
                    )
                )
            shift[folder] = first
        moved = LongInterval(
            kind="me",
            onset=interval.onset - shift[folder],
            apex=None,
            offset=interval.offset - shift[folder],
            emotion=interval.emotion,
            source=where,
        )
        resolved.append(RowInterval(folder, moved, sample_id))
    return assemble(DATASET, FPS[modality.upper()], folders, resolved, problems, shift=shift)


def _is_number(value: object) -> bool:
    try:
        float(as_text(value))
    except ValueError:
        return False
    return bool(as_text(value))


def _first_number(folder: Path) -> int:
    numbers = [
        n
        for e in os.scandir(folder)
        if (n := frame_number(e.name)) is not None
        and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
    ]
    return min(numbers, default=0)


def _ordered(
    notes: RowNotes, onset: int | None, offset: int | None, first: int | None
) -> tuple[int, int, int] | None:
    """``(onset, offset, first)`` when first <= onset <= offset; otherwise None, with a
    ``bad-row`` quirk."""
    if onset is None or offset is None or first is None or onset > offset or onset < first:
        notes.add("bad-row", f"OnsetF/OffsetF/FirstF {onset}/{offset}/{first} are not in order")
        return None
    return onset, offset, first


def _row(
    cells: dict, where: str, by_name: dict[str, Path], problems: list[Problem]
) -> tuple[int, LongInterval] | None:
    name = as_text(cells["filename"])
    notes = RowNotes(f"{DATASET}/{as_text(cells['subject'])}/{name}", where, problems)
    if name.lower() not in by_name:
        notes.add("no-video", f"Filename {name!r} names no video folder")
        return None
    found = notes.frames(cells, {"onset": "OnsetF", "offset": "OffsetF", "first": "FirstF"})
    ordered = None if found is None else _ordered(notes, *found)
    if ordered is None:
        return None
    onset, offset, first = ordered
    emotion = as_text(cells.get("emotion")) or None
    return first, LongInterval(
        kind="me", onset=onset, apex=None, offset=offset, emotion=emotion, source=where
    )

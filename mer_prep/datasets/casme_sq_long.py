"""CAS(ME)^2 long videos: ``rawpic/sNN/NN_<code><description>/imgN.jpg`` (30 fps), one folder
per recording, + ``CAS(ME)^2code_final.xlsx`` (or ``code_final.xlsx``).

The sheet is the one ``casme_sq`` reads for clips: a header-less main sheet (participant,
expression name such as ``anger1_1``, onset, apex, offset, AUs, emotion, type
``macro-expression`` / ``micro-expression``) and two naming sheets (participant -> subject
folder, video name -> 4-digit code); the expression name without its ``_N`` suffix names the
video. Quirk: ``offset == 0`` rows take the apex as their offset (``offset-zero``), as the public
loaders do. Every folder under ``rawpic/`` is a video, annotated or not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mer_prep.datasets._annotated import child_dirs, subject_number
from mer_prep.datasets._sheets import as_text
from mer_prep.datasets.casme_sq import SHEET_PATTERN, CodeSheets, read_code_sheets, video_code
from mer_prep.datasets.long_video import (
    LongVideoScan,
    RowInterval,
    RowNotes,
    assemble,
    quirk,
)
from mer_prep.errors import AnnotationError, DataRootError
from mer_prep.sample import Problem

DATASET = "casme-sq-long"
FPS = 30.0
SHEET_NAMES = ("CAS(ME)^2code_final.xlsx", "code_final.xlsx")
TYPES = {"micro": "me", "macro": "mae"}


def subject_id(number: int) -> str:
    """``casme-sq-long/s15`` for subject 15."""
    return f"{DATASET}/s{number:02d}"


def find_sheet(root: Path) -> Path:
    """The code spreadsheet under ``root``: ``CAS(ME)^2code_final.xlsx`` or ``code_final.xlsx``."""
    found = sorted(
        p
        for p in root.iterdir()
        if p.is_file() and (SHEET_PATTERN.match(p.name) or p.name.lower() == "code_final.xlsx")
    )
    if not found:
        raise AnnotationError(
            "no CAS(ME)^2 code spreadsheet found", file=str(root / SHEET_NAMES[0])
        )
    return found[0]


def video_folders(rawpic: Path) -> dict[Path, str]:
    """Every recording folder ``rawpic/sNN/*`` -> its subject id."""
    out: dict[Path, str] = {}
    for subject_dir in child_dirs(rawpic):
        try:
            number = subject_number(subject_dir.name)
        except ValueError:
            continue  # not a subject folder (notes, thumbnails)
        for folder in child_dirs(subject_dir):
            out[folder] = subject_id(number)
    return out


def scan(root: Path | str, *, annotations: Path | str | None = None) -> LongVideoScan:
    """Scan a CAS(ME)^2 copy's long videos; ``annotations`` overrides the sheet found under
    ``root``."""
    root = Path(root)
    rawpic = root / "rawpic"
    if not rawpic.is_dir():
        raise DataRootError(f"{root}: no CAS(ME)^2 'rawpic' folder")
    sheet = Path(annotations) if annotations is not None else find_sheet(root)
    codes = read_code_sheets(sheet)
    folders = video_folders(rawpic)
    problems: list[Problem] = []
    resolved: list[RowInterval] = []
    for number, cells in codes.rows:
        where = f"{sheet}:{number}"
        if "unread" in cells:
            shown = ", ".join(repr(as_text(v)) for _, v in cells["unread"][:3])
            problems.append(
                quirk(
                    "bad-row",
                    f"{DATASET} row {number}",
                    where,
                    f"row not read: nothing in the annotation columns, but it holds {shown}",
                )
            )
            continue
        found = _row(cells, where, rawpic, codes, problems)
        if found is not None:
            resolved.append(found)
    return assemble(DATASET, FPS, folders, resolved, problems)


def _row(
    cells: dict[str, Any],
    where: str,
    rawpic: Path,
    codes: CodeSheets,
    problems: list[Problem],
) -> RowInterval | None:
    name = as_text(cells["video"])
    try:
        subject = codes.subject(cells["participant"])
    except ValueError as exc:
        problems.append(quirk("bad-row", f"{DATASET} row {where}", where, str(exc)))
        return None
    notes = RowNotes(f"{subject_id(subject)}/{name}", where, problems)
    code = video_code(name, codes.videos)
    matches = (
        [
            p
            for p in child_dirs(rawpic / f"s{subject:02d}")
            if p.name.startswith(f"{subject:02d}_{code}")
        ]
        if code
        else []
    )
    if len(matches) != 1:
        what = (
            f"video name {name!r} is not in the video-code sheet"
            if code is None
            else f"{len(matches) or 'no'} folder(s) {rawpic}/s{subject:02d}/{subject:02d}_{code}*"
        )
        notes.add("no-video", what)
        return None
    kind = TYPES.get(as_text(cells["type"]).lower().split("-")[0].strip())
    if kind is None:
        notes.add(
            "unknown-type",
            f"expression type {as_text(cells['type'])!r} is neither micro nor macro",
        )
        return None
    found = notes.frames(
        cells, {"onset": "onset", "apex": "apex", "offset": "offset"}, missing={"apex": (0,)}
    )
    if found is None:
        return None
    onset, apex, offset = found
    if offset in (0, None):
        if apex is None:
            notes.add("bad-row", "offset is 0 and there is no apex to use instead")
            return None
        notes.add("offset-zero", f"offset 0: the apex {apex} is used as the offset")
        offset = apex
    ordered = notes.ordered(onset, apex, offset, "onset/apex/offset")
    if ordered is None:
        return None
    emotion = as_text(cells["emotion"]) or None
    return notes.interval(matches[0], kind, ordered, emotion, cells["aus"])

"""CAS(ME)^3 Part A whole takes as long videos: ``RGB/{Subject}/{Filename}/color/{n}.jpg`` (30 fps,
frames from 1; the root may sit at any level above ``RGB/``, as for ``casme3``) + the Part A ME
sheet ``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`` (Subject, Filename, Onset, Apex, Offset, AU,
Objective class, emotion).

Each take (subject x letter ``a``-``m``) is a video; its rows (several MEs per take in 397 of
the 860 rows) are its intervals, all micro-expressions (the macro-expression labels are not
read). Quirks as the clip adapter handles them: an onset of 0 where the frames start at 1 is
frame 1 (``onset-zero``), a row longer than ``MAX_DURATION_S`` is an annotation error
(``too-long``, dropped); take letters match folders ignoring case. Part C is not read here.
"""

from __future__ import annotations

from pathlib import Path

from mer_prep.datasets._annotated import child_dirs, find_folder
from mer_prep.datasets._sheets import SheetRow, as_text, find_table, read_workbook
from mer_prep.datasets.casme3 import (
    MAX_DURATION_S,
    OPTIONAL_A,
    REQUIRED_A,
    SHEET_A,
    find_part_a,
    find_sheet,
)
from mer_prep.datasets.long_video import (
    LongVideoScan,
    RowInterval,
    RowNotes,
    assemble,
)
from mer_prep.sample import Problem

DATASET = "casme3-long"
FPS = 30.0


def subject_id(name: str) -> str:
    """``casme3-long/spNO.1`` for subject ``spNO.1``."""
    return f"{DATASET}/{name}"


def take_folder(take: Path) -> Path:
    """The frames of a take: its ``color/`` folder, or the take folder itself."""
    color = find_folder(take, "color")
    return color if color.is_dir() else take


def scan(root: Path | str, *, annotations: Path | str | None = None) -> LongVideoScan:
    """Scan the Part A takes of a CAS(ME)^3 copy; ``annotations`` overrides the ME sheet."""
    root = Path(root)
    _, frames, _ = find_part_a(root, "takes")
    sheet = Path(annotations) if annotations is not None else find_sheet(root, SHEET_A, "Part A ME")
    _, rows = find_table(read_workbook(sheet), REQUIRED_A, OPTIONAL_A, file=sheet)
    folders: dict[Path, str] = {}
    names: dict[Path, str] = {}
    for subject_dir in child_dirs(frames):
        for take in child_dirs(subject_dir):
            folder = take_folder(take)
            folders[folder], names[folder] = subject_id(subject_dir.name), take.name
    problems: list[Problem] = []
    resolved = [
        found
        for row in rows
        if not row.problem
        for found in [_row(row, f"{sheet}:{row.row}", frames, problems)]
        if found
    ]
    return assemble(DATASET, FPS, folders, resolved, problems, names=names)


def _row(row: SheetRow, where: str, frames: Path, problems: list[Problem]) -> RowInterval | None:
    cells = row.values
    subject, take = as_text(cells["subject"]), as_text(cells["filename"])
    notes = RowNotes(f"{subject_id(subject)}/{take}", where, problems)
    plain = (
        subject
        and take
        and not any(c in subject + take for c in "/\\")
        and ".." not in (subject, take)
    )
    take_dir = find_folder(find_folder(frames, subject), take) if plain else None
    if take_dir is None or not take_dir.is_dir():
        notes.add("no-video", f"no take folder {frames}/{subject}/{take}")
        return None
    found = notes.frames(cells, {"onset": "Onset", "apex": "Apex", "offset": "Offset"})
    if found is None:
        return None
    onset, apex, offset = found
    if onset == 0:  # the frame files start at 1
        notes.add("onset-zero", "Onset 0 read as frame 1")
        onset, apex = 1, (1 if apex == 0 else apex)
    ordered = notes.ordered(onset, apex, offset, "Onset/Apex/Offset")
    if ordered is None:
        return None
    onset, apex, offset = ordered
    if (offset - onset + 1) / FPS > MAX_DURATION_S:
        notes.add(
            "too-long",
            f"onset..offset {onset}..{offset} lasts {(offset - onset + 1) / FPS:.1f} s, longer "
            f"than {MAX_DURATION_S:g} s: not a micro-expression",
        )
        return None
    emotion = as_text(cells["emotion"]) or None
    return notes.interval(take_folder(take_dir), "me", ordered, emotion, cells.get("aus"))

"""4DME adapter (TAFFC 2022): 267 micro-expressions, grey texture frames of 4D recordings.

Frames: ``gray_micro/{sub_ID}/{fold_name}/<frames>`` (frame file names *unconfirmed*: any
image whose name ends in its number). Sheet ``4DME_Labelling_Micro_release v1.xlsx`` (with the
space; any ``4DME_Labelling_Micro*.xlsx`` is found): sub_ID, fold_name, Emotion, Onset, Apex,
Offset, AUs. Quirks:

- frame numbers may be stored as floats (``12.0``); a fractional one is a problem;
- AU strings are ``+``-joined and may carry an ``AU`` prefix and a ``(k)`` suffix
  (``AU1+2(k)``), parsed by ``mer_prep.datasets.aus``;
- two rows are known to have swapped AU cells, which ones is not public: fix them with a
  corrections file (option ``corrections=``, see ``4dme_corrections.yaml``);
- sub_ID and fold_name are matched to folders ignoring case.

The frame rate is *unconfirmed* (``fps=`` overrides the default); the five emotion
categories' spellings are *unconfirmed* (schemes list positive, negative, surprise,
repression, others). Subjects are ``4dme/<sub_ID>``.
"""

from __future__ import annotations

from pathlib import Path

from mer_prep.datasets._annotated import (
    ClipRef,
    OneSheetAdapter,
    SheetLayout,
    child_dirs,
    find_folder,
    plain_name,
)
from mer_prep.datasets._sheets import BARE_FIRST, SheetRow, as_text, frame_columns
from mer_prep.errors import AnnotationError

DATASET = "4dme"
FPS = 60.0  # *unconfirmed*
SHEET_GLOB = "4DME_Labelling_Micro*.xlsx"
FRAME_DIRS = ("gray_micro", "4DME/gray_micro")

REQUIRED: dict[str, tuple[str, ...]] = {
    "subject": ("sub_ID", "Subject", "sub"),
    "filename": ("fold_name", "Filename", "folder"),
    **frame_columns(*BARE_FIRST),
    "emotion": ("Emotion", "Emotions", "Estimated Emotion"),
}
OPTIONAL: dict[str, tuple[str, ...]] = {"aus": ("AUs", "AU", "Action Units")}


def subject_id(name: str) -> str:
    """``4dme/S01`` for sub_ID ``S01``."""
    return f"{DATASET}/{name}"


def frames_root(root: Path) -> Path:
    """``root/gray_micro`` (or ``root`` itself when it is that folder)."""
    if root.name.lower() == "gray_micro":
        return root
    for name in FRAME_DIRS:
        folder = root
        for part in name.split("/"):
            folder = find_folder(folder, part)
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"{root}: no 4DME 'gray_micro' folder")


def find_sheet(root: Path) -> Path:
    for place in (root, root.parent):
        found = sorted(
            p
            for p in place.glob("*.xlsx")
            if p.match(SHEET_GLOB) or p.name.lower().startswith("4dme_labelling_micro")
        )
        if found:
            return found[-1]
    raise AnnotationError(
        "no 4DME labelling sheet found", file=str(root / "4DME_Labelling_Micro_release v1.xlsx")
    )


def sheet_layout(root: Path) -> SheetLayout:
    """The frames of a 4DME copy at ``root``: ``gray_micro/{sub_ID}/{fold_name}/``."""
    frames = frames_root(root)

    def resolve(row: SheetRow) -> ClipRef:
        subject = plain_name(as_text(row.values["subject"]), "sub_ID")
        name = as_text(row.values["filename"])
        if not name:
            raise ValueError("fold_name is blank")
        subject_dir = find_folder(frames, subject)
        folder = find_folder(subject_dir, name)
        sub = subject_dir.name if subject_dir.is_dir() else subject
        return ClipRef(
            subject_id(sub), folder.name if folder.is_dir() else name, folder, subject_dir
        )

    def on_disk() -> list[tuple[str, Path]]:
        return [(subject_id(s.name), c) for s in child_dirs(frames) for c in child_dirs(s)]

    return SheetLayout(frames, resolve, on_disk)


#: scan(root, *, annotations=None, corrections=None, fps=None): ``gray_micro/`` and the
#: labelling sheet; ``fps`` overrides the (unconfirmed) rate
scan = OneSheetAdapter(DATASET, FPS, find_sheet, REQUIRED, OPTIONAL, sheet_layout).scan

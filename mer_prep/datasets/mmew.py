"""MMEW adapter (TPAMI 2021): 300 micro-expressions, sheet ``MMEW_Micro_Exp.xlsx``.

Two layouts, both read (the root is the folder holding them, or the sheet's folder):

- official: ``S03/happiness/S03-01-002/1.jpg`` (subject / emotion / clip / frame);
- another distribution: ``Micro_Expression/{emotion}/{clip}/``.

Sheet columns: Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units, Estimated
Emotion, remarks. Quirks:

- the sheet says ``others`` where the folder says ``repression``: a clip is looked up in the
  emotion folder the sheet names and, failing that, in every emotion folder (of its subject);
  the folder's emotion is kept as ``extra["folder_emotion"]``, the sheet's is the label;
- some rows have an apex or offset outside the clip: a problem naming the row (a corrections
  file can fix them);
- Subject may be ``S03`` or ``3``; folders are ``S03`` (matched ignoring case).

The frame rate is *unconfirmed* (90 fps by default; ``fps=`` overrides it). Subjects are
``mmew/S03``.
"""

from __future__ import annotations

from pathlib import Path

from mer_prep.datasets._annotated import (
    ClipRef,
    OneSheetAdapter,
    SheetLayout,
    child_dirs,
    find_folder,
    subject_dirs,
    subject_number,
)
from mer_prep.datasets._sheets import CLIP_COLUMNS, SheetRow, as_text
from mer_prep.errors import AnnotationError

DATASET = "mmew"
FPS = 90.0  # *unconfirmed*
SHEET_NAME = "MMEW_Micro_Exp.xlsx"
FLAT_DIR = "Micro_Expression"
LAYOUTS = ("official", "flat")

REQUIRED: dict[str, tuple[str, ...]] = {**CLIP_COLUMNS, "emotion": ("Estimated Emotion", "Emotion")}
OPTIONAL: dict[str, tuple[str, ...]] = {
    "aus": ("Action Units", "AUs", "AU"),
    "remarks": ("remarks", "Remarks"),
}


def subject_id(number: int) -> str:
    """``mmew/S03`` for subject 3."""
    return f"{DATASET}/S{number:02d}"


def find_sheet(root: Path) -> Path:
    for place in (root, root.parent):
        found = sorted(p for p in place.glob("*.xlsx") if p.name.lower().startswith("mmew_micro"))
        if found:
            return found[-1]
    raise AnnotationError("no MMEW micro-expression sheet found", file=str(root / SHEET_NAME))


def layout(root: Path) -> tuple[str, Path]:
    """(``official`` or ``flat``, the folder holding subject folders or emotion folders)."""
    flat = find_folder(root, FLAT_DIR)
    if flat.is_dir():
        return "flat", flat
    if root.name.lower() == FLAT_DIR.lower():
        return "flat", root
    if subject_dirs(root):
        return "official", root
    nested = find_folder(root, "MMEW")
    if nested.is_dir() and subject_dirs(nested):
        return "official", nested
    raise FileNotFoundError(f"{root}: no MMEW subject folders (S03/...) and no {FLAT_DIR}/ folder")


def _locate(emotions_dir: Path, emotion: str, name: str) -> tuple[Path | None, str]:
    """The clip folder ``name`` under ``emotions_dir``: in the sheet's emotion folder first,
    then in any emotion folder (the others/repression mismatch)."""
    preferred = find_folder(emotions_dir, emotion) if emotion else None
    for folder in (
        [preferred] if preferred is not None and preferred.is_dir() else []
    ) + child_dirs(emotions_dir):
        clip = find_folder(folder, name)
        if clip.is_dir():
            return clip, folder.name
    return None, ""


def sheet_layout(root: Path) -> SheetLayout:
    """The clip folders of an MMEW copy at ``root``, in either layout (``layout``)."""
    kind, base = layout(root)

    def resolve(row: SheetRow) -> ClipRef:
        number = subject_number(row.values["subject"])
        name = as_text(row.values["filename"])
        if not name:
            raise ValueError("Filename is blank")
        emotion = as_text(row.values.get("emotion"))
        emotions_dir = base if kind == "flat" else find_folder(base, f"S{number:02d}")
        clip, folder_emotion = _locate(emotions_dir, emotion, name)
        if clip is None:  # reported as a missing clip folder, in the emotion the sheet names
            return ClipRef(
                subject_id(number), name, emotions_dir / (emotion or "unknown") / name, emotions_dir
            )
        extra = (("folder_emotion", folder_emotion),)
        return ClipRef(subject_id(number), clip.name, clip, clip.parent, extra=extra)

    def on_disk() -> list[tuple[str, Path]]:
        # the flat layout's folders do not name their subject
        return [
            (subject_id(n), c)
            for n, s in (subject_dirs(base) if kind != "flat" else [])
            for e in child_dirs(s)
            for c in child_dirs(e)
        ]

    return SheetLayout(base, resolve, on_disk, extra=(("layout", kind),))


#: scan(root, *, annotations=None, corrections=None, fps=None): either layout; ``fps``
#: overrides the (unconfirmed) frame rate
scan = OneSheetAdapter(DATASET, FPS, find_sheet, REQUIRED, OPTIONAL, sheet_layout).scan

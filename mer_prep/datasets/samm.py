"""SAMM adapter: ``NNN/NNN_a_b/NNN_xxxxx.jpg`` (grayscale, 200 fps) +
``SAMM_Micro_FACS_Codes_v2.xlsx``.

The coding sheet opens with a preamble of text rows; the header row is found by its column
names. Subject is an integer (6) while folders are zero-padded (``006``); a missing apex is
written -1 or left blank. Action-unit strings such as ``R14 or 14`` are kept verbatim.
"""

from __future__ import annotations

from pathlib import Path

from mer_prep.datasets._annotated import (
    RowScan,
    clip_folders,
    row_resolver,
    sheet_source,
    subject_dirs,
)
from mer_prep.datasets._sheets import CLIP_COLUMNS, frame_columns
from mer_prep.datasets.corrections import Corrector
from mer_prep.errors import AnnotationError
from mer_prep.sample import DatasetScan

DATASET = "samm"
FPS = 200.0
SHEET_GLOB = "SAMM_Micro_FACS_Codes*.xlsx"
MISSING_APEX = (-1,)

REQUIRED: dict[str, tuple[str, ...]] = {
    **CLIP_COLUMNS,
    **frame_columns("{Name} Frame", "{Name}Frame", "{Name}"),
    "emotion": ("Estimated Emotion", "Emotion"),
}
OPTIONAL: dict[str, tuple[str, ...]] = {"aus": ("Action Units", "AUs")}


def subject_id(number: int) -> str:
    """``samm/006`` for subject 6."""
    return f"{DATASET}/{number:03d}"


def find_sheet(root: Path) -> Path:
    """The FACS-codes spreadsheet under ``root`` (the newest-named one if several)."""
    found = sorted(root.glob(SHEET_GLOB))
    if not found:
        raise AnnotationError("no SAMM FACS-codes spreadsheet found", file=str(root / SHEET_GLOB))
    return found[-1]


def frames_root(root: Path) -> Path:
    """Folder holding the ``NNN`` subject folders: ``root`` itself or ``root/SAMM``."""
    nested = root / "SAMM"
    return nested if nested.is_dir() and not subject_dirs(root) else root


def scan(
    root: Path | str,
    *,
    annotations: Path | str | None = None,
    corrections: Path | str | None = None,
) -> DatasetScan:
    """Scan a SAMM copy (its ``NNN`` subject folders in ``root`` or ``root/SAMM``);
    ``annotations`` overrides the FACS-codes sheet found under ``root``; ``corrections``: a
    corrections file of the user's (``mer_prep.datasets.corrections``)."""
    corrector = Corrector.for_dataset(DATASET, user=corrections)
    root = Path(root)
    frames = frames_root(root)
    sheet = Path(annotations) if annotations is not None else find_sheet(root)
    source = sheet_source(sheet, REQUIRED, OPTIONAL)
    resolve = row_resolver(frames, lambda n: f"{n:03d}", subject_id)
    rows = RowScan(DATASET, FPS, frames, resolve, corrector, missing_apex=MISSING_APEX)
    return rows.dataset_scan([source], clip_folders(frames, subject_id))

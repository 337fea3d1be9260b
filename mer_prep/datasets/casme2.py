"""CASME II adapter: ``CASME2_RAW_selected/subNN/<clip>/imgN.jpg`` + ``CASME2-coding-*.xlsx``.

The cropped release (``Cropped/subNN/<clip>/reg_imgN.jpg``) is the ``variant="cropped"``.
Several versions of the coding sheet circulate; columns are found by name with the spellings
below, Subject may be ``1`` or ``sub01``, and apex ``/`` means the apex was not coded.
"""

from __future__ import annotations

from pathlib import Path

from mer_prep.datasets._annotated import RowScan, clip_folders, row_resolver, sheet_source
from mer_prep.datasets.corrections import Corrector
from mer_prep.errors import AnnotationError
from mer_prep.sample import DatasetScan

DATASET = "casme2"
FPS = 200.0
FRAME_DIRS: dict[str, tuple[str, ...]] = {
    "raw": ("CASME2_RAW_selected", "CASME2_RAW_selected/CASME2_RAW_selected", "CASME2_RAW"),
    "cropped": ("Cropped", "CASME2_Cropped/Cropped", "CASME2_Cropped"),
}
SHEET_GLOB = "CASME2-coding-*.xlsx"
SUFFIXES = (".jpg", ".jpeg", ".bmp", ".png")

REQUIRED: dict[str, tuple[str, ...]] = {
    "subject": ("Subject", "Subject ID"),
    "filename": ("Filename", "File name", "Clip"),
    "onset": ("OnsetFrame", "Onset Frame", "Onset", "OnsetF"),
    "apex": ("ApexFrame", "Apex Frame", "Apex", "ApexF"),
    "offset": ("OffsetFrame", "Offset Frame", "Offset", "OffsetF"),
    "emotion": ("Estimated Emotion", "Emotion", "Estimated emotion"),
}
OPTIONAL: dict[str, tuple[str, ...]] = {"aus": ("Action Units", "AUs", "AU")}


def subject_id(number: int) -> str:
    """``casme2/sub01`` for subject 1."""
    return f"{DATASET}/sub{number:02d}"


def frames_dir(root: Path, variant: str) -> Path:
    """The frame tree of ``variant`` under ``root``; FileNotFoundError naming what was tried."""
    if variant not in FRAME_DIRS:
        raise ValueError(f"casme2 variant must be one of {sorted(FRAME_DIRS)}, got {variant!r}")
    for name in FRAME_DIRS[variant]:
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(
        f"{root}: no CASME II {variant} frame folder (tried {', '.join(FRAME_DIRS[variant])})"
    )


def find_sheet(root: Path) -> Path:
    """The coding spreadsheet under ``root`` (the newest-named one if several are present)."""
    found = sorted(root.glob(SHEET_GLOB))
    if not found:
        raise AnnotationError("no CASME II coding spreadsheet found", file=str(root / SHEET_GLOB))
    return found[-1]


def scan(
    root: Path | str,
    *,
    variant: str = "raw",
    annotations: Path | str | None = None,
    corrections: Path | str | None = None,
) -> DatasetScan:
    """Scan a CASME II copy; ``annotations`` overrides the spreadsheet found under ``root``;
    ``corrections``: a corrections file of the user's (``mer_prep.datasets.corrections``)."""
    corrector = Corrector.for_dataset(DATASET, user=corrections)
    root = Path(root)
    frames_root = frames_dir(root, variant)
    sheet = Path(annotations) if annotations is not None else find_sheet(root)
    source = sheet_source(sheet, REQUIRED, OPTIONAL, extra=(("variant", variant),))
    resolve = row_resolver(frames_root, lambda n: f"sub{n:02d}", subject_id)
    rows = RowScan(DATASET, FPS, frames_root, resolve, corrector, suffixes=SUFFIXES)
    return rows.dataset_scan([source], clip_folders(frames_root, subject_id))

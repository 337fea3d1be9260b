"""CASME I adapter: ``Section A|B/subNN/EPxx_y/*.jpg`` (60 fps) + one coding sheet per section.

Some rows of the coding sheets need fixing. The fixes are data: rules in ``casme1_fixes.yaml``
(an OffsetF of 0 or blank means the last frame) and per-sample corrections in
``casme1_corrections.yaml`` (``mer_prep.datasets.corrections``: sample id, field, old, new,
reason; refused when the sheet holds neither value). A fixes file's older per-cell
``corrections`` entries (section/subject/filename, optional ``was``) are still read. Every fix
applied is recorded in ``Sample.extra`` under ``"fix"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from mer_prep.datasets._annotated import (
    ClipRef,
    Fixer,
    RawTiming,
    RowScan,
    Timing,
    child_dirs,
    clip_folders,
    row_resolver,
    sheet_source,
    subject_number,
)
from mer_prep.datasets._sheets import SheetRow, as_text
from mer_prep.datasets.corrections import Corrector
from mer_prep.errors import AnnotationError
from mer_prep.sample import DatasetScan

DATASET = "casme1"
FPS = 60.0
DEFAULT_FIXES = Path(__file__).with_name("casme1_fixes.yaml")
_SECTION_DIR = re.compile(r"(?i)^section[\s_-]*([a-z])$")
_SECTION_SHEET = re.compile(
    r"(?i)(?:^|[^a-z])([a-z])[\s_-]*section|section[\s_-]*([a-z])(?:[^a-z]|$)"
)

REQUIRED: dict[str, tuple[str, ...]] = {
    "subject": ("Subject",),
    "filename": ("Filename", "File name"),
    "onset": ("OnsetF", "Onset Frame", "OnsetFrame", "Onset"),
    "offset": ("OffsetF", "Offset Frame", "OffsetFrame", "Offset"),
    "emotion": ("Emotion", "Estimated Emotion"),
}
OPTIONAL: dict[str, tuple[str, ...]] = {
    "apex": ("ApexF1", "ApexF", "Apex Frame", "Apex"),
    "aus": ("AUs", "Action Units", "AU"),
}


@dataclass(frozen=True)
class Correction:
    section: str
    subject: int
    filename: str
    field: str
    value: int
    was: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class Fixes:
    """The rules and per-cell corrections of a fixes YAML."""

    zero_offset: str = "last_frame"
    blank_offset: str = "last_frame"
    corrections: tuple[Correction, ...] = ()


def load_fixes(path: Path | str = DEFAULT_FIXES) -> Fixes:
    """Parse a fixes YAML (format documented in ``casme1_fixes.yaml``)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    rules = data.get("rules") or {}
    corrections = []
    for entry in data.get("corrections") or []:
        if entry.get("field") not in ("onset", "apex", "offset"):
            raise ValueError(f"{path}: correction {entry} must name field onset, apex or offset")
        corrections.append(
            Correction(
                section=str(entry["section"]).upper(),
                subject=int(entry["subject"]),
                filename=str(entry["filename"]),
                field=entry["field"],
                value=int(entry["value"]),
                was=entry.get("was"),
                reason=str(entry.get("reason", "")),
            )
        )
    return Fixes(
        zero_offset=rules.get("zero_offset", "last_frame"),
        blank_offset=rules.get("blank_offset", "last_frame"),
        corrections=tuple(corrections),
    )


def subject_id(number: int) -> str:
    """``casme1/sub01`` for subject 1."""
    return f"{DATASET}/sub{number:02d}"


def section_dirs(root: Path) -> dict[str, Path]:
    """Section letter -> its frame folder (``Section A``)."""
    out = {}
    for path in child_dirs(root):
        match = _SECTION_DIR.match(path.name)
        if match:
            out[match.group(1).upper()] = path
    return out


def find_sheet(root: Path, section: str, folder: Path) -> Path:
    """The coding sheet of ``section``: an .xlsx naming the section, in ``root`` or its folder."""
    for place in (root, folder):
        for path in sorted(place.glob("*.xlsx")):
            match = _SECTION_SHEET.search(path.stem)
            if match and (match.group(1) or match.group(2)).upper() == section:
                return path
    raise AnnotationError(
        f"no coding spreadsheet for Section {section}",
        file=str(root / f"CASME_{section}_Section_coding.xlsx"),
    )


def _fixer(fixes: Fixes, section: str) -> Fixer:
    def fix(row: SheetRow, _ref: ClipRef, raw: RawTiming, numbers: list[int]) -> Timing:
        values = {"onset": raw.onset, "apex": raw.apex, "offset": raw.offset}
        notes: list[str] = []
        number, name = subject_number(row.values["subject"]), as_text(row.values["filename"])
        for c in fixes.corrections:
            if (c.section, c.subject, c.filename) != (section, number, name):
                continue
            if c.was is not None and values[c.field] != c.was:
                continue
            notes.append(
                f"{c.field} {values[c.field]} -> {c.value} (correction: {c.reason or 'listed'})"
            )
            values[c.field] = c.value
        offset = values["offset"]
        rule = fixes.blank_offset if offset is None else fixes.zero_offset if offset == 0 else None
        if rule == "last_frame" and numbers:
            notes.append(
                f"offset {'blank' if offset is None else 0} -> last frame {numbers[-1]} (rule)"
            )
            values["offset"] = numbers[-1]
        if values["onset"] is None or values["offset"] is None:
            raise ValueError("onset or offset is blank")
        return Timing(values["onset"], values["apex"], values["offset"], tuple(notes))

    return fix


def scan(
    root: Path | str,
    *,
    fixes: Path | str | Fixes | None = None,
    annotations: Mapping[str, Path | str] | None = None,
    corrections: Path | str | None = None,
) -> DatasetScan:
    """Scan a CASME I copy.

    fixes: a fixes YAML (or parsed Fixes) instead of the packaged one (its rules; its legacy
    ``corrections`` entries still work). annotations: section letter -> coding sheet, instead
    of the sheets found under ``root``. corrections: a corrections file of the user's, applied
    after the packaged ``casme1_corrections.yaml`` (``mer_prep.datasets.corrections``).
    """
    corrector = Corrector.for_dataset(DATASET, user=corrections)
    root = Path(root)
    fixes = fixes if isinstance(fixes, Fixes) else load_fixes(fixes or DEFAULT_FIXES)
    sections = section_dirs(root)
    if not sections:
        raise FileNotFoundError(f"{root}: no 'Section A'/'Section B' frame folders")
    samples, problems = [], []
    for section, folder in sorted(sections.items()):
        sheet = (
            Path(annotations[section])
            if annotations and section in annotations
            else find_sheet(root, section, folder)
        )
        source = sheet_source(sheet, REQUIRED, OPTIONAL, (("section", section),))
        resolve = row_resolver(folder, lambda n: f"sub{n:02d}", subject_id)
        rows = RowScan(DATASET, FPS, folder, resolve, corrector, fixer=_fixer(fixes, section))
        found = rows.dataset_scan([source], clip_folders(folder, subject_id))
        samples += found.samples
        problems += found.problems
    return DatasetScan(samples, problems, corrector.records())

"""Annotation spreadsheets in each dataset's real sheet structure, written with openpyxl.

Rows come in as plain tuples in the dataset's column order; these functions only add the
structure around them (preamble, header or its absence, code sheets, file name).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mer_prep.errors import InvalidArgumentError

_CASME2_COLUMNS = (
    "Subject",
    "Filename",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    "Action Units",
    "Estimated Emotion",
)
CASME2_VERSIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    # the widely circulated sheet: integer Subject, "Estimated Emotion"
    "20140508": ("CASME2-coding-20140508.xlsx", _CASME2_COLUMNS),
    # a re-saved variant: title row, "sub01" subjects, spaced names, "Emotion", extra columns
    "relabelled": (
        "CASME2-coding-relabelled.xlsx",
        (
            "Subject",
            "Filename",
            "Onset Frame",
            "Apex Frame",
            "Offset Frame",
            "Duration",
            "AU",
            "Objective Class",
            "Emotion",
        ),
    ),
}

SAMM_FILE = "SAMM_Micro_FACS_Codes_v2.xlsx"
SAMM_COLUMNS = (
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Duration",
    "Type",
    "Action Units",
    "Notes",
    "Estimated Emotion",
)
SAMM_PREAMBLE: tuple[tuple[Any, ...], ...] = (
    ("SAMM - Spontaneous Actions and Micro-Movements",),
    ("FACS coding of the micro-movements, version 2",),
    (),
    ("Subject: participant number (folder names are zero-padded to three digits)",),
    ("Filename: folder holding the frames of the movement",),
    ("Inducement Code: stimulus shown when the movement occurred",),
    ("Onset / Apex / Offset Frame: frame numbers within the participant's recording",),
    ("Apex Frame -1: no single apex could be coded",),
    ("Type: Micro - 1/2 for movements shorter than half a second",),
    ("Action Units: FACS codes; 'or' separates alternatives the coders could not decide between",),
    ("Estimated Emotion: emotion suggested by the AUs and the stimulus",),
    (),
    (None, None, "Coded by two certified FACS coders"),
)

CASME1_COLUMNS = (
    "Subject",
    "Filename",
    "OnsetF",
    "ApexF1",
    "ApexF2",
    "OffsetF",
    "Duration",
    "AUs",
    "Emotion",
)
CASME_SQ_FILE = "CAS(ME)^2code_final.xlsx"


def _save(path: Path, sheets: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def casme2_sheet(root: Path, rows: Sequence[tuple[Any, ...]], version: str = "20140508") -> Path:
    """``CASME2-coding-<version>.xlsx``; rows are (subject, filename, onset, apex, offset, aus,
    emotion)."""
    if version not in CASME2_VERSIONS:
        raise InvalidArgumentError(
            f"CASME II spreadsheet version must be one of {sorted(CASME2_VERSIONS)}"
        )
    name, header = CASME2_VERSIONS[version]
    if version == "20140508":
        table = [header, *rows]
    else:
        table = [("CASME II coding (re-saved)",), header]
        for subject, clip, onset, apex, offset, aus, emotion in rows:
            table.append(
                (
                    f"sub{subject:02d}",
                    clip,
                    onset,
                    apex,
                    offset,
                    offset - onset + 1,
                    aus,
                    _objective_class(emotion),
                    emotion,
                )
            )
    return _save(root / name, [("Sheet1", table)])


def _objective_class(emotion: str) -> str:
    # placeholder for the objective-class column some re-saved sheets carry; adapters ignore it
    return {"happiness": "I", "surprise": "V", "disgust": "III", "repression": "VI"}.get(
        emotion.lower(), "VII"
    )


def samm_sheet(root: Path, rows: Sequence[tuple[Any, ...]]) -> Path:
    """SAMM codes with its preamble; rows are (subject, filename, onset, apex, offset, aus,
    emotion)."""
    table: list[Sequence[Any]] = [*SAMM_PREAMBLE, SAMM_COLUMNS]
    for subject, clip, onset, apex, offset, aus, emotion in rows:
        kind = "Micro - 1/2" if offset - onset < 100 else "Macro"
        table.append(
            (
                subject,
                clip,
                clip.split("_")[1] if "_" in clip else "",
                onset,
                apex,
                offset,
                offset - onset + 1,
                kind,
                aus,
                "",
                emotion,
            )
        )
    return _save(root / SAMM_FILE, [("FACS_Movement_Only", table)])


def casme1_sheet(root: Path, section: str, rows: Sequence[tuple[Any, ...]]) -> Path:
    """``CASME_<section>_Section_coding.xlsx``; rows are (subject, filename, onset, apex, offset,
    aus, emotion)."""
    table: list[Sequence[Any]] = [CASME1_COLUMNS]
    for subject, clip, onset, apex, offset, aus, emotion in rows:
        table.append(
            (subject, clip, onset, apex, None, offset, (offset or onset) - onset + 1, aus, emotion)
        )
    return _save(root / f"CASME_{section}_Section_coding.xlsx", [(f"Section {section}", table)])


def casme_sq_sheet(
    root: Path,
    rows: Sequence[tuple[Any, ...]],
    videos: Sequence[tuple[str, str]],
    subjects: Sequence[tuple[int, int]],
) -> Path:
    """``CAS(ME)^2code_final.xlsx``: header-less main sheet plus the two naming-rule sheets.

    rows: (participant, video name, onset, apex, offset, aus, emotion, expression type);
    videos: (code, video name) such as ("0101", "disgust1"); subjects: (participant, subject).
    """
    return _save(
        root / CASME_SQ_FILE,
        [
            ("Sheet1", rows),
            ("naming rule1", [(code, name) for code, name in videos]),
            ("naming rule2", list(subjects)),
        ],
    )


# --- the newer datasets (docs/datasets.md) -------------------------------------------------------

CASME3_A_FILE = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
#: the timing headers of CAS(ME)^3, 4DME and SAMM-LV (no "Frame" in them)
BARE_TIMING = ("Onset", "Apex", "Offset")
CASME3_A_COLUMNS = ("Subject", "Filename", *BARE_TIMING, "AU", "Objective class", "emotion")
CASME3_C_FILE = "CAS(ME)3_part_C_ME.xlsx"
CASME3_C_COLUMNS = ("sub", "count", "onset", "offset", "au", "emotion")
DFME_FILES = {
    "train": "training_full_with_AU.xlsx",
    "testA": "testA_full_with_AU.xlsx",
    "testB": "testB_full_with_AU.xlsx",
}
DFME_COLUMNS = (
    "Subject",
    "Filename",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    "Emotion",
    "EmotionId",
    "Fps",
    "AU",
)
FOURD_FILE = "4DME_Labelling_Micro_release v1.xlsx"  # the space is the release's
FOURD_COLUMNS = ("sub_ID", "fold_name", "Emotion", *BARE_TIMING, "AUs")
MMEW_FILE = "MMEW_Micro_Exp.xlsx"
MMEW_COLUMNS = (*_CASME2_COLUMNS, "remarks")  # MMEW's sheet is CASME II's, plus remarks
MANIFEST_COLUMNS = ("subject", "clip", "path", "onset", "apex", "offset", "label", "fps", "aus")


def casme3_a_sheet(root: Path, rows: Sequence[tuple[Any, ...]]) -> Path:
    """The Part A ME sheet; rows are (subject, filename, onset, apex, offset, au, objective,
    emotion)."""
    return _save(root / CASME3_A_FILE, [("Sheet1", [CASME3_A_COLUMNS, *rows])])


def casme3_c_sheet(root: Path, rows: Sequence[tuple[Any, ...]]) -> Path:
    """The Part C sheet (``mockCrimeME``, no apex); rows are (sub, count, onset, offset, au,
    emotion)."""
    return _save(root / CASME3_C_FILE, [("mockCrimeME", [CASME3_C_COLUMNS, *rows])])


def dfme_sheets(root: Path, rows: dict[str, Sequence[tuple[Any, ...]]]) -> list[Path]:
    """The three split sheets; ``rows`` maps train/testA/testB to rows in DFME_COLUMNS order."""
    return [
        _save(root / DFME_FILES[part], [("Sheet1", [DFME_COLUMNS, *rows.get(part, ())])])
        for part in DFME_FILES
    ]


def fourd_sheet(root: Path, rows: Sequence[tuple[Any, ...]]) -> Path:
    """4DME's labelling sheet; frame numbers are stored as floats (``31.0``), as in the release."""
    path = _save(root / FOURD_FILE, [("Sheet1", [FOURD_COLUMNS, *rows])])
    return _stored_as_floats(path, "DEF")


def _stored_as_floats(path: Path, columns: str) -> Path:
    """Rewrite whole numbers of ``columns`` as ``31.0`` in the file itself (openpyxl writes
    ``31``; a sheet saved by other tools keeps the ``.0`` and reads back as a float)."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    pattern = re.compile(rb'(<c r="[' + columns.encode() + rb']\d+"[^>]*><v>)(-?\d+)(</v>)')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in entries:
            if info.filename.startswith("xl/worksheets/"):
                data = pattern.sub(rb"\1\2.0\3", data)
            target.writestr(info, data)
    return path


def mmew_sheet(root: Path, rows: Sequence[tuple[Any, ...]]) -> Path:
    """MMEW's micro-expression sheet; rows in MMEW_COLUMNS order."""
    return _save(root / MMEW_FILE, [("Sheet1", [MMEW_COLUMNS, *rows])])


def manifest_file(root: Path, rows: Sequence[tuple[Any, ...]], *, xlsx: bool = False) -> Path:
    """``manifest.csv`` (or ``.xlsx``); rows in MANIFEST_COLUMNS order."""
    if xlsx:
        return _save(root / "manifest.xlsx", [("manifest", [MANIFEST_COLUMNS, *rows])])
    import csv

    path = root / "manifest.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
    return path

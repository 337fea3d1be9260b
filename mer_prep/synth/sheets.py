"""Annotation spreadsheets in each dataset's real sheet structure, written with openpyxl.

Rows come in as plain tuples in the dataset's column order; these functions only add the
structure around them (preamble, header or its absence, code sheets, file name).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mer_prep.errors import InvalidArgumentError

CASME2_VERSIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    # the widely circulated sheet: integer Subject, "Estimated Emotion"
    "20140508": ("CASME2-coding-20140508.xlsx",
                 ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                  "Estimated Emotion")),
    # a re-saved variant: title row, "sub01" subjects, spaced names, "Emotion", extra columns
    "relabelled": ("CASME2-coding-relabelled.xlsx",
                   ("Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
                    "AU", "Objective Class", "Emotion")),
}

SAMM_FILE = "SAMM_Micro_FACS_Codes_v2.xlsx"
SAMM_COLUMNS = ("Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
                "Duration", "Type", "Action Units", "Notes", "Estimated Emotion")
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

CASME1_COLUMNS = ("Subject", "Filename", "OnsetF", "ApexF1", "ApexF2", "OffsetF", "Duration", "AUs", "Emotion")
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
    """``CASME2-coding-<version>.xlsx``; rows are (subject, filename, onset, apex, offset, aus, emotion)."""
    if version not in CASME2_VERSIONS:
        raise InvalidArgumentError(f"CASME II spreadsheet version must be one of {sorted(CASME2_VERSIONS)}")
    name, header = CASME2_VERSIONS[version]
    if version == "20140508":
        table = [header, *rows]
    else:
        table = [("CASME II coding (re-saved)",), header]
        for subject, clip, onset, apex, offset, aus, emotion in rows:
            table.append((f"sub{subject:02d}", clip, onset, apex, offset, offset - onset + 1, aus,
                          _objective_class(emotion), emotion))
    return _save(root / name, [("Sheet1", table)])


def _objective_class(emotion: str) -> str:
    # placeholder for the objective-class column some re-saved sheets carry; adapters ignore it
    return {"happiness": "I", "surprise": "V", "disgust": "III", "repression": "VI"}.get(emotion.lower(), "VII")


def samm_sheet(root: Path, rows: Sequence[tuple[Any, ...]]) -> Path:
    """SAMM codes with its preamble; rows are (subject, filename, onset, apex, offset, aus, emotion)."""
    table: list[Sequence[Any]] = [*SAMM_PREAMBLE, SAMM_COLUMNS]
    for subject, clip, onset, apex, offset, aus, emotion in rows:
        kind = "Micro - 1/2" if offset - onset < 100 else "Macro"
        table.append((subject, clip, clip.split("_")[1] if "_" in clip else "", onset, apex, offset,
                      offset - onset + 1, kind, aus, "", emotion))
    return _save(root / SAMM_FILE, [("FACS_Movement_Only", table)])


def casme1_sheet(root: Path, section: str, rows: Sequence[tuple[Any, ...]]) -> Path:
    """``CASME_<section>_Section_coding.xlsx``; rows are (subject, filename, onset, apex, offset, aus, emotion)."""
    table: list[Sequence[Any]] = [CASME1_COLUMNS]
    for subject, clip, onset, apex, offset, aus, emotion in rows:
        table.append((subject, clip, onset, apex, None, offset, (offset or onset) - onset + 1, aus, emotion))
    return _save(root / f"CASME_{section}_Section_coding.xlsx", [(f"Section {section}", table)])


def casme_sq_sheet(root: Path, rows: Sequence[tuple[Any, ...]], videos: Sequence[tuple[str, str]],
                   subjects: Sequence[tuple[int, int]]) -> Path:
    """``CAS(ME)^2code_final.xlsx``: header-less main sheet plus the two naming-rule sheets.

    rows: (participant, video name, onset, apex, offset, aus, emotion, expression type);
    videos: (code, video name) such as ("0101", "disgust1"); subjects: (participant, subject).
    """
    return _save(root / CASME_SQ_FILE, [("Sheet1", rows),
                                        ("naming rule1", [(code, name) for code, name in videos]),
                                        ("naming rule2", list(subjects))])

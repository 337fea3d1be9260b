"""Bad input never aborts a scan: each bad row or folder is a Problem naming file and sample."""

from __future__ import annotations

import shutil
from pathlib import Path

import openpyxl
import pytest
from synth_clips import clip, set_cell

from mer_prep.datasets import scan_dataset
from mer_prep.synth.layouts import write_layout

# dataset: (sheet file, column names for filename/subject/onset/apex/emotion, clip-name pattern)
LAYOUTS = {
    "casme2": (
        "CASME2-coding-20140508.xlsx",
        {
            "filename": "Filename",
            "subject": "Subject",
            "onset": "OnsetFrame",
            "apex": "ApexFrame",
            "emotion": "Estimated Emotion",
        },
        "casme2/sub{s:02d}",
        "EP{i:02d}_01",
    ),
    "samm": (
        "SAMM_Micro_FACS_Codes_v2.xlsx",
        {
            "filename": "Filename",
            "subject": "Subject",
            "onset": "Onset Frame",
            "apex": "Apex Frame",
            "emotion": "Estimated Emotion",
        },
        "samm/{s:03d}",
        "{s:03d}_{i}_1",
    ),
    "casme1": (
        "CASME_A_Section_coding.xlsx",
        {
            "filename": "Filename",
            "subject": "Subject",
            "onset": "OnsetF",
            "apex": "ApexF1",
            "emotion": "Emotion",
        },
        "casme1/sub{s:02d}",
        "EP{i:02d}_1",
    ),
}
CASES = [
    "good",
    "missing folder",
    "leaves root",
    "onset after offset",
    "apex outside",
    "no annotation",
    "unknown emotion",
    "missing frame",
    "bad subject",
    "also good",
]


@pytest.mark.parametrize("dataset", sorted(LAYOUTS))
def test_bad_rows_and_folders_become_problems(tmp_path: Path, dataset: str) -> None:
    sheet_name, col, subject_fmt, clip_fmt = LAYOUTS[dataset]
    emotion = {"casme2": "disgust", "samm": "Anger", "casme1": "disgust"}[dataset]
    # one subject per case, all in CASME I's Section A (subjects 1-7) where possible
    subjects = {case: (i % 7) + 1 for i, case in enumerate(CASES)}
    names = {case: clip_fmt.format(s=subjects[case], i=i) for i, case in enumerate(CASES)}
    ids = {case: f"{subject_fmt.format(s=subjects[case])}/{names[case]}" for case in CASES}
    clips = [
        clip(subjects[c], emotion, n=6, onset=1, apex=3, offset=4, clip=names[c]) for c in CASES
    ]
    written = {c: w for c, w in zip(CASES, write_layout(dataset, tmp_path, clips), strict=True)}
    sheet = tmp_path / sheet_name
    row = {c: set_cell(sheet, names[c], col["emotion"], emotion) for c in CASES}  # row numbers

    shutil.rmtree(Path(written["missing folder"].frame_paths[0]).parent)
    set_cell(sheet, names["leaves root"], col["filename"], "../../etc")
    set_cell(
        sheet, names["onset after offset"], col["onset"], written["onset after offset"].offset + 1
    )
    set_cell(sheet, names["apex outside"], col["apex"], 999)
    set_cell(sheet, names["unknown emotion"], col["emotion"], "bewildered")
    Path(written["missing frame"].frame_paths[3]).unlink()
    set_cell(sheet, names["bad subject"], col["subject"], "nobody")
    book = openpyxl.load_workbook(sheet)
    book.worksheets[0].delete_rows(row["no annotation"])
    book.save(sheet)
    row = {c: r - (r > row["no annotation"]) for c, r in row.items()}

    scan = scan_dataset(dataset, tmp_path)
    assert sorted(s.sample_id for s in scan) == sorted([ids["good"], ids["also good"]])
    problems = {p.sample_id: p for p in scan.problems}

    def problem(case: str, sample_id: str | None = None, *, in_sheet: bool = True):
        found = problems[sample_id or ids[case]]
        if in_sheet:
            assert found.file.startswith(f"{sheet}:{row[case]}"), (case, found)
        return found

    assert "does not exist" in problem("missing folder").message
    escaped = f"{subject_fmt.format(s=subjects['leaves root'])}/../../etc"
    assert "leaves the dataset root" in problem("leaves root", escaped).message
    assert "onset 6 is after offset 5" in problem("onset after offset").message
    assert "apex 999 is outside the clip" in problem("apex outside").message
    assert "unknown emotion label 'bewildered'" in problem("unknown emotion").message
    assert "1 frame(s) missing inside onset..offset: 4" in problem("missing frame").message
    bad_subject = next(p for p in scan.problems if p.file == f"{sheet}:{row['bad subject']}")
    assert "'nobody' is not a subject number" in bad_subject.message
    assert names["bad subject"] in bad_subject.sample_id
    unannotated = problem("no annotation", in_sheet=False)
    assert unannotated.file == str(Path(written["no annotation"].frame_paths[0]).parent)
    assert unannotated.message == "clip folder has no annotation row"
    # the ../../etc row and the bad-subject row also leave their real folders unannotated
    assert "no annotation row" in problems[ids["leaves root"]].message
    assert len(scan.problems) == 10


def test_smic_bad_folders(tmp_path: Path) -> None:
    written = write_layout(
        "smic",
        tmp_path,
        [clip(1, "negative"), clip(1, "angry"), clip(2, "surprise"), clip(3, "positive")],
    )
    Path(written[2].frame_paths[1]).unlink()  # a hole inside the clip
    for frame in written[3].frame_paths:  # an empty clip folder
        Path(frame).unlink()
    scan = scan_dataset("smic", tmp_path)
    assert [s.sample_id for s in scan] == ["smic/s01/s01_ne_01"]
    problems = {p.sample_id: p for p in scan.problems}
    assert sorted(problems) == ["smic/s01/s01_ang_01", "smic/s02/s02_sur_01", "smic/s03/s03_po_01"]
    assert "unknown emotion label 'angry'" in problems["smic/s01/s01_ang_01"].message
    assert problems["smic/s01/s01_ang_01"].file.endswith("HS/s01/micro/angry/s01_ang_01")
    assert "frame(s) missing" in problems["smic/s02/s02_sur_01"].message
    assert problems["smic/s03/s03_po_01"].message == "no frame files in the clip folder"

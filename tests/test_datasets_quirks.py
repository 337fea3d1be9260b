"""The quirks of each real annotation file, reproduced on synthetic look-alikes."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from layout_helpers import casme_sq_layout
from synth_clips import assert_clean_scan, assert_scan_matches, by_id, clip, set_cell

from mer_prep.datasets import scan_dataset
from mer_prep.errors import AnnotationError
from mer_prep.synth.layouts import write_layout

SAMM_SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"
CASME_SQ_SHEET = "CAS(ME)^2code_final.xlsx"


def test_samm_header_found_after_preamble(tmp_path: Path) -> None:
    clips = [
        clip(6, "Anger", action_units="R14 or 14", first_frame_number=5562),
        clip(6, "Contempt", apex=None),
        clip(28, "Happiness", action_units="6+12"),
    ]
    written = write_layout("samm", tmp_path, clips)
    rows = list(
        openpyxl.load_workbook(tmp_path / SAMM_SHEET).worksheets[0].iter_rows(values_only=True)
    )
    header = next(i for i, r in enumerate(rows) if r[:2] == ("Subject", "Filename"))
    assert header >= 12 and rows[header + 1][0] == 6  # integer subject, folder is 006
    scan = scan_dataset("samm", tmp_path)
    samples = assert_clean_scan(scan, written)
    first = samples["samm/006/006_1_1"]
    assert (first.onset, first.apex, first.offset) == (5563, 5565, 5566)
    assert first.action_units == "R14 or 14"
    assert first.source.endswith(f"{SAMM_SHEET}:{header + 2}")
    assert samples["samm/006/006_2_1"].apex is None  # written as -1
    assert samples["samm/028/028_1_1"].subject == "samm/028"


def test_samm_blank_apex_is_missing(tmp_path: Path) -> None:
    write_layout("samm", tmp_path, [clip(6, "Anger"), clip(7, "Fear")])
    set_cell(tmp_path / SAMM_SHEET, "006_1_1", "Apex Frame", None)
    assert by_id(scan_dataset("samm", tmp_path).samples)["samm/006/006_1_1"].apex is None


def test_samm_header_missing_a_column_raises(tmp_path: Path) -> None:
    write_layout("samm", tmp_path, [clip(6, "Anger")])
    row = set_cell(tmp_path / SAMM_SHEET, "Onset Frame", "Onset Frame", "Start")
    with pytest.raises(AnnotationError) as err:
        scan_dataset("samm", tmp_path)
    assert err.value.row == row and "onset" in str(err.value) and SAMM_SHEET in err.value.file


def test_unreadable_annotation_file_raises(tmp_path: Path) -> None:
    write_layout("casme2", tmp_path, [clip(1, "disgust")])
    sheet = tmp_path / "CASME2-coding-20140508.xlsx"
    sheet.write_bytes(b"not a spreadsheet")
    with pytest.raises(AnnotationError, match="cannot read spreadsheet"):
        scan_dataset("casme2", tmp_path)
    sheet.unlink()
    with pytest.raises(AnnotationError, match="no CASME II coding spreadsheet"):
        scan_dataset("casme2", tmp_path)


@pytest.mark.parametrize("version", ["20140508", "relabelled"])
def test_casme2_spreadsheet_versions(tmp_path: Path, version: str) -> None:
    clips = [
        clip(1, "happiness", clip="EP06_02_01"),
        clip(1, "disgust", clip="EP09f", apex=None),
        clip(17, "repression", clip="EP01_2"),
        clip(17, "others", first_frame_number=46),
    ]
    written = write_layout("casme2", tmp_path, clips, spreadsheet_version=version)
    (sheet,) = tmp_path.glob("CASME2-coding-*.xlsx")
    rows = list(openpyxl.load_workbook(sheet).worksheets[0].iter_rows(values_only=True))
    cells = {c for r in rows for c in r}
    if version == "20140508":
        assert {"Estimated Emotion", "OnsetFrame", 1, "/"} <= cells and "sub01" not in cells
    else:
        assert {"Emotion", "Onset Frame", "Objective Class", "sub01", "/"} <= cells
        assert "Estimated Emotion" not in cells
    scan = scan_dataset("casme2", tmp_path)
    samples = assert_clean_scan(scan, written)
    assert sorted(samples) == [
        "casme2/sub01/EP06_02_01",
        "casme2/sub01/EP09f",
        "casme2/sub17/EP01_2",
        "casme2/sub17/EP02_03",
    ]
    assert samples["casme2/sub01/EP09f"].apex is None
    assert samples["casme2/sub17/EP01_2"].emotion == "repression"


def test_casme2_filename_case_differs_from_folder(tmp_path: Path) -> None:
    write_layout("casme2", tmp_path, [clip(1, "disgust", clip="EP09f")])
    set_cell(tmp_path / "CASME2-coding-20140508.xlsx", "EP09f", "Filename", "EP09F")
    (sample,) = scan_dataset("casme2", tmp_path).samples
    assert sample.sample_id == "casme2/sub01/EP09f"


def test_casme_sq_headerless_sheet_and_code_sheets(tmp_path: Path) -> None:
    clips = [
        clip(1, "negative", clip="anger1"),
        clip(1, "negative", clip="anger1", apex=2),  # same video
        clip(2, "positive", n=12, onset=0, apex=5, offset=11, fps=10.0),  # 1.2 s: macro
        clip(3, "others", clip="disgust2", first_frame_number=300),
    ]
    written = write_layout("casme-sq", tmp_path, clips)
    book = openpyxl.load_workbook(tmp_path / CASME_SQ_SHEET)
    main = list(book.worksheets[0].iter_rows(values_only=True))
    assert main[0][:2] == (1, "anger1_1") and len(book.worksheets) == 3  # no header row
    assert ("0401", "anger1") in list(book.worksheets[1].iter_rows(values_only=True))
    assert (2, 16) in list(book.worksheets[2].iter_rows(values_only=True))
    micro = scan_dataset("casme-sq", tmp_path)
    assert micro.problems == []
    assert_scan_matches(micro, [written[i] for i in (0, 1, 3)])
    every = scan_dataset("casme-sq", tmp_path, kind="all")
    assert_scan_matches(every, written)
    (macro,) = scan_dataset("casme-sq", tmp_path, kind="macro").samples
    assert macro.sample_id == "casme-sq/s16/happy1_1"
    samples = by_id(every.samples)
    second = samples["casme-sq/s15/anger1_2"]
    # the second expression follows the first in the same long recording
    assert Path(second.frame_paths[0]).parent.name == "15_0401girlcrashing"
    assert (second.onset, second.apex, second.offset) == (8, 9, 11)
    assert dict(samples["casme-sq/s19/disgust2_1"].extra)["elicitation"] == "disgust"
    labels = scan_dataset("casme-sq", tmp_path, labels="casme-sq3", kind="all")
    assert sorted(s.label for s in labels) == ["anger", "anger", "disgust", "happy"]


def test_casme_sq_offset_zero_uses_apex(tmp_path: Path) -> None:
    write_layout(
        "casme-sq",
        tmp_path,
        [
            clip(1, "negative", clip="anger1", n=8, onset=1, apex=3, offset=6),
            clip(2, "positive", clip="happy1"),
        ],
    )
    set_cell(tmp_path / CASME_SQ_SHEET, "anger1_1", 5, 0)
    scan = scan_dataset("casme-sq", tmp_path)
    assert scan.problems == []
    sample = by_id(scan.samples)["casme-sq/s15/anger1_1"]
    assert (sample.onset, sample.apex, sample.offset) == (2, 4, 4)
    assert sample.frame_numbers == (2, 3, 4)
    assert ("fix", "offset 0 -> apex 4 (rule)") in sample.extra


def test_casme_sq_bad_rows(tmp_path: Path) -> None:
    casme_sq_layout(
        tmp_path, (1, "negative", "anger1"), (2, "positive", "happy1"), (3, "negative", "disgust1")
    )
    sheet = tmp_path / CASME_SQ_SHEET
    set_cell(sheet, "happy1_1", 2, "tickle9_1")
    set_cell(sheet, "disgust1_1", 4, 99)
    scan = scan_dataset("casme-sq", tmp_path)
    assert [s.sample_id for s in scan] == ["casme-sq/s15/anger1_1"]
    problems = {p.sample_id: p for p in scan.problems}
    assert f"{CASME_SQ_SHEET}:2" in problems["casme-sq/s16/tickle9_1"].file
    assert "not in the video-code sheet" in problems["casme-sq/s16/tickle9_1"].message
    assert "apex 99 is outside the clip" in problems["casme-sq/s19/disgust1_1"].message
    # the happy1 folder lost its only row
    assert "no annotation row" in problems["casme-sq/s16/16_0502funnyerrors"].message


def test_casme1_offset_zero_rule_and_corrections(tmp_path: Path) -> None:
    clips = [
        clip(1, "disgust", n=8, offset=5),
        clip(2, "tense", clip="EP03_1"),
        clip(9, "happiness", first_frame_number=30),
        clip(10, "surprise"),
    ]
    written = write_layout("casme1", tmp_path, clips)
    assert sorted(p.name for p in tmp_path.glob("*.xlsx")) == [
        "CASME_A_Section_coding.xlsx",
        "CASME_B_Section_coding.xlsx",
    ]
    set_cell(tmp_path / "CASME_A_Section_coding.xlsx", "EP01_2", "OffsetF", 0)
    set_cell(
        tmp_path / "CASME_B_Section_coding.xlsx", "EP01_2", "OnsetF", 34
    )  # sub09: onset > offset
    set_cell(tmp_path / "CASME_A_Section_coding.xlsx", "EP03_1", "OffsetF", None)
    fixes = tmp_path / "fixes.yaml"
    fixes.write_text(
        "rules: {zero_offset: last_frame, blank_offset: error}\ncorrections:\n"
        "  - {section: B, subject: 9, filename: EP01_2, field: onset, was: 34, value: 31,"
        " reason: typo}\n"
        "  - {section: B, subject: 10, filename: EP01_2, field: offset, was: 77, value: 2}\n"
    )
    scan = scan_dataset("casme1", tmp_path, fixes=fixes)
    samples = by_id(scan.samples)
    assert sorted(samples) == ["casme1/sub01/EP01_2", "casme1/sub09/EP01_2", "casme1/sub10/EP01_2"]
    zero = samples["casme1/sub01/EP01_2"]
    assert (zero.onset, zero.apex, zero.offset) == (2, 4, 8)
    assert ("fix", "offset 0 -> last frame 8 (rule)") in zero.extra and (
        "section",
        "A",
    ) in zero.extra
    fixed = samples["casme1/sub09/EP01_2"]
    assert (fixed.onset, fixed.offset) == (31, 34) == (written[2].onset, written[2].offset)
    assert ("fix", "onset 34 -> 31 (correction: typo)") in fixed.extra
    untouched = samples["casme1/sub10/EP01_2"]  # its `was` did not match
    assert untouched.offset == written[3].offset and not any(k == "fix" for k, _ in untouched.extra)
    (problem,) = scan.problems  # blank offset is an error under these rules
    assert problem.sample_id == "casme1/sub02/EP03_1" and "blank" in problem.message
    assert problem.file.endswith("CASME_A_Section_coding.xlsx:3")
    default = scan_dataset("casme1", tmp_path)  # packaged rules: blank offset = last frame too
    assert by_id(default.samples)["casme1/sub02/EP03_1"].offset == 6
    assert "apex 33 is before onset 34" in next(
        p.message for p in default.problems if p.sample_id == "casme1/sub09/EP01_2"
    )


def test_casme_sq_unrecognisable_main_sheet_raises(tmp_path: Path) -> None:
    write_layout("casme-sq", tmp_path, [clip(1, "negative", clip="anger1")])
    book = openpyxl.load_workbook(tmp_path / CASME_SQ_SHEET)
    main = book.worksheets[0]
    main.delete_rows(1)
    main.append(["notes", "see the other sheets"])
    book.save(tmp_path / CASME_SQ_SHEET)
    with pytest.raises(AnnotationError, match="main sheet has no rows") as err:
        scan_dataset("casme-sq", tmp_path)
    assert err.value.file.endswith(CASME_SQ_SHEET) and err.value.row == 1

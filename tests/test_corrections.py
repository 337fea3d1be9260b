"""Annotation corrections as data: applied, reported, and refused when the sheet has moved on."""

from __future__ import annotations

from pathlib import Path

import pytest
from layout_helpers import casme_sq_layout
from synth_clips import by_id, clip, set_cell

from mer_prep.datasets import scan_dataset
from mer_prep.datasets.corrections import Corrector, load_corrections, packaged_file, same_value
from mer_prep.errors import AnnotationError
from mer_prep.synth.layouts import write_layout

CASME2_SHEET = "CASME2-coding-20140508.xlsx"


def _casme2(tmp_path: Path):
    clips = [
        clip(1, "disgust", n=8, offset=6, clip="EP02_01f"),
        clip(1, "happiness", clip="EP03_02"),
        clip(2, "surprise", clip="EP01_2"),
    ]
    return write_layout("casme2", tmp_path, clips)


def test_a_correction_is_applied_noted_and_listed(tmp_path: Path) -> None:
    written = _casme2(tmp_path)
    row = set_cell(tmp_path / CASME2_SHEET, "EP02_01f", "OffsetFrame", 70)  # a typo: 7 -> 70
    fixes = tmp_path / "my_fixes.yaml"
    fixes.write_text(
        "corrections:\n"
        "  - {sample: casme2/sub01/EP02_01f, field: offset, old: 70, new: 7, reason: typo}\n"
        "  - {sample: sub01/EP03_02, field: emotion, old: happiness, new: others,"
        " reason: recoded}\n"
    )
    assert (
        scan_dataset("casme2", tmp_path).problems[0].sample_id == "casme2/sub01/EP02_01f"
    )  # 70 is off the clip
    scan = scan_dataset("casme2", tmp_path, corrections=str(fixes))
    assert scan.problems == []
    fixed = by_id(scan.samples)["casme2/sub01/EP02_01f"]
    assert fixed.offset == written[0].offset == 7
    assert ("fix", "offset 70 -> 7 (correction: typo; my_fixes.yaml)") in fixed.extra
    assert by_id(scan.samples)["casme2/sub01/EP03_02"].emotion == "others"
    first, second = scan.corrections
    assert (first.sample, first.field, first.status) == (
        "casme2/sub01/EP02_01f",
        "offset",
        "applied",
    )
    assert first.where.endswith(f"{CASME2_SHEET}:{row}") and first.file == str(fixes)
    assert second.sample == "casme2/sub01/EP03_02"  # the dataset prefix is added
    assert "[applied]" in str(first) and "typo" in str(first)
    assert first.to_dict()["new"] == 7


def test_a_sheet_that_already_holds_the_fix_is_left_alone(tmp_path: Path) -> None:
    _casme2(tmp_path)
    fixes = tmp_path / "fixes.csv"
    fixes.write_text(
        "sample,field,old,new,reason\n"
        "casme2/sub01/EP02_01f,offset,70,7,typo\n"
        "casme2/sub09/EP09_09,apex,,5,not in this copy\n"
    )
    scan = scan_dataset("casme2", tmp_path, corrections=fixes)
    sample = by_id(scan.samples)["casme2/sub01/EP02_01f"]
    assert sample.offset == 7 and not any(key == "fix" for key, _ in sample.extra)
    assert [(c.sample, c.status) for c in scan.corrections] == [
        ("casme2/sub01/EP02_01f", "already"),
        ("casme2/sub09/EP09_09", "unused"),
    ]


def test_a_correction_whose_old_value_does_not_match_is_refused(tmp_path: Path) -> None:
    _casme2(tmp_path)
    set_cell(
        tmp_path / CASME2_SHEET, "EP02_01f", "OffsetFrame", 6
    )  # a new sheet version: neither 70 nor 7
    fixes = tmp_path / "fixes.yaml"
    fixes.write_text(
        "# fixes of my copy\ncorrections:\n"
        "  - {sample: casme2/sub01/EP03_02, field: emotion, old: happiness, new: others}\n"
        "  - sample: casme2/sub01/EP02_01f\n    field: offset\n    old: 70\n    new: 7\n"
    )
    with pytest.raises(AnnotationError) as err:
        scan_dataset("casme2", tmp_path, corrections=fixes)
    message = str(err.value)
    assert err.value.file == str(fixes) and err.value.row == 4  # the entry's line in the file
    assert "casme2/sub01/EP02_01f" in message and "field offset" in message
    assert (
        "expects the old value 70" in message and "holds 6" in message and CASME2_SHEET in message
    )


def test_malformed_corrections_files_name_file_and_entry(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "corrections:\n  - {sample: casme2/sub01/EP02_01f, field: label, old: a, new: b}\n"
    )
    with pytest.raises(AnnotationError, match="names field 'label'") as err:
        load_corrections(bad)
    assert err.value.file == str(bad) and err.value.row == 2
    bad.write_text(
        "corrections:\n  - {sample: x/a, field: onset, old: 1, new: 2}\n"
        "  - {sample: x/a, field: onset, old: 1, new: 3}\n"
    )
    with pytest.raises(AnnotationError, match="second correction of x/a onset") as err:
        load_corrections(bad)
    assert err.value.row == 3
    bad.write_text("corrections:\n  - {sample: x/a, field: onset, new: 2}\n")
    with pytest.raises(AnnotationError, match="needs both old and new"):
        load_corrections(bad)
    with pytest.raises(AnnotationError, match="does not exist"):
        load_corrections(tmp_path / "absent.yaml")


def test_a_csv_row_cut_at_an_unquoted_comma_is_refused_not_truncated(tmp_path: Path) -> None:
    fixes = tmp_path / "fixes.csv"
    fixes.write_text(
        "sample,field,old,new,reason\n"
        "casme2/sub01/EP02_01f,offset,70,7,typo\n"
        "casme2/sub02/EP03_02,emotion,others,repression,two raters, one sheet\n"
    )
    with pytest.raises(AnnotationError, match=r"row has 6 cells but the header names 5") as err:
        load_corrections(fixes)
    assert err.value.file == str(fixes) and err.value.row == 3
    # blank trailing cells, as spreadsheets export them, are not extra values
    fixes.write_text("sample,field,old,new,reason\ncasme2/sub01/EP02_01f,offset,70,7,typo,,\n")
    assert [(c.sample, c.new) for c in load_corrections(fixes)] == [("casme2/sub01/EP02_01f", "7")]


def test_packaged_corrections_files_load() -> None:
    for dataset in ("casme1", "casme3", "4dme", "mmew"):
        assert packaged_file(dataset).is_file()
        assert load_corrections(packaged_file(dataset), dataset=dataset) == []
    assert not Corrector.for_dataset("casme2")  # no packaged file: nothing to apply


def test_same_value_compares_numbers_as_numbers() -> None:
    assert (
        same_value(12.0, "12")
        and same_value(12, 12.0)
        and same_value(None, "")
        and same_value(" a ", "a")
    )
    assert (
        not same_value("Others", "others")
        and not same_value(None, 0)
        and not same_value("12", "120")
    )


def test_4dme_swapped_au_cells_fixed_from_the_users_file(tmp_path: Path) -> None:
    clips = [
        clip(1, "negative", action_units="AU4+AU7"),
        clip(1, "surprise", action_units="AU1+AU2(k)"),
    ]
    write_layout("4dme", tmp_path, clips)
    fixes = tmp_path / "swap.csv"
    fixes.write_text(
        "sample,field,old,new,reason\n"
        "4dme/S01/S01_01,aus,AU4+AU7,AU1+AU2(k),AU cells swapped with S01_02\n"
        "4dme/S01/S01_02,aus,AU1+AU2(k),AU4+AU7,AU cells swapped with S01_01\n"
    )
    samples = by_id(scan_dataset("4dme", tmp_path, corrections=fixes).samples)
    assert (
        samples["4dme/S01/S01_01"].aus == (1, 2)
        and samples["4dme/S01/S01_01"].action_units == "AU1+AU2(k)"
    )
    assert samples["4dme/S01/S01_02"].aus == (4, 7)


def test_casme_sq_rows_are_corrected_too(tmp_path: Path) -> None:
    casme_sq_layout(tmp_path, (1, "negative", "anger1"), (2, "positive", "happy1"))
    fixes = tmp_path / "fixes.yaml"
    fixes.write_text(
        "- {sample: casme-sq/s15/anger1_1, field: emotion, old: negative, new: others, reason: x}\n"
    )
    scan = scan_dataset("casme-sq", tmp_path, corrections=fixes)
    assert by_id(scan.samples)["casme-sq/s15/anger1_1"].emotion == "others"
    assert [c.status for c in scan.corrections] == ["applied"]

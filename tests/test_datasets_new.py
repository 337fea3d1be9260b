"""CAS(ME)^3, DFME, 4DME and MMEW on synthetic look-alikes: every sample, and each quirk of
docs/datasets.md on a small realistic fixture."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest
from synth_clips import assert_clean_scan, assert_scan_matches, by_id, clip, set_cell

from mer_prep.datasets import scan_dataset
from mer_prep.datasets.casme3 import MAX_DURATION_S
from mer_prep.errors import InvalidArgumentError
from mer_prep.synth.generate import generate_dataset
from mer_prep.synth.ground_truth import load_ground_truth
from mer_prep.synth.layouts import write_layout

CASME3_SHEET = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
CASME3_C_SHEET = "CAS(ME)3_part_C_ME.xlsx"
FOURD_SHEET = "4DME_Labelling_Micro_release v1.xlsx"
MMEW_SHEET = "MMEW_Micro_Exp.xlsx"


# --- CAS(ME)^3 Part A -----------------------------------------------------------------------------


def _casme3_clips():
    return [
        clip(1, "disgust", n=8, onset=1, apex=3, offset=5, clip="a", action_units="4+R2"),
        clip(1, "Others", clip="a", action_units="T28+14"),  # a second ME in the same take
        clip(1, "others", clip="b", onset=2, apex=2, offset=4),  # apex == onset
        clip(3, "happy", clip="J", action_units="R12"),
        clip(4, "surprise", clip="c", onset=0, apex=1, offset=3, action_units="1+2"),
    ]


def test_casme3_part_a_whole_takes(tmp_path: Path) -> None:
    written = write_layout("casme3", tmp_path, _casme3_clips())
    scan = scan_dataset("casme3", tmp_path)
    samples = assert_clean_scan(scan, written, videos=True)
    # several MEs of one take: the onset makes the id
    assert sorted(samples) == sorted(
        [
            "casme3/spNO.1/a_2",
            "casme3/spNO.1/a_10",
            "casme3/spNO.1/b_3",
            "casme3/spNO.3/J_2",
            "casme3/spNO.4/c_1",
        ]
    )
    first, second = samples["casme3/spNO.1/a_2"], samples["casme3/spNO.1/a_10"]
    assert (first.subject, first.fps, first.aus, first.action_units) == (
        "casme3/spNO.1",
        30.0,
        (2, 4),
        "4+R2",
    )
    assert second.aus == (14, 28) and second.emotion == "Others" and second.label == "others"
    assert samples["casme3/spNO.1/b_3"].apex == samples["casme3/spNO.1/b_3"].onset == 3
    assert ("objective_class", "II") in first.extra and ("take", "a") in first.extra
    # depth: one 16-bit PNG per frame, same frame numbers
    assert len(first.depth_paths) == len(first.frame_paths) == 5
    assert [Path(p).stem for p in first.depth_paths] == [Path(p).stem for p in first.frame_paths]
    depth = cv2.imread(first.depth_paths[0], cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.min() >= 400
    assert "/depth/spNO.1/a/depth/" in first.depth_paths[0]
    # 4 classes, 3 classes
    four = scan_dataset("casme3", tmp_path, labels="casme3-4")
    assert Counter(s.label for s in four) == {
        "negative": 1,
        "others": 2,
        "positive": 1,
        "surprise": 1,
    }
    assert len(scan_dataset("casme3", tmp_path, labels="casme3-3")) == 3


@pytest.mark.parametrize("level", ["part_A", "part_A/RGB"])
def test_casme3_root_at_the_part_a_level(tmp_path: Path, level: str) -> None:
    written = write_layout("casme3", tmp_path, _casme3_clips()[:2])
    if level.endswith("RGB"):  # not a distribution level: the frame tree itself
        with pytest.raises(FileNotFoundError, match="no CAS\\(ME\\)\\^3 Part A frames"):
            scan_dataset("casme3", tmp_path / level)
        return
    # the sheet is in the parent
    assert_scan_matches(scan_dataset("casme3", tmp_path / level), written, videos=True)


def test_casme3_per_me_clip_folders_at_any_level(tmp_path: Path) -> None:
    data = tmp_path / "CASME3"
    written = write_layout("casme3", data, _casme3_clips(), variant="clips")
    (data / "annotation").mkdir()
    shutil.move(str(data / CASME3_SHEET), data / "annotation" / CASME3_SHEET)
    assert (data / "Part_A_ME_clip" / "frame" / "spNO.1_a_10").is_dir()
    for root in (data, data / "Part_A_ME_clip"):
        scan = scan_dataset("casme3", root)
        assert_clean_scan(scan, written, videos=True)
    # the doubled folder some archives unpack to
    inner = data / "Part_A_ME_clip" / "Part_A_ME_clip"
    inner.mkdir()
    for name in ("frame", "depth"):
        shutil.move(str(data / "Part_A_ME_clip" / name), inner / name)
    moved = scan_dataset("casme3", data / "Part_A_ME_clip")
    assert sorted(s.sample_id for s in moved) == sorted(w.sample_id for w in written)
    assert all(len(s.depth_paths) == s.n_frames for s in moved)
    # a copy holding both distributions: the whole takes, unless the clips are asked for
    write_layout("casme3", tmp_path / "both", _casme3_clips()[:1], variant="clips")
    write_layout("casme3", tmp_path / "both", _casme3_clips()[:1], variant="takes")
    for layout, expected in (("auto", "takes"), ("takes", "takes"), ("clips", "clips")):
        (sample,) = scan_dataset("casme3", tmp_path / "both", layout=layout).samples
        assert ("layout", expected) in sample.extra
    # an ME clip folder no row points at
    (inner / "frame" / "spNO.9_a_1").mkdir()
    assert [p.sample_id for p in scan_dataset("casme3", data).problems] == [
        "casme3/spNO.9/spNO.9_a_1"
    ]


def test_casme3_quirks_become_named_problems_or_rules(tmp_path: Path) -> None:
    clips = _casme3_clips() + [
        clip(5, "fear", n=10, onset=2, apex=4, offset=8, clip="d", action_units="4+7"),
        clip(6, "sad", n=10, onset=2, apex=4, offset=8, clip="e", action_units="1+15"),
        clip(7, "anger", n=10, onset=2, apex=4, offset=8, clip="f", action_units="4+5"),
    ]
    write_layout("casme3", tmp_path, clips)
    sheet = tmp_path / CASME3_SHEET
    rgb = tmp_path / "part_A" / "RGB"
    # onset 0 while the frames start at 1
    zero_row = set_cell(sheet, "1+2", "Onset", 0)
    # the 5..3460 "micro-expression"
    long_row = set_cell(sheet, "T28+14", "Onset", 5)
    set_cell(sheet, "T28+14", "Offset", 3460)
    # unreadable frames (spNO.3 J, spNO.4 j are known): one truncated, one empty
    truncated = rgb / "spNO.5" / "d" / "color" / "5.jpg"
    truncated.write_bytes(truncated.read_bytes()[:100])
    (rgb / "spNO.5" / "d" / "color" / "6.jpg").write_bytes(b"")
    # a frame missing inside onset..offset
    (rgb / "spNO.6" / "e" / "color" / "6.jpg").unlink()
    # the sheet's "J" against a folder spelt "j"; a depth frame missing
    (rgb / "spNO.3" / "J").rename(rgb / "spNO.3" / "j")
    (tmp_path / "part_A" / "depth" / "spNO.7" / "f" / "depth" / "5.png").unlink()

    scan = scan_dataset("casme3", tmp_path)
    samples = by_id(scan.samples)
    problems = {p.sample_id: p for p in scan.problems}
    assert sorted(problems) == ["casme3/spNO.1/a_5", "casme3/spNO.5/d_3", "casme3/spNO.6/e_3"]
    long = problems["casme3/spNO.1/a_5"]
    assert long.file.endswith(f"{CASME3_SHEET}:{long_row}")
    assert "spans 3456 frames (115.2 s at 30 fps)" in long.message
    assert (
        f"longer than {MAX_DURATION_S:g} s" in long.message and "annotation error" in long.message
    )
    unreadable = problems["casme3/spNO.5/d_3"].message
    assert "2 unreadable frame file(s)" in unreadable and "frame 5: truncated" in unreadable
    assert "frame 6: empty file" in unreadable
    assert "1 frame(s) missing inside onset..offset: 6" in problems["casme3/spNO.6/e_3"].message
    zero = samples["casme3/spNO.4/c_0"]  # the id keeps the sheet's onset
    assert (zero.onset, zero.frame_numbers[0]) == (1, 1)
    assert ("fix", "onset 0 -> 1 (rule: frame files start at 1)") in zero.extra
    assert zero.source.endswith(f"{CASME3_SHEET}:{zero_row}")
    assert "casme3/spNO.3/j_2" in samples  # found ignoring case
    no_depth = samples["casme3/spNO.7/f_3"]
    assert (
        no_depth.depth_paths == ()
        and "1 depth frame(s) missing (5)" in dict(no_depth.extra)["depth"]
    )
    # a longer limit lets the long row through to the frame check; a correction fixes it
    relaxed = scan_dataset("casme3", tmp_path, max_duration_s="200")
    assert (
        "outside the clip"
        in {p.sample_id: p for p in relaxed.problems}["casme3/spNO.1/a_5"].message
    )
    fixes = tmp_path / "fixes.yaml"
    fixes.write_text(
        "- {sample: casme3/spNO.1/a_5, field: offset, old: 3460, new: 12, reason: typo}\n"
        "- {sample: casme3/spNO.1/a_5, field: onset, old: 5, new: 8, reason: typo}\n"
    )
    fixed = by_id(scan_dataset("casme3", tmp_path, corrections=fixes).samples)["casme3/spNO.1/a_5"]
    assert (fixed.onset, fixed.offset, fixed.n_frames) == (8, 12, 5)


def test_casme3_part_c_has_no_apex_and_comma_aus(tmp_path: Path) -> None:
    clips = [
        clip(1, "negative", apex=None, action_units="4，11"),
        clip(1, "positive", apex=None, action_units="6,12"),
        clip(12, "surprise", apex=None, action_units="1"),
        clip(12, "others", apex=None),
    ]
    written = write_layout("casme3", tmp_path, clips, variant="C")
    book = openpyxl.load_workbook(tmp_path / CASME3_C_SHEET)
    assert book.sheetnames == ["mockCrimeME"]
    assert [c.value for c in book.worksheets[0][1]] == [
        "sub",
        "count",
        "onset",
        "offset",
        "au",
        "emotion",
    ]
    scan = scan_dataset("casme3", tmp_path, part="C")
    samples = assert_clean_scan(scan, written, videos=True)
    assert sorted(samples) == [
        "casme3/C01/me1",
        "casme3/C01/me2",
        "casme3/C12/me1",
        "casme3/C12/me2",
    ]
    first = samples["casme3/C01/me1"]
    assert first.apex is None and first.aus == (4, 11) and first.action_units == "4，11"
    assert ("part", "C") in first.extra
    assert Counter(
        s.label for s in scan_dataset("casme3", tmp_path, part="C", labels="casme3-4")
    ) == {"negative": 1, "positive": 1, "surprise": 1, "others": 1}
    with pytest.raises(InvalidArgumentError, match="part"):
        scan_dataset("casme3", tmp_path, part="B")


def test_casme3_part_c_from_videos(tmp_path: Path) -> None:
    clips = [clip(1, "negative", apex=None, first_frame_number=4), clip(1, "positive", apex=None)]
    written = write_layout("casme3", tmp_path, clips, variant="C", videos=True)
    scan = scan_dataset("casme3", tmp_path, part="C")
    sample = assert_clean_scan(scan, written, videos=True)["casme3/C01/me2"]
    assert Path(sample.video_path).name == "1.avi" and sample.frame_paths == ()
    assert ("frame_numbering", "video index = sheet frame - 1") in sample.extra


# --- DFME -----------------------------------------------------------------------------------------


def _dfme_clips():
    return [
        clip(4, "happiness", action_units="R4+AD38", part="train", fps=500),
        clip(4, "anger", part="train", fps=500),
        clip(5, "contempt", part="train", fps=500),
        clip(6, "sadness", part="testA", fps=300),
        clip(7, "surprise", part="testB", fps=200, action_units="1+2"),
    ]


def test_dfme_split_sheets_zero_based_frames_and_fps_per_row(tmp_path: Path) -> None:
    written = write_layout("dfme", tmp_path, _dfme_clips())
    assert sorted(p.name for p in tmp_path.glob("*.xlsx")) == [
        "testA_full_with_AU.xlsx",
        "testB_full_with_AU.xlsx",
        "training_full_with_AU.xlsx",
    ]
    assert (tmp_path / "DFME_train" / "sub0004_01" / "00000.png").is_file()
    scan = scan_dataset("dfme", tmp_path)
    samples = assert_clean_scan(scan, written, videos=True)
    first = samples["dfme/sub0004/sub0004_01"]
    assert first.frame_numbers[0] == 0 and Path(first.frame_paths[0]).name == "00000.png"
    assert (first.onset, first.apex, first.offset) == (1, 3, 4)
    assert first.aus == (4,) and ("au_descriptors", "AD38") in first.extra
    assert {s.clip: (s.partition, s.fps) for s in scan} == {
        "sub0004_01": ("train", 500.0),
        "sub0004_02": ("train", 500.0),
        "sub0005_01": ("train", 500.0),
        "sub0006_01": ("testA", 300.0),
        "sub0007_01": ("testB", 200.0),
    }
    ids = scan_dataset("dfme", tmp_path, labels="dfme7")
    assert {s.clip: s.label for s in ids}["sub0006_01"] == "sadness"


def test_dfme_quirks(tmp_path: Path) -> None:
    write_layout("dfme", tmp_path, _dfme_clips() + [clip(8, "fear", part="testA", fps=300)])
    train, test_a = tmp_path / "training_full_with_AU.xlsx", tmp_path / "testA_full_with_AU.xlsx"
    set_cell(train, "sub0004_02", "Emotion", "disgust")  # disagrees with EmotionId 0 (anger)
    set_cell(train, "sub0005_01", "Emotion", None)  # taken from EmotionId 1 (contempt)
    set_cell(test_a, "sub0006_01", "Fps", None)  # no frame rate
    set_cell(test_a, "sub0008_01", "Subject", "sub0004")  # a training subject in testA
    scan = scan_dataset("dfme", tmp_path)
    problems = {p.sample_id: p.message for p in scan.problems}
    assert (
        problems["dfme/sub0004/sub0004_02"]
        == "Emotion 'disgust' disagrees with EmotionId 0 (anger)"
    )
    assert problems["dfme/sub0006/sub0006_01"] == "Fps 'blank' is not a frame rate"
    assert "in the train sheet too" in problems["dfme/sub0004/sub0008_01"]
    assert by_id(scan.samples)["dfme/sub0005/sub0005_01"].emotion == "contempt"


# --- 4DME -----------------------------------------------------------------------------------------


def test_4dme_float_frames_au_prefix_and_k_marks(tmp_path: Path) -> None:
    clips = [
        clip(1, "negative", action_units="AU4+AU7", first_frame_number=30),
        clip(1, "positive", action_units="AU6+AU12(k)"),
        clip(2, "surprise", action_units="AU1+2(k)"),
        clip(3, "repression", action_units="AU14"),
    ]
    written = write_layout("4dme", tmp_path, clips)
    onset_cell = openpyxl.load_workbook(tmp_path / FOURD_SHEET).worksheets[0]["D2"].value
    assert isinstance(onset_cell, float) and onset_cell == 31.0
    scan = scan_dataset("4dme", tmp_path)
    samples = assert_clean_scan(scan, written, videos=True)
    assert samples["4dme/S01/S01_01"].onset == 31 and samples["4dme/S01/S01_02"].aus == (6, 12)
    assert samples["4dme/S02/S02_01"].aus == (1, 2) and samples["4dme/S01/S01_01"].fps == 60.0
    assert scan_dataset("4dme", tmp_path, fps="30").samples[0].fps == 30.0
    assert Counter(s.label for s in scan_dataset("4dme", tmp_path, labels="megc3")) == {
        "negative": 2,
        "positive": 1,
        "surprise": 1,
    }
    # a fractional frame number; a subject folder spelt differently from the sheet
    set_cell(tmp_path / FOURD_SHEET, "S02_01", "Apex", 3.5)
    (tmp_path / "gray_micro" / "S03").rename(tmp_path / "gray_micro" / "s03")
    scan = scan_dataset("4dme", tmp_path)
    (problem,) = scan.problems
    assert (
        problem.sample_id == "4dme/S02/S02_01"
        and problem.message == "apex 3.5 is not a whole frame number"
    )
    assert "4dme/s03/S03_01" in by_id(scan.samples)


# --- MMEW -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["official", "flat"])
def test_mmew_both_layouts_and_others_in_repression_folders(tmp_path: Path, variant: str) -> None:
    clips = [
        clip(3, "others", action_units="4"),
        clip(3, "happiness", action_units="6+12"),
        clip(5, "disgust", action_units="9"),
    ]
    written = write_layout("mmew", tmp_path, clips, variant=variant)
    folder = (
        tmp_path / "S03" if variant == "official" else tmp_path / "Micro_Expression"
    ) / "repression"
    assert (folder / "S03-01-001").is_dir()
    scan = scan_dataset("mmew", tmp_path)
    others = assert_clean_scan(scan, written, videos=True)["mmew/S03/S03-01-001"]
    assert others.emotion == "others" and others.label == "others"
    assert ("folder_emotion", "repression") in others.extra and ("layout", variant) in others.extra
    assert others.fps == 90.0 and others.aus == (4,)


def test_mmew_apex_or_offset_outside_the_clip(tmp_path: Path) -> None:
    write_layout("mmew", tmp_path, [clip(3, "others"), clip(3, "happiness"), clip(4, "fear")])
    sheet = tmp_path / MMEW_SHEET
    set_cell(sheet, "S03-01-001", "ApexFrame", 40)
    set_cell(sheet, "S03-01-002", "OffsetFrame", 41)
    scan = scan_dataset("mmew", tmp_path)
    problems = {p.sample_id: p for p in scan.problems}
    assert (
        "apex 40 is outside the clip (frames 1..6 on disk)"
        in problems["mmew/S03/S03-01-001"].message
    )
    assert "onset..offset 2..41 is outside the clip" in problems["mmew/S03/S03-01-002"].message
    assert problems["mmew/S03/S03-01-002"].file.split(" (")[0].endswith(f"{MMEW_SHEET}:3")
    assert [s.sample_id for s in scan] == ["mmew/S04/S04-01-001"]


# --- synthetic look-alikes with ground-truth motion -----------------------------------------------


@pytest.mark.parametrize("dataset", ["casme3", "dfme", "4dme", "mmew"])
def test_generated_look_alikes_carry_ground_truth(tmp_path: Path, dataset: str) -> None:
    written = generate_dataset(
        dataset,
        tmp_path,
        n_subjects=1,
        clips_per_subject=2,
        size=(240, 320),
        n_frames=16,
        seed=3,
        workers=1,
    )
    scan = scan_dataset(dataset, tmp_path)
    assert_clean_scan(scan, written, videos=True)
    for sample in scan:
        truth = load_ground_truth(tmp_path, sample.sample_id)
        assert (truth.onset_number, truth.offset_number) == (sample.onset, sample.offset)
        assert len(truth.profile) == sample.n_frames and truth.fps == sample.fps
        assert truth.profile.max() == pytest.approx(1.0)  # the motion peaks at the apex
        assert sample.aus == tuple(
            sorted(int(a.lstrip("LR")) for a in truth.action_units.split("+"))
        )


# --- hostile or broken input: named problems, never a crash or a path outside the root -----------


@pytest.mark.parametrize(
    "dataset, sheet, column, match",
    [
        ("casme3", CASME3_SHEET, "Subject", "spNO.1"),
        ("casme3", CASME3_SHEET, "Filename", "a"),
        ("4dme", FOURD_SHEET, "sub_ID", "S01"),
        ("4dme", FOURD_SHEET, "fold_name", "S01_01"),
        ("dfme", "training_full_with_AU.xlsx", "Filename", "sub0004_01"),
        ("mmew", MMEW_SHEET, "Filename", "S01-01-001"),
    ],
)
def test_cells_that_are_paths_are_problems(
    tmp_path: Path, dataset: str, sheet: str, column: str, match: str
) -> None:
    clips = [
        clip(
            4 if dataset == "dfme" else 1,
            "disgust" if dataset != "4dme" else "negative",
            clip="a" if dataset == "casme3" else None,
            part="train",
        )
    ]
    write_layout(dataset, tmp_path / "data", clips)
    (tmp_path / "outside").mkdir()
    for value in ("../../outside", "/etc", f"{match}/../{match}"):
        set_cell(tmp_path / "data" / sheet, match, column, value)
        scan = scan_dataset(dataset, tmp_path / "data")
        assert scan.samples == [] and len(scan.problems) >= 1, value
        match = value


@pytest.mark.parametrize(
    "dataset, sheet",
    [
        ("casme3", CASME3_SHEET),
        ("4dme", FOURD_SHEET),
        ("mmew", MMEW_SHEET),
        ("dfme", "training_full_with_AU.xlsx"),
    ],
)
def test_unreadable_or_headerless_sheets_raise_annotation_errors(
    tmp_path: Path, dataset: str, sheet: str
) -> None:
    from mer_prep.errors import AnnotationError

    write_layout(
        dataset,
        tmp_path,
        [
            clip(
                4,
                "negative" if dataset == "4dme" else "disgust",
                clip="a" if dataset == "casme3" else None,
            )
        ],
    )
    book = openpyxl.load_workbook(tmp_path / sheet)
    book.worksheets[0].delete_rows(1)
    book.save(tmp_path / sheet)
    with pytest.raises(AnnotationError, match="header") as err:
        scan_dataset(dataset, tmp_path)
    assert err.value.file.endswith(sheet)
    (tmp_path / sheet).write_bytes(b"not a spreadsheet")
    with pytest.raises(AnnotationError, match="cannot read spreadsheet"):
        scan_dataset(dataset, tmp_path)

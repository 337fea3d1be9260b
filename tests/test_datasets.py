"""Each adapter reads a synthetic look-alike of its dataset back exactly as it was written."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from synth_clips import assert_scan_matches, by_id, clip

from mer_prep.datasets import DATASETS, scan_dataset
from mer_prep.datasets._frames import frame_number, list_frames, timing_error
from mer_prep.errors import InvalidArgumentError, UnknownDatasetError
from mer_prep.labels import apply_scheme, class_names
from mer_prep.sample import DatasetScan
from mer_prep.synth.layouts import write_layout

ROUND_TRIP = {
    # dataset: (native emotions, label of each under the native scheme, fps)
    "casme1": (["disgust", "Happiness", "tense"], ["disgust", "happiness", "tense"], 60.0),
    "casme2": (["disgust", "happiness", "others"], ["disgust", "happiness", "others"], 200.0),
    "samm": (["Anger", "Happiness", "Other"], ["anger", "happiness", "other"], 200.0),
    "smic": (["negative", "positive", "surprise"], ["negative", "positive", "surprise"], 100.0),
    "casme-sq": (["negative", "positive", "others"], ["negative", "positive", "others"], 30.0),
}


@pytest.mark.parametrize("dataset", sorted(ROUND_TRIP))
def test_round_trip(tmp_path: Path, dataset: str) -> None:
    emotions, labels, fps = ROUND_TRIP[dataset]
    clips = [
        clip(1, emotions[0], first_frame_number=46),
        clip(2, emotions[1], apex=2),
        clip(9, emotions[2], n=8, onset=2, apex=5, offset=6, action_units="R12"),
    ]
    written = write_layout(dataset, tmp_path, clips)
    scan = scan_dataset(dataset, tmp_path)
    assert scan.problems == []
    assert_scan_matches(scan, written)
    samples = [by_id(scan.samples)[w.sample_id] for w in written]
    assert [s.label for s in samples] == labels
    assert {s.fps for s in samples} == {fps}
    assert [s.dataset for s in samples] == [dataset] * 3
    assert samples[0].subject.startswith(dataset + "/") and samples[0].subject != samples[2].subject
    for s in samples:
        assert all(Path(p).exists() for p in s.frame_paths)
        assert list(s.frame_numbers) == sorted(s.frame_numbers)
    if dataset != "smic":
        assert samples[2].action_units == "R12"


def test_subject_ids_are_dataset_qualified(tmp_path: Path) -> None:
    expected = {
        "casme1": "casme1/sub06",
        "casme2": "casme2/sub06",
        "samm": "samm/006",
        "smic": "smic/s06",
        "casme-sq": "casme-sq/s22",
    }  # CAS(ME)^2 participant 6 is s22
    for dataset, subject in expected.items():
        write_layout(dataset, tmp_path / dataset, [clip(6, ROUND_TRIP[dataset][0][0])])
        (sample,) = scan_dataset(dataset, tmp_path / dataset).samples
        assert sample.subject == subject


def test_timing_in_dataset_numbering(tmp_path: Path) -> None:
    (w,) = write_layout(
        "casme2",
        tmp_path,
        [clip(1, "disgust", n=10, onset=2, apex=4, offset=8, first_frame_number=46)],
    )
    (s,) = scan_dataset("casme2", tmp_path).samples
    assert (s.onset, s.apex, s.offset) == (48, 50, 54) == (w.onset, w.apex, w.offset)
    assert s.frame_numbers == tuple(range(46, 56))


def test_frames_are_ordered_numerically(tmp_path: Path) -> None:
    write_layout(
        "casme2",
        tmp_path,
        [clip(1, "disgust", n=12, onset=0, apex=5, offset=11, first_frame_number=1)],
    )
    (s,) = scan_dataset("casme2", tmp_path).samples
    names = [Path(p).name for p in s.frame_paths]
    assert names[:3] == ["img1.jpg", "img2.jpg", "img3.jpg"]
    assert names.index("img2.jpg") < names.index("img10.jpg")
    assert names[-3:] == ["img10.jpg", "img11.jpg", "img12.jpg"]
    assert s.frame_numbers == tuple(range(1, 13))


def test_frame_helpers(tmp_path: Path) -> None:
    assert [
        frame_number(n)
        for n in ("img46.jpg", "reg_img7.jpg", "006_05562.jpg", "EP01_5-12.jpg", "x.jpg")
    ] == [46, 7, 5562, 12, None]
    for name in ("image10.bmp", "image9.bmp", "image100.bmp", "Thumbs.db", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [n for n, _ in list_frames(tmp_path)] == [9, 10, 100]
    assert timing_error([1, 2, 3], 1, 2, 3) is None
    assert "after offset" in timing_error([1, 2, 3], 3, None, 1)
    assert "apex 9 is outside the clip" in timing_error([1, 2, 3], 1, 9, 10)
    assert "missing" in timing_error([1, 3], 1, None, 3)


def test_casme2_cropped_variant(tmp_path: Path) -> None:
    write_layout("casme2", tmp_path, [clip(1, "disgust"), clip(2, "surprise")])
    raw = scan_dataset("casme2", tmp_path, variant="raw")
    cropped = scan_dataset("casme2", tmp_path, variant="cropped")
    assert cropped.problems == []
    assert sorted(s.sample_id for s in cropped) == sorted(s.sample_id for s in raw)
    sample = cropped.samples[0]
    assert all(Path(p).name.startswith("reg_img") and "/Cropped/" in p for p in sample.frame_paths)
    assert cv2.imread(sample.frame_paths[0]).shape[:2] == (6, 6)  # centre crop of 8x8
    assert sample.frame_numbers == raw.samples[0].frame_numbers


def test_samm_frames_are_grayscale(tmp_path: Path) -> None:
    write_layout("samm", tmp_path, [clip(6, "Anger")])
    (s,) = scan_dataset("samm", tmp_path).samples
    assert cv2.imread(s.frame_paths[0], cv2.IMREAD_UNCHANGED).ndim == 2
    assert Path(s.frame_paths[0]).name == "006_00001.jpg"


def test_smic_folder_labels_and_modalities(tmp_path: Path) -> None:
    clips = [clip(1, "negative"), clip(1, "positive"), clip(3, "surprise", first_frame_number=500)]
    for modality in ("HS", "VIS"):
        written = write_layout("smic", tmp_path, clips, modality=modality)
        scan = scan_dataset("smic", tmp_path, modality=modality)
        assert_scan_matches(scan, written)
        assert {s.fps for s in scan} == {100.0 if modality == "HS" else 25.0}
        assert {s.extra for s in scan} == {(("modality", modality),)}
    scan = scan_dataset("smic", tmp_path, modality="HS")
    assert sorted((s.sample_id, s.emotion, s.apex) for s in scan) == [
        ("smic/s01/s01_ne_01", "negative", None),
        ("smic/s01/s01_po_01", "positive", None),
        ("smic/s03/s03_sur_01", "surprise", None),
    ]
    surprise = by_id(scan.samples)["smic/s03/s03_sur_01"]
    # only onset..offset are on disk; they become first..last
    assert (surprise.onset, surprise.offset, surprise.n_frames) == (501, 504, 4)
    with pytest.raises(FileNotFoundError):
        scan_dataset("smic", tmp_path, modality="NIR")


def test_scan_dataset_arguments(tmp_path: Path) -> None:
    assert DATASETS[:5] == ("casme1", "casme2", "samm", "smic", "casme-sq")
    assert {"casme3", "dfme", "4dme", "mmew", "manifest", "megc2019", "cross6"} <= set(DATASETS)
    with pytest.raises(UnknownDatasetError, match="unknown dataset"):
        scan_dataset("casme4", tmp_path)
    with pytest.raises(InvalidArgumentError, match="mapping of roots"):
        scan_dataset("megc2019", tmp_path)
    with pytest.raises(InvalidArgumentError, match="mapping of roots"):
        scan_dataset("casme2", {"casme2": tmp_path})


def test_label_schemes(tmp_path: Path) -> None:
    clips = [
        clip(1, "disgust"),
        clip(1, "repression"),
        clip(2, "happiness"),
        clip(2, "others"),
        clip(3, "fear"),
        clip(3, "Surprise"),
    ]
    write_layout("casme2", tmp_path, clips)
    native = scan_dataset("casme2", tmp_path)
    megc = apply_scheme(native, "megc3")
    assert sorted(s.label for s in megc) == ["negative", "negative", "positive", "surprise"]
    four = scan_dataset("casme2", tmp_path, labels="four")
    assert sorted(s.label for s in four) == ["negative", "other", "other", "positive", "surprise"]
    assert megc.problems == [] and four.problems == []
    assert class_names("megc3", "casme2") == ["negative", "positive", "surprise"]
    assert class_names("four", "smic") == ["positive", "negative", "surprise"]
    assert class_names("four", "samm") == ["positive", "negative", "surprise", "other"]
    assert class_names("megc3", "megc2019") == ["negative", "positive", "surprise"]
    assert class_names("casme-sq3", "casme-sq") == ["anger", "happy", "disgust"]
    assert "others" in class_names("native", "casme2")
    with pytest.raises(ValueError, match="does not cover"):
        apply_scheme(native, "casme-sq3")
    with pytest.raises(KeyError):
        apply_scheme(native, "seven")


def test_unknown_emotion_is_a_problem(tmp_path: Path) -> None:
    write_layout("samm", tmp_path, [clip(6, "Anger"), clip(6, "Bewildered"), clip(7, "Happiness")])
    scan = scan_dataset("samm", tmp_path, labels="megc3")
    assert sorted(s.sample_id for s in scan) == ["samm/006/006_1_1", "samm/007/007_1_1"]
    (problem,) = scan.problems
    assert problem.sample_id == "samm/006/006_2_1"
    assert problem.file.endswith(
        "SAMM_Micro_FACS_Codes_v2.xlsx:16"
    )  # 13 preamble rows + header + 2nd row
    assert "unknown emotion label 'Bewildered'" in problem.message


def test_apply_scheme_keeps_existing_problems() -> None:
    from mer_prep.sample import Problem

    scan = DatasetScan([], [Problem("x", "f", "m")])
    assert apply_scheme(scan, "native").problems == scan.problems

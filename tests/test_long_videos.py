"""Long-video adapters against synthetic long videos with planted intervals, and each sheet
quirk."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mer_prep.cli import main
from mer_prep.datasets.long_video import LongInterval, frame_cell, quirk_name, scan_long_videos
from mer_prep.errors import DataRootError, InvalidArgumentError, UnknownDatasetError
from mer_prep.evaluation.spotting_intervals import SpotTruth
from mer_prep.synth.layout_writers import FrameWriter
from mer_prep.synth.long_video_layouts import (
    casme_sq_long_sheet,
    default_plans,
    samm_lv_sheet,
    smic_e_sheet,
    write_long_layout,
)
from mer_prep.synth.long_videos import plan_long_video, render_long_video
from mer_prep.synth.sheets import casme3_a_sheet, samm_sheet

LAYOUTS = ("casme-sq-long", "samm-lv", "smic-e-long", "casme3-long")
#: the quirks write_long_layout(quirks=True) puts in each sheet
SYNTH_QUIRKS = {
    "casme-sq-long": ["offset-zero"],
    "samm-lv": ["fractional-frame", "apex-missing"],
    "smic-e-long": ["trailing-text"],
    "casme3-long": ["onset-zero"],
}


def _plain(intervals) -> tuple[LongInterval, ...]:
    return tuple(replace(i, source="") for i in intervals)


@pytest.fixture(scope="module", params=LAYOUTS)
def written(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    videos = write_long_layout(
        request.param, root, default_plans(request.param, 3, seed=1, empty=1)
    )
    return request.param, root, videos, scan_long_videos(request.param, root)


def test_adapter_reads_back_exactly_the_planted_intervals(written):
    dataset, _, videos, scan = written
    assert sorted(v.key for v in scan.videos) == sorted(w.key for w in videos)
    found = {v.key: v for v in scan.videos}
    for w in videos:
        video = found[w.key]
        assert _plain(video.intervals) == w.intervals
        assert video.n_frames == w.n_frames and video.fps == w.fps
        assert video.frame_numbers[0] == w.first_number
        assert video.frame_numbers == tuple(range(w.first_number, w.first_number + w.n_frames))
        # every planted expression (blinks are not annotated) is in the sheet, in the adapter's
        # numbering
        planted = [
            (e.kind, w.first_number + e.onset, w.first_number + e.offset)
            for e in w.planted
            if e.kind != "blink"
        ]
        repaired = {"offset-zero", "onset-zero"} & set(
            w.quirks
        )  # written 0: the apex / frame 1 stands in
        read = [(i.kind, i.onset, i.offset) for i in video.intervals]
        if not repaired:
            assert read == sorted(planted, key=lambda p: (p[1], p[2], p[0]))
    assert any(not w.intervals for w in videos)  # a video without expressions is still listed
    assert [quirk_name(p) for p in scan.problems] == SYNTH_QUIRKS[dataset]


def test_intervals_convert_to_spot_truths(written):
    _, _, _, scan = written
    truths = scan.truths()
    assert len(truths) == sum(len(v.intervals) for v in scan.videos) > 0
    first = next(v for v in scan.videos if v.intervals)
    assert first.truths()[0] == SpotTruth(
        video=first.video,
        onset=first.intervals[0].onset,
        offset=first.intervals[0].offset,
        kind=first.intervals[0].kind,
        subject=first.subject,
        emotion=first.intervals[0].emotion,
    )


def test_synthetic_motion_is_where_the_events_are():
    plan = plan_long_video(
        3, n_frames=200, n_me=1, n_mae=1, n_blinks=1, drift_px=0.0, noise_sigma=0.0
    )
    frames, drift = render_long_video(plan)
    assert frames.shape == (200, 128, 128, 3) and not drift.any()
    neutral = frames[0].astype(int)
    inside = np.zeros(200, bool)
    for event in plan.events:
        inside[event.onset : event.offset + 1] = True
        change = np.abs(frames[event.apex].astype(int) - neutral)
        assert change.max() > 0, event
        assert not np.abs(frames[event.onset].astype(int) - neutral).any()  # a(onset) = 0
        if event.kind == "blink":  # eyelids only: nothing moves below the nose or above the brows
            rows = np.flatnonzero(change.max(axis=(1, 2)))
            assert rows.max() - rows.min() < 20
    assert not np.abs(frames[~inside].astype(int) - neutral).any()
    by_kind = {
        e.kind: float(np.abs(frames[e.apex].astype(int) - neutral).sum()) for e in plan.events
    }
    assert by_kind["mae"] > 2 * by_kind["me"]  # MaEs are the larger movements


def test_plan_refuses_more_events_than_frames():
    with pytest.raises(InvalidArgumentError, match="cannot hold"):
        plan_long_video(0, n_frames=40, fps=30.0, n_mae=3)


def test_fractional_frames_round_to_nearest():
    problems: list = []
    assert frame_cell(566.4, field="Onset", sample_id="x", where="f:2", problems=problems) == 566
    assert frame_cell(566.5, field="Onset", sample_id="x", where="f:2", problems=problems) == 567
    assert frame_cell("12", field="Onset", sample_id="x", where="f:2", problems=problems) == 12
    assert [quirk_name(p) for p in problems] == ["fractional-frame", "fractional-frame"]
    assert (
        frame_cell(-1, field="Apex", sample_id="x", where="f:2", problems=problems, missing=(-1,))
        is None
    )


# --- each quirk of each sheet, on small hand-written sheets over tiny frames ---------------------


def _frames(folder: Path, names: list[str]) -> None:
    FrameWriter(80).write(folder, names, np.full((len(names), 8, 8), 128, np.uint8), gray=True)


def _problems(scan) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for problem in scan.problems:
        out.setdefault(quirk_name(problem), []).append(problem.file)
    return out


def test_casme_sq_long_quirks(tmp_path):
    _frames(
        tmp_path / "rawpic" / "s15" / "15_0101disgustingteeth",
        [f"img{n}.jpg" for n in range(1, 61)],
    )
    rows = [
        (1, "disgust1_1", 5, 9, 0, "4", "negative", "micro-expression"),  # offset 0 -> apex
        (1, "disgust1_2", 20, 25, 30, "4", "negative", "sort-of-expression"),  # unknown type
        (1, "anger1_1", 5, 6, 7, "4", "negative", "macro-expression"),  # no folder
        (1, "disgust1_3", 40, 45, 90, "4", "negative", "macro-expression"),  # past the last frame
        (1, "disgust1_4", "soon", 45, 50, "4", "negative", "macro-expression"),  # not a number
        (1, "disgust1_5", 10, 12, 14.0, "4+7", "negative", "micro-expression"),
        (None,) * 9 + ("checked by W.",),
    ]  # a note past the columns
    casme_sq_long_sheet(
        tmp_path, rows, [(1, 15)], name="code_final.xlsx"
    )  # the release's other file name
    scan = scan_long_videos("casme-sq-long", tmp_path)
    assert [
        (i.kind, i.onset, i.apex, i.offset, i.aus) for v in scan.videos for i in v.intervals
    ] == [("me", 5, 9, 9, (4,)), ("me", 10, 12, 14, (4, 7))]
    assert _problems(scan) == {
        "offset-zero": [f"{tmp_path / 'code_final.xlsx'}:1"],
        "unknown-type": [f"{tmp_path / 'code_final.xlsx'}:2"],
        "no-video": [f"{tmp_path / 'code_final.xlsx'}:3"],
        "outside-video": [f"{tmp_path / 'code_final.xlsx'}:4"],
        "bad-row": [f"{tmp_path / 'code_final.xlsx'}:5", f"{tmp_path / 'code_final.xlsx'}:7"],
    }


def test_samm_lv_quirks(tmp_path):
    _frames(tmp_path / "SAMM_longvideos" / "006_1", [f"006_1_{n:04d}.jpg" for n in range(1, 1001)])
    rows = [
        (6, "006_1_1", 1, 566.4, 600.6, 1000, 599, "Micro - 1/2", "4(B/C)+7B", ""),  # fractional x2
        (6, "006_1_2", 0, 1, -1, 950, 949, "Macro", "12", ""),  # onset <= 1, 4.7 s; apex -1
        (6, "006_1_3", 1, 10, 20, 30, 20, "Mirco", "12", ""),  # unknown type
        (6, "006_9_1", 1, 10, 20, 30, 20, "Macro", "12", ""),  # no such video
        (7, "006_1_4", 1, 10, 20, 30, 20, "Macro", "12", ""),
    ]  # Filename of another subject
    sheet = samm_lv_sheet(tmp_path, rows)
    scan = scan_long_videos("samm-lv", tmp_path)
    (video,) = scan.videos
    assert [(i.kind, i.onset, i.apex, i.offset, i.aus, i.emotion) for i in video.intervals] == [
        ("mae", 1, None, 950, (12,), None),
        ("me", 566, 601, 1000, (4, 7), None),
    ]
    assert _problems(scan) == {
        "fractional-frame": [f"{sheet}:11", f"{sheet}:11"],
        "apex-missing": [f"{sheet}:12"],
        "long-from-start": [f"{sheet}:12"],
        "unknown-type": [f"{sheet}:13"],
        "no-video": [f"{sheet}:14"],
        "bad-row": [f"{sheet}:15"],
    }
    # emotions come from SAMM's micro sheet when it is there, joined on (Filename, Type)
    # (samm_sheet types a row Micro when it spans < 100 frames): 006_1_2 is Micro there but Macro in
    # the long-video sheet, so it does not join
    samm_sheet(
        tmp_path,
        [
            (6, "006_1_1", 566, 601, 650, "4+7", "Anger"),
            (6, "006_1_2", 1, 20, 50, "12", "Happiness"),
        ],
    )
    joined = scan_long_videos("samm-lv", tmp_path)
    assert [(i.kind, i.emotion) for i in joined.videos[0].intervals] == [
        ("mae", None),
        ("me", "Anger"),
    ]


def test_smic_e_long_quirks(tmp_path):
    base = tmp_path / "SMIC-E_raw image" / "HS_long" / "s01"
    _frames(base / "s01_ne_01", [f"image{n:06d}.jpg" for n in range(2000, 2100)])
    _frames(base / "s01_po_02", [f"image{n:06d}.jpg" for n in range(500, 560)])
    rows = [
        ("s01", "s01_ne_01", 2010, 2030, "negative", 2000),
        ("s01", "s01_po_02", 520, 540, "positive", 510),  # FirstF is not the first file (500)
        ("s01", "s01_xx_09", 1, 5, "surprise", 0),
    ]  # no such video
    sheet = smic_e_sheet(tmp_path, rows, notes=[(), ("Note: 157 samples",), ("see the paper",)])
    scan = scan_long_videos("smic-e-long", tmp_path)
    got = {
        v.video: [(i.kind, i.onset, i.apex, i.offset, i.emotion) for i in v.intervals]
        for v in scan.videos
    }
    assert got == {
        "s01_ne_01": [("me", 10, None, 30, "negative")],
        "s01_po_02": [("me", 10, None, 30, "positive")],
    }
    assert {v.video: v.frame_numbers[0] for v in scan.videos} == {"s01_ne_01": 0, "s01_po_02": -10}
    assert _problems(scan) == {
        "first-frame": [f"{sheet}:3"],
        "no-video": [f"{sheet}:4"],
        "trailing-text": [f"{sheet}:6"],
    }


def test_casme3_long_quirks(tmp_path):
    _frames(
        tmp_path / "part_A" / "RGB" / "spNO.3" / "J" / "color", [f"{n}.jpg" for n in range(1, 201)]
    )
    rows = [
        ("spNO.3", "j", 0, 0, 8, "4", "I", "disgust"),  # onset 0 (and apex 0): frame 1; take J
        ("spNO.3", "j", 5, 60, 3460, "4", "I", "disgust"),  # 115 s "micro-expression"
        ("spNO.3", "k", 5, 6, 7, "4", "I", "disgust"),  # no such take
        ("spNO.3", "j", 150, 170, 160, "12", "II", "happy"),
    ]  # apex after offset
    sheet = casme3_a_sheet(tmp_path, rows)
    scan = scan_long_videos("casme3-long", tmp_path)
    assert [
        (v.key, [(i.kind, i.onset, i.apex, i.offset, i.emotion) for i in v.intervals])
        for v in scan.videos
    ] == [("casme3-long/spNO.3/J", [("me", 1, 1, 8, "disgust")])]
    assert _problems(scan) == {
        "onset-zero": [f"{sheet}:2"],
        "too-long": [f"{sheet}:3"],
        "no-video": [f"{sheet}:4"],
        "bad-row": [f"{sheet}:5"],
    }


def test_unknown_long_dataset_and_option(tmp_path):
    with pytest.raises(UnknownDatasetError, match="samm-lv"):
        scan_long_videos("samm-long", tmp_path)
    with pytest.raises(InvalidArgumentError, match="modality"):
        scan_long_videos("smic-e-long", tmp_path, kind="micro")
    for name in (
        "casme-sq-long",
        "samm-lv",
        "smic-e-long",
        "casme3-long",
    ):  # no frame tree: a wrong root
        with pytest.raises(DataRootError, match=str(tmp_path)):
            scan_long_videos(name, tmp_path)


def test_cli_list_videos_and_intervals(written):
    dataset, root, videos, scan = written
    result = CliRunner().invoke(main, ["list", dataset, "--root", str(root), "--videos"])
    assert result.exit_code == 0, result.output
    lines = list(csv.DictReader(io.StringIO(result.stdout)))
    assert sorted(f"{r['subject']}/{r['video']}" for r in lines) == sorted(w.key for w in videos)
    assert {int(r["n_frames"]) for r in lines} == {w.n_frames for w in videos}
    result = CliRunner().invoke(main, ["list", dataset, "--root", str(root), "--intervals"])
    assert result.exit_code == 0, result.output
    lines = list(csv.DictReader(io.StringIO(result.stdout)))
    expected = sorted((w.key, i.kind, i.onset, i.offset) for w in videos for i in w.intervals)
    assert (
        sorted(
            (f"{r['subject']}/{r['video']}", r["kind"], int(r["onset"]), int(r["offset"]))
            for r in lines
        )
        == expected
    )


def test_cli_videos_refused_for_a_clip_dataset(tmp_path):
    result = CliRunner().invoke(main, ["list", "casme2", "--root", str(tmp_path), "--videos"])
    assert result.exit_code != 0 and "long-video datasets" in result.output

"""Synthetic long videos written in each dataset's long-video layout, with its sheet in the
dataset's exact format, and what the long-video adapter must report for them.

    write_long_layout("samm-lv", root, [plan_long_video(s, fps=200.0, n_frames=600, gray=True) ...])

Layouts (``docs/datasets.md``, "Long videos"): ``casme3-long`` (``part_A/RGB/spNO.1/a/color/N.jpg``,
the Part A ME sheet), ``casme-sq-long`` (``rawpic/sNN/NN_<code><desc>/
imgN.jpg`` from img1, header-less three-sheet ``CAS(ME)^2code_final.xlsx``), ``samm-lv``
(``SAMM_longvideos/006_1/006_1_0001.jpg``, ``FACS_Movement_Only`` sheet after a 9-row
preamble, emotions in SAMM's micro sheet), ``smic-e-long`` (``SMIC-E_raw image/HS_long/sNN/
<video>/imageN.jpg`` numbered from ``FirstF``, text rows after the data). With ``quirks=True``
the first annotated video's rows carry the sheet's quirks (CAS(ME)^2 offset 0; SAMM-LV a
fractional onset and an apex -1; CAS(ME)^3 an onset 0); the expected intervals are then the
documented repairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mer_prep.datasets.long_video import LongInterval
from mer_prep.errors import InvalidArgumentError
from mer_prep.synth.layout_writers import FrameWriter
from mer_prep.synth.layouts import CASME_SQ_SUBJECTS, CASME_SQ_VIDEOS
from mer_prep.synth.long_videos import (
    LongVideoPlan,
    PlantedEvent,
    plan_long_video,
    render_long_video,
)
from mer_prep.synth.sheets import BARE_TIMING, SAMM_PREAMBLE, _save, casme3_a_sheet, samm_sheet

DATASETS = ("casme-sq-long", "samm-lv", "smic-e-long", "casme3-long")
CASME_SQ_LONG_FILE = "CAS(ME)^2code_final.xlsx"
SAMM_LV_FILE = "SAMM_LongVideos_V2_Release.xlsx"
SAMM_LV_SHEET = "FACS_Movement_Only"
SAMM_LV_COLUMNS = (
    "Subject",
    "Filename",
    "Inducement Code",
    *BARE_TIMING,
    "Duration",
    "Type",
    "Action Units",
    "Notes",
)
SAMM_LV_PREAMBLE = tuple(SAMM_PREAMBLE[:9])  # the release's 9 text rows before the header
SMIC_E_COLUMNS = ("Subject", "Filename", "OnsetF", "OffsetF", "Emotion", "FirstF")
SMIC_E_NOTES = (
    (),
    ("Notes:",),
    ("OnsetF and OffsetF are frame numbers of the raw recording; FirstF is its first frame",),
    ("Emotion: positive, negative or surprise",),
)
#: per layout, the plan settings of ``default_plans``: the dataset's frame rate and colour, few
#: enough frames to stay fast, SMIC-E without MaEs
PLAN_SETTINGS: dict[str, dict[str, Any]] = {
    "casme-sq-long": {"fps": 30.0, "n_frames": 360},
    "samm-lv": {"fps": 200.0, "n_frames": 800, "gray": True, "n_mae": 1},
    "smic-e-long": {"fps": 100.0, "n_frames": 300, "n_mae": 0},
    "casme3-long": {"fps": 30.0, "n_frames": 300, "n_mae": 0},
}
_EMOTION_WORDS = {
    "happiness": "positive",
    "disgust": "negative",
    "negative": "negative",
    "surprise": "surprise",
}


@dataclass(frozen=True)
class WrittenLongVideo:
    """A written long video and what its adapter must report.

    key: ``subject/video`` as the adapter's ``LongVideo.key``; n_frames; first_number: the
    adapter's number of the video's first frame (planted index i is frame ``first_number + i``);
    intervals: the annotated MEs/MaEs as the adapter reads them (quirk repairs applied,
    ``source`` left blank); planted: the events as rendered (0-based indices, blinks included);
    quirks: names of the quirks its sheet rows carry.
    """

    dataset: str
    key: str
    n_frames: int
    fps: float
    first_number: int
    intervals: tuple[LongInterval, ...]
    planted: tuple[PlantedEvent, ...]
    quirks: tuple[str, ...] = ()


def default_plans(
    dataset: str, n_videos: int, seed: int = 0, *, empty: int = 0
) -> list[LongVideoPlan]:
    """``n_videos`` plans with ``dataset``'s ``PLAN_SETTINGS``; the last ``empty`` of them plant
    blinks and drift only (a video without expressions)."""
    if dataset not in PLAN_SETTINGS:
        raise InvalidArgumentError(
            f"no long-video layout {dataset!r}; known: {', '.join(DATASETS)}"
        )
    plans = []
    for index in range(n_videos):
        settings = dict(PLAN_SETTINGS[dataset])
        if index >= n_videos - empty:
            settings.update(n_me=0, n_mae=0)
        plans.append(plan_long_video(seed * 1000 + index, key=dataset, **settings))
    return plans


def write_long_layout(
    dataset: str,
    root: Path,
    plans: Sequence[LongVideoPlan],
    *,
    quirks: bool = True,
    quality: int = 95,
) -> list[WrittenLongVideo]:
    """Render every plan and write ``dataset``'s long-video layout under ``root``; returns, per
    video, what the adapter must report. SMIC-E plans must hold no MaE (it codes MEs only)."""
    writers = {
        "casme-sq-long": _casme_sq_long,
        "samm-lv": _samm_lv,
        "smic-e-long": _smic_e_long,
        "casme3-long": _casme3_long,
    }
    if dataset not in writers:
        raise InvalidArgumentError(
            f"no long-video layout {dataset!r}; known: {', '.join(DATASETS)}"
        )
    return writers[dataset](Path(root), plans, FrameWriter(quality), quirks)


def _expected(
    kind: str, onset: int, apex: int | None, offset: int, emotion: str | None, aus: str
) -> LongInterval:
    return LongInterval.coded(kind, (onset, apex, offset), emotion, aus)


def casme_sq_long_sheet(
    root: Path,
    rows: Sequence[tuple[Any, ...]],
    subjects: Sequence[tuple[int, int]],
    name: str = CASME_SQ_LONG_FILE,
) -> Path:
    """The code sheet as released: ``CASFEcode_final`` (no header: participant, expression
    name, onset, apex, offset, AUs, emotion, type), ``naming rule1`` (participant, subject),
    ``naming rule2`` (4-digit code, video name)."""
    return _save(
        root / name,
        [
            ("CASFEcode_final", rows),
            ("naming rule1", list(subjects)),
            ("naming rule2", [(code, video) for code, video, _ in CASME_SQ_VIDEOS]),
        ],
    )


def _casme_sq_long(
    root: Path, plans: Sequence[LongVideoPlan], frames: FrameWriter, quirks: bool
) -> list[WrittenLongVideo]:
    rows, out, quirked = [], [], False
    for index, plan in enumerate(plans):
        participant = index // 2 + 1
        subject = CASME_SQ_SUBJECTS[participant - 1]
        code, video, description = CASME_SQ_VIDEOS[index % len(CASME_SQ_VIDEOS)]
        folder = root / "rawpic" / f"s{subject:02d}" / f"{subject:02d}_{code}{description}"
        pixels, _ = render_long_video(plan)
        frames.write(folder, [f"img{n + 1}.jpg" for n in range(plan.n_frames)], pixels)
        expected, names = [], []
        for k, event in enumerate(plan.expressions, start=1):
            onset, apex, offset = event.onset + 1, event.apex + 1, event.offset + 1
            emotion = _EMOTION_WORDS[event.emotion]
            written_offset = offset
            if quirks and not quirked:  # the release's offset-0 rows: the adapter uses the apex
                written_offset, offset, quirked = 0, apex, True
                names.append("offset-zero")
            rows.append(
                (
                    participant,
                    f"{video}_{k}",
                    onset,
                    apex,
                    written_offset,
                    event.action_units,
                    emotion,
                    "micro-expression" if event.kind == "me" else "macro-expression",
                )
            )
            expected.append(_expected(event.kind, onset, apex, offset, emotion, event.action_units))
        out.append(
            WrittenLongVideo(
                "casme-sq-long",
                f"casme-sq-long/s{subject:02d}/{folder.name}",
                plan.n_frames,
                plan.fps,
                1,
                _sorted(expected),
                plan.events,
                tuple(names),
            )
        )
    participants = sorted({index // 2 + 1 for index in range(len(plans))})
    casme_sq_long_sheet(root, rows, [(p, CASME_SQ_SUBJECTS[p - 1]) for p in participants])
    return out


def samm_lv_sheet(root: Path, rows: Sequence[tuple[Any, ...]], name: str = SAMM_LV_FILE) -> Path:
    """``SAMM_LongVideos_V2_Release.xlsx``: sheet ``FACS_Movement_Only``, 9 preamble rows, the
    header (``SAMM_LV_COLUMNS``), then ``rows`` in that column order."""
    return _save(root / name, [(SAMM_LV_SHEET, [*SAMM_LV_PREAMBLE, SAMM_LV_COLUMNS, *rows])])


def _samm_lv(
    root: Path, plans: Sequence[LongVideoPlan], frames: FrameWriter, quirks: bool
) -> list[WrittenLongVideo]:
    rows, micro_rows, out = [], [], []
    fractional = apex_missing = not quirks  # each quirk once, on the first rows that can carry it
    for index, plan in enumerate(plans):
        subject, take = 6 + index // 2, index % 2 + 1
        video = f"{subject:03d}_{take}"
        pixels, _ = render_long_video(plan)
        frames.write(
            root / "SAMM_longvideos" / video,
            [f"{video}_{n + 1:04d}.jpg" for n in range(plan.n_frames)],
            pixels,
            gray=True,
        )
        expected, names = [], []
        for k, event in enumerate(plan.expressions, start=1):
            onset, apex, offset = event.onset + 1, event.apex + 1, event.offset + 1
            filename, kind = f"{video}_{k}", ("Micro - 1/2" if event.kind == "me" else "Macro")
            written_onset: float = onset
            written_apex, kept_apex = apex, apex
            if not fractional:  # 566.4 in the release: rounds back to the onset
                written_onset, fractional = onset + 0.4, True
                names.append("fractional-frame")
            elif not apex_missing:
                written_apex, kept_apex, apex_missing = -1, None, True
                names.append("apex-missing")
            rows.append(
                (
                    subject,
                    filename,
                    1,
                    written_onset,
                    written_apex,
                    offset,
                    offset - onset,
                    kind,
                    event.action_units,
                    "",
                )
            )
            emotion = None
            if event.kind == "me":
                emotion = event.emotion.capitalize()
                micro_rows.append(
                    (subject, filename, onset, apex, offset, event.action_units, emotion)
                )
            expected.append(
                _expected(event.kind, onset, kept_apex, offset, emotion, event.action_units)
            )
        out.append(
            WrittenLongVideo(
                "samm-lv",
                f"samm-lv/{subject:03d}/{video}",
                plan.n_frames,
                plan.fps,
                1,
                _sorted(expected),
                plan.events,
                tuple(names),
            )
        )
    samm_lv_sheet(root, rows)
    samm_sheet(
        root, micro_rows
    )  # its Type is Micro for < 100 frames: every ME here (ME_SECONDS at 200 fps)
    return out


def smic_e_sheet(
    root: Path,
    rows: Sequence[tuple[Any, ...]],
    modality: str = "HS",
    notes: Sequence[tuple[Any, ...]] = SMIC_E_NOTES,
) -> Path:
    """``SMIC-<X>-E_annotation.xlsx``: header ``SMIC_E_COLUMNS``, ``rows``, then text ``notes``."""
    return _save(
        root / f"SMIC-{modality}-E_annotation.xlsx", [("Sheet1", [SMIC_E_COLUMNS, *rows, *notes])]
    )


def _smic_e_long(
    root: Path, plans: Sequence[LongVideoPlan], frames: FrameWriter, quirks: bool
) -> list[WrittenLongVideo]:
    rows, out = [], []
    for index, plan in enumerate(plans):
        if any(e.kind == "mae" for e in plan.events):
            raise InvalidArgumentError("SMIC-E codes micro-expressions only: plan no MaE")
        subject = index + 1
        first = (
            1000 * subject + 37
        )  # recordings start mid-stream: frame files are numbered from FirstF
        expressions = plan.expressions
        word = _EMOTION_WORDS[expressions[0].emotion] if expressions else "negative"
        video = f"s{subject:02d}_{word[:2]}_01"
        pixels, _ = render_long_video(plan)
        frames.write(
            root / "SMIC-E_raw image" / "HS_long" / f"s{subject:02d}" / video,
            [f"image{first + n:06d}.jpg" for n in range(plan.n_frames)],
            pixels,
        )
        expected = []
        for event in expressions:
            emotion = _EMOTION_WORDS[event.emotion]
            rows.append(
                (
                    f"s{subject:02d}",
                    video,
                    first + event.onset,
                    first + event.offset,
                    emotion,
                    first,
                )
            )
            expected.append(
                LongInterval(
                    kind="me", onset=event.onset, apex=None, offset=event.offset, emotion=emotion
                )
            )
        out.append(
            WrittenLongVideo(
                "smic-e-long",
                f"smic-e-long/s{subject:02d}/{video}",
                plan.n_frames,
                plan.fps,
                0,
                _sorted(expected),
                plan.events,
                ("trailing-text",) if quirks else (),
            )
        )
    smic_e_sheet(root, rows, notes=SMIC_E_NOTES if quirks else ())
    return out


def _casme3_long(
    root: Path, plans: Sequence[LongVideoPlan], frames: FrameWriter, quirks: bool
) -> list[WrittenLongVideo]:
    rows, out, quirked = [], [], not quirks
    for index, plan in enumerate(plans):
        if any(e.kind == "mae" for e in plan.events):
            raise InvalidArgumentError(
                "the CAS(ME)^3 Part A ME sheet holds micro-expressions only: plan no MaE"
            )
        subject, take = f"spNO.{index // 2 + 1}", "ab"[index % 2]
        pixels, _ = render_long_video(plan)
        frames.write(
            root / "part_A" / "RGB" / subject / take / "color",
            [f"{n + 1}.jpg" for n in range(plan.n_frames)],
            pixels,
        )
        expected, names = [], []
        for event in plan.expressions:
            onset, apex, offset = event.onset + 1, event.apex + 1, event.offset + 1
            written_onset = onset
            if not quirked:  # the sheet's onset-0 rows: read as frame 1, the first frame file
                written_onset, onset, quirked = 0, 1, True
                names.append("onset-zero")
            rows.append(
                (subject, take, written_onset, apex, offset, event.action_units, "I", event.emotion)
            )
            expected.append(_expected("me", onset, apex, offset, event.emotion, event.action_units))
        out.append(
            WrittenLongVideo(
                "casme3-long",
                f"casme3-long/{subject}/{take}",
                plan.n_frames,
                plan.fps,
                1,
                _sorted(expected),
                plan.events,
                tuple(names),
            )
        )
    casme3_a_sheet(root, rows)
    return out


def _sorted(intervals: list[LongInterval]) -> tuple[LongInterval, ...]:
    return tuple(sorted(intervals, key=lambda i: (i.onset, i.offset, i.kind)))

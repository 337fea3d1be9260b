"""Write synthetic clips in a dataset's exact on-disk layout, annotation spreadsheets included.

    write_layout("casme2", root, [SynthClip(...), ...]) -> [WrittenClip(...), ...]

Each WrittenClip states what the dataset adapter must find for that clip (sample id, frame
paths, onset/apex/offset in the dataset's numbering), so tests can compare the two.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mer_prep.errors import InvalidArgumentError
from mer_prep.synth import newer_layouts, sheets
from mer_prep.synth.layout_writers import (
    FrameWriter,
    SynthClip,
    WrittenClip,
    clip_names,
    frame_numbers,
    sheet_timing,
    write_video,
)

__all__ = [
    "LAYOUTS",
    "VARIANTS",
    "FrameWriter",
    "SynthClip",
    "WrittenClip",
    "clip_names",
    "frame_numbers",
    "sheet_timing",
    "write_layout",
    "write_video",
]


LAYOUTS: tuple[str, ...] = (
    "casme1",
    "casme2",
    "samm",
    "smic",
    "casme-sq",
    "casme3",
    "dfme",
    "4dme",
    "mmew",
    "manifest",
)
#: write_layout's ``variant`` per dataset (the first is the default)
VARIANTS: dict[str, tuple[str, ...]] = {
    "casme3": ("takes", "clips", "C"),
    "mmew": ("official", "flat"),
    "manifest": ("frames", "video", "mixed"),
}
SMIC_ABBREVIATIONS = {"negative": "ne", "positive": "po", "surprise": "sur"}
# CAS(ME)^2 stimulus videos: (code, video name, folder description)
#: Datasets of docs/datasets.md whose layouts live in ``newer_layouts``.
NEWER = ("casme3", "dfme", "4dme", "mmew", "manifest")

CASME_SQ_VIDEOS: tuple[tuple[str, str, str], ...] = (
    ("0101", "disgust1", "disgustingteeth"),
    ("0102", "disgust2", "eatingworms"),
    ("0401", "anger1", "girlcrashing"),
    ("0402", "anger2", "beatingpregnantwoman"),
    ("0502", "happy1", "funnyerrors"),
    ("0503", "happy2", "unnyfarting"),
    ("0505", "happy3", "funnyinnovations"),
    ("0507", "happy4", "climbing"),
)
CASME_SQ_SUBJECTS = (
    15,
    16,
    19,
    20,
    21,
    22,
    23,
    24,
    25,
    26,
    27,
    29,
    30,
    31,
    32,
    33,
    34,
    35,
    36,
    37,
    38,
    40,
)
_CASME_SQ_CATEGORY = {
    "anger": ("anger",),
    "disgust": ("disgust",),
    "happy": ("happy",),
    "happiness": ("happy",),
    "positive": ("happy",),
    "negative": ("anger", "disgust"),
}


def write_layout(
    dataset: str,
    root: Path,
    clips: Sequence[SynthClip],
    *,
    modality: str = "HS",
    spreadsheet_version: str | None = None,
    image_quality: int = 95,
    variant: str | None = None,
    videos: bool = False,
) -> list[WrittenClip]:
    """Write ``clips`` under ``root`` as ``dataset`` ships; returns one WrittenClip per clip, in
    order.

    modality: SMIC only (HS/VIS/NIR). spreadsheet_version: CASME II only ("20140508" default,
    or "relabelled"). image_quality: JPEG quality. variant (``VARIANTS``): CAS(ME)^3 ``takes``
    (``part_A/RGB`` + ``part_A/depth``), ``clips`` (``Part_A_ME_clip/frame`` + ``depth``) or
    ``C`` (Part C); MMEW ``official`` or ``flat``; manifest ``frames``, ``video`` or ``mixed``.
    videos: CAS(ME)^2 also writes ``rawvideo/`` (lossless FFV1 .avi, video frame N-1 = imgN);
    CAS(ME)^3 Part C writes one video per subject instead of frame folders. A video clip's
    WrittenClip has no frame paths and 0-based video indices.
    """
    if dataset not in LAYOUTS:
        raise InvalidArgumentError(
            f"no synthetic layout for {dataset!r}; known: {', '.join(LAYOUTS)}"
        )
    if dataset == "smic" and modality.upper() not in ("HS", "VIS", "NIR"):
        raise InvalidArgumentError(f"SMIC modality must be HS, VIS or NIR, got {modality!r}")
    if variant is not None and variant not in VARIANTS.get(dataset, ()):
        raise InvalidArgumentError(
            f"{dataset} layout variant must be one of {VARIANTS.get(dataset, ())}, got {variant!r}"
        )
    variant = variant or VARIANTS.get(dataset, ("",))[0]
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    frames = FrameWriter(image_quality)
    if dataset == "smic":
        return _smic(root, clips, frames, modality.upper())
    if dataset == "casme2":
        return _casme2(root, clips, frames, spreadsheet_version or "20140508")
    if dataset == "casme-sq":
        return _casme_sq(root, clips, frames, videos)
    if dataset in NEWER:
        return newer_layouts.write(dataset, root, clips, frames, variant, videos)
    return {"casme1": _casme1, "samm": _samm}[dataset](root, clips, frames)


def _casme2(
    root: Path, clips: Sequence[SynthClip], frames: FrameWriter, version: str
) -> list[WrittenClip]:
    rows, written = [], []
    for clip, name in clip_names(clips, lambda _, n: f"EP{n:02d}_{n % 7 + 1:02d}" + "f" * (n % 2)):
        sub = f"sub{clip.subject:02d}"
        done = frames.numbered(
            f"casme2/{sub}/{name}", root / "CASME2_RAW_selected" / sub / name, clip, "img"
        )
        frames.write(
            root / "Cropped" / sub / name,
            [f"reg_img{n}.jpg" for n in frame_numbers(clip)],
            _centre_crop(clip.frames),
        )
        missing = "/" if done.apex is None else done.apex
        rows.append(
            (clip.subject, name, done.onset, missing, done.offset, clip.action_units, clip.emotion)
        )
        written.append(done)
    sheets.casme2_sheet(root, rows, version)
    return written


def _centre_crop(frames: np.ndarray) -> np.ndarray:
    # stands in for CASME II's face crops: same frames, smaller field of view
    h, w = frames.shape[1:3]
    dy, dx = h // 8, w // 8
    return frames[:, dy : h - dy or h, dx : w - dx or w]


def _samm(root: Path, clips: Sequence[SynthClip], frames: FrameWriter) -> list[WrittenClip]:
    rows, written = [], []
    for clip, name in clip_names(
        clips, lambda clip, n: f"{clip.subject:03d}_{(n - 1) % 7 + 1}_{(n - 1) // 7 + 1}"
    ):
        sub = f"{clip.subject:03d}"
        done = frames.numbered(
            f"samm/{sub}/{name}", root / sub / name, clip, f"{sub}_", digits=5, gray=True
        )
        missing = -1 if done.apex is None else done.apex
        rows.append(
            (clip.subject, name, done.onset, missing, done.offset, clip.action_units, clip.emotion)
        )
        written.append(done)
    sheets.samm_sheet(root, rows)
    return written


def _smic_abbreviation(clip: SynthClip) -> str:
    emotion = clip.emotion.lower()
    return SMIC_ABBREVIATIONS.get(emotion, emotion[:3])


def _smic(
    root: Path, clips: Sequence[SynthClip], frames: FrameWriter, modality: str
) -> list[WrittenClip]:
    written = []
    for clip, name in clip_names(
        clips,
        lambda clip, n: f"s{clip.subject:02d}_{_smic_abbreviation(clip)}_{n:02d}",
        key=lambda clip: (clip.subject, clip.emotion.lower()),
    ):
        sub, emotion = f"s{clip.subject:02d}", clip.emotion.lower()
        onset, _, offset = sheet_timing(clip)
        # SMIC clips were cut to the expression: only onset..offset exist on disk
        span = clip.frames[clip.onset : clip.offset + 1]
        folder = root / modality / sub / "micro" / emotion / name
        paths = frames.write(folder, [f"image{n}.bmp" for n in range(onset, offset + 1)], span)
        written.append(WrittenClip(f"smic/{sub}/{name}", tuple(paths), onset, None, offset))
    return written


def _casme1(root: Path, clips: Sequence[SynthClip], frames: FrameWriter) -> list[WrittenClip]:
    rows: dict[str, list] = defaultdict(list)
    written = []
    for clip, name in clip_names(clips, lambda _, n: f"EP{n:02d}_{n % 9 + 1}"):
        section = "A" if clip.subject <= 7 else "B"  # our convention: subjects 1-7 in Section A
        sub = f"sub{clip.subject:02d}"
        folder = root / f"Section {section}" / sub / name
        done = frames.numbered(f"casme1/{sub}/{name}", folder, clip, f"{name}-")
        rows[section].append((clip.subject, name, *done.timing, clip.action_units, clip.emotion))
        written.append(done)
    for section in ("A", "B"):
        (root / f"Section {section}").mkdir(exist_ok=True)
        sheets.casme1_sheet(root, section, rows[section])
    return written


def _casme_sq(
    root: Path, clips: Sequence[SynthClip], frames: FrameWriter, videos: bool = False
) -> list[WrittenClip]:
    by_name = {name: (code, desc) for code, name, desc in CASME_SQ_VIDEOS}
    next_frame: dict[tuple[int, str], int] = {}
    per_video: dict[tuple[int, str], int] = defaultdict(int)
    cycles = {
        cat: itertools.cycle([n for _, n, _ in CASME_SQ_VIDEOS if n.startswith(cat)])
        for cat in ("anger", "disgust", "happy")
    }
    negative = itertools.cycle(_CASME_SQ_CATEGORY["negative"])
    rows, written = [], []
    recordings: dict[Path, dict[int, np.ndarray]] = defaultdict(
        dict
    )  # rawpic folder -> imgN frames
    for clip in clips:
        subject = _casme_sq_subject(clip.subject)
        if clip.clip is not None:
            if clip.clip not in by_name:
                raise InvalidArgumentError(
                    f"CAS(ME)^2 clip must name a stimulus video {sorted(by_name)}, got "
                    f"{clip.clip!r}"
                )
            video = clip.clip
        else:
            categories = _CASME_SQ_CATEGORY.get(clip.emotion.lower(), ("anger",))
            video = next(cycles[next(negative) if len(categories) > 1 else categories[0]])
        code, desc = by_name[video]
        folder = root / "rawpic" / f"s{subject:02d}" / f"{subject:02d}_{code}{desc}"
        # several expressions of one stimulus share its folder, one after the other
        first = max(clip.first_frame_number, next_frame.get((subject, video), 1))
        numbers = [first + i for i in range(len(clip.frames))]
        next_frame[(subject, video)] = numbers[-1] + 1
        paths = frames.write(folder, [f"img{n}.jpg" for n in numbers], clip.frames)
        recordings[folder].update(zip(numbers, clip.frames, strict=True))
        onset, apex, offset = sheet_timing(clip, first)
        per_video[(subject, video)] += 1
        label = f"{video}_{per_video[(subject, video)]}"
        fps = clip.fps or 30.0
        kind = "micro-expression" if (offset - onset + 1) / fps <= 0.5 else "macro-expression"
        rows.append(
            (
                clip.subject,
                label,
                onset,
                0 if apex is None else apex,
                offset,
                clip.action_units,
                clip.emotion,
                kind,
            )
        )
        written.append(
            WrittenClip(
                f"casme-sq/s{subject:02d}/{label}",
                tuple(paths[clip.onset : clip.offset + 1]),
                onset,
                apex,
                offset,
            )
        )
    participants = sorted({c.subject for c in clips})
    sheets.casme_sq_sheet(
        root,
        rows,
        [(code, name) for code, name, _ in CASME_SQ_VIDEOS],
        [(p, _casme_sq_subject(p)) for p in participants],
    )
    for folder, numbered in recordings.items() if videos else ():
        # the recording from img1 on (frame N-1 of the video is imgN); frames before the first
        # written one repeat it
        last, first = max(numbered), numbered[min(numbered)]
        held = [numbered.get(n, first) for n in range(1, last + 1)]
        write_video(
            root / "rawvideo" / folder.parent.name / f"{folder.name}.avi",
            np.stack(held),
            clips[0].fps or 30.0,
        )
    return written


def _casme_sq_subject(participant: int) -> int:
    """Subject folder number of a 1-based participant (s15, s16, s19, ...)."""
    if participant <= len(CASME_SQ_SUBJECTS):
        return CASME_SQ_SUBJECTS[participant - 1]
    return CASME_SQ_SUBJECTS[-1] + participant - len(CASME_SQ_SUBJECTS)

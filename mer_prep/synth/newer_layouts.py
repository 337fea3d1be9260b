"""Synthetic look-alikes of the newer datasets (docs/datasets.md): CAS(ME)^3 Parts A and C, DFME,
4DME, MMEW and a lab manifest, each in its real layout with its sheet and quirks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mer_prep.synth import sheets
from mer_prep.synth.layout_writers import (
    FrameWriter,
    SynthClip,
    WrittenClip,
    check_clip,
    clip_names,
    frame_numbers,
    sheet_timing,
    write_video,
)

CASME3_TAKES = "abcdefghijklm"


def write(
    dataset: str,
    root: Path,
    clips: Sequence[SynthClip],
    frames: FrameWriter,
    variant: str,
    videos: bool,
) -> list[WrittenClip]:
    """``write_layout`` for a dataset of ``layouts.NEWER``."""
    if dataset == "casme3":
        return (
            _casme3_c(root, clips, frames, videos)
            if variant == "C"
            else _casme3(root, clips, frames, variant)
        )
    if dataset == "4dme":
        return _one_sheet(root, sheets.fourd_sheet, _fourd(root, clips, frames))
    if dataset == "mmew":
        return _one_sheet(root, sheets.mmew_sheet, _mmew(root, clips, frames, variant))
    if dataset == "manifest":
        return _manifest(root, clips, frames, variant)
    return _dfme(root, clips, frames)


def _one_sheet(
    root: Path,
    sheet: Callable[[Path, list[tuple[Any, ...]]], Path],
    made: Iterable[tuple[tuple[Any, ...], WrittenClip]],
) -> list[WrittenClip]:
    """The clips ``made`` (each with its row of the dataset's one ``sheet``), then the sheet."""
    rows, written = [], []
    for row, done in made:
        rows.append(row)
        written.append(done)
    sheet(root, rows)
    return written


_OBJECTIVE = {
    "happy": "I",
    "disgust": "II",
    "fear": "III",
    "anger": "IV",
    "surprise": "V",
    "sad": "VI",
}
DFME_FOLDERS = {"train": "DFME_train", "testA": "DFME_testA", "testB": "DFME_testB"}
DFME_EMOTION_IDS = {
    "anger": 0,
    "contempt": 1,
    "disgust": 2,
    "fear": 3,
    "happiness": 4,
    "happy": 4,
    "sadness": 5,
    "sad": 5,
    "surprise": 6,
}
_DFME_PARTS = ("train", "train", "testA", "testB")  # a subject's part, by subject number


def depth_frames(frames: np.ndarray) -> np.ndarray:
    """16-bit depth frames standing in for CAS(ME)^3's (values like millimetres, 400-1420)."""
    gray = frames if frames.ndim == 3 else frames.mean(axis=-1)
    return (400 + 4 * gray.astype(np.uint16)).astype(np.uint16)


def _write_depth(folder: Path, names: Sequence[str], frames: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, depth in zip(names, depth_frames(frames), strict=True):
        if not cv2.imwrite(str(folder / name), depth):
            raise OSError(f"could not write depth frame {folder / name}")


def _casme3(
    root: Path, clips: Sequence[SynthClip], frames: FrameWriter, variant: str
) -> list[WrittenClip]:
    """Part A: whole takes (``part_A/RGB``, ``part_A/depth``) or per-ME clips (``Part_A_ME_clip``).

    Several clips of one subject and take (``clip`` names the take letter) follow each other in
    the take, as several MEs of one recording do; the sheet sits at the root."""
    next_frame: dict[tuple[int, str], int] = {}
    rows, written = [], []
    for clip, take in clip_names(clips, lambda _, n: CASME3_TAKES[(n - 1) % len(CASME3_TAKES)]):
        subject = f"spNO.{clip.subject}"
        first = max(clip.first_frame_number, next_frame.get((clip.subject, take.lower()), 1))
        numbers = [first + i for i in range(len(clip.frames))]
        next_frame[(clip.subject, take.lower())] = numbers[-1] + 1
        onset, apex, offset = sheet_timing(clip, first)
        names = [f"{n}.jpg" for n in numbers]
        if variant == "takes":
            color = root / "part_A" / "RGB" / subject / take / "color"
            depth = root / "part_A" / "depth" / subject / take / "depth"
        else:
            color = root / "Part_A_ME_clip" / "frame" / f"{subject}_{take}_{onset}"
            depth = root / "Part_A_ME_clip" / "depth" / f"{subject}_{take}_{onset}"
        paths = frames.write(color, names, clip.frames)
        _write_depth(depth, [f"{n}.png" for n in numbers], clip.frames)
        rows.append(
            (
                subject,
                take,
                onset,
                apex,
                offset,
                clip.action_units,
                _OBJECTIVE.get(clip.emotion.lower(), "VII"),
                clip.emotion,
            )
        )
        written.append(
            WrittenClip(
                f"casme3/{subject}/{take}_{onset}",
                tuple(paths[clip.onset : clip.offset + 1]),
                onset,
                apex,
                offset,
            )
        )
    sheets.casme3_a_sheet(root, rows)
    return written


def _casme3_c(
    root: Path, clips: Sequence[SynthClip], frames: FrameWriter, videos: bool
) -> list[WrittenClip]:
    """Part C: one recording per subject (``part_C/<n>/`` frames, or ``part_C/<n>.avi``), the
    MEs one after the other; the sheet has no apex."""
    counts: dict[int, int] = defaultdict(int)
    next_frame: dict[int, int] = {}
    recordings: dict[int, dict[int, np.ndarray]] = defaultdict(dict)
    rows, written = [], []
    for clip in clips:
        first = max(clip.first_frame_number, next_frame.get(clip.subject, 1))
        numbers = [first + i for i in range(len(clip.frames))]
        next_frame[clip.subject] = numbers[-1] + 1
        counts[clip.subject] += 1
        onset, _, offset = sheet_timing(clip, first)
        sample_id = f"casme3/C{clip.subject:02d}/me{counts[clip.subject]}"
        if videos:
            recordings[clip.subject].update(zip(numbers, clip.frames, strict=True))
            written.append(WrittenClip(sample_id, (), onset - 1, None, offset - 1))
        else:
            paths = frames.write(
                root / "part_C" / str(clip.subject), [f"{n}.jpg" for n in numbers], clip.frames
            )
            written.append(
                WrittenClip(
                    sample_id, tuple(paths[clip.onset : clip.offset + 1]), onset, None, offset
                )
            )
        rows.append(
            (clip.subject, counts[clip.subject], onset, offset, clip.action_units, clip.emotion)
        )
    for subject, numbered in recordings.items():
        first_frame = numbered[min(numbered)]
        held = [numbered.get(n, first_frame) for n in range(1, max(numbered) + 1)]
        write_video(root / "part_C" / f"{subject}.avi", np.stack(held), 30.0)
    sheets.casme3_c_sheet(root, rows)
    return written


def _dfme(root: Path, clips: Sequence[SynthClip], frames: FrameWriter) -> list[WrittenClip]:
    """``DFME_<part>/sub0003_01/00000.png`` (0-based: first_frame_number 1 writes 00000) and the
    three split sheets; each subject's part is ``clip.part`` or follows its number."""
    rows: dict[str, list] = defaultdict(list)
    written = []
    for clip, name in clip_names(clips, lambda clip, n: f"sub{clip.subject:04d}_{n:02d}"):
        subject = f"sub{clip.subject:04d}"
        part = clip.part or _DFME_PARTS[clip.subject % len(_DFME_PARTS)]
        base = clip.first_frame_number - 1
        numbers = [base + i for i in range(len(clip.frames))]
        paths = frames.write(
            root / DFME_FOLDERS[part] / name, [f"{n:05d}.png" for n in numbers], clip.frames
        )
        onset, apex, offset = sheet_timing(clip, base)
        rows[part].append(
            (
                subject,
                name,
                onset,
                apex,
                offset,
                clip.emotion,
                DFME_EMOTION_IDS.get(clip.emotion.lower()),
                clip.fps or 500,
                clip.action_units,
            )
        )
        written.append(WrittenClip(f"dfme/{subject}/{name}", tuple(paths), onset, apex, offset))
    sheets.dfme_sheets(root, rows)
    return written


def _fourd(
    root: Path, clips: Sequence[SynthClip], frames: FrameWriter
) -> Iterator[tuple[tuple[Any, ...], WrittenClip]]:
    """``gray_micro/S01/S01_01/<n>.jpg`` grey frames (names *unconfirmed*), each with its row of
    the labelling sheet."""
    for clip, name in clip_names(clips, lambda clip, n: f"S{clip.subject:02d}_{n:02d}"):
        subject = f"S{clip.subject:02d}"
        folder = root / "gray_micro" / subject / name
        done = frames.numbered(f"4dme/{subject}/{name}", folder, clip, gray=True)
        yield (subject, name, clip.emotion, *done.timing, clip.action_units), done


def _mmew(
    root: Path, clips: Sequence[SynthClip], frames: FrameWriter, variant: str
) -> Iterator[tuple[tuple[Any, ...], WrittenClip]]:
    """``S03/<emotion>/S03-01-002/<n>.jpg`` (official) or ``Micro_Expression/<emotion>/<clip>/``
    (flat), each with its sheet row; an ``others`` clip sits in a ``repression`` folder, as in
    the release."""
    for clip, name in clip_names(
        clips, lambda clip, n: f"S{clip.subject:02d}-{(n - 1) // 9 + 1:02d}-{n:03d}"
    ):
        subject = f"S{clip.subject:02d}"
        emotion = clip.emotion.lower()
        folder_emotion = "repression" if emotion == "others" else emotion
        base = root / subject if variant == "official" else root / "Micro_Expression"
        done = frames.numbered(f"mmew/{subject}/{name}", base / folder_emotion / name, clip)
        yield (subject, name, *done.timing, clip.action_units, clip.emotion, ""), done


def _manifest(
    root: Path, clips: Sequence[SynthClip], frames: FrameWriter, variant: str
) -> list[WrittenClip]:
    """A lab's recordings: ``frames/p01/take1/frame<n>.jpg`` folders and/or ``videos/p01_take1.avi``
    (``mixed``: every other clip a video), listed in ``manifest.csv`` with relative paths."""
    rows, written = [], []
    for k, (clip, name) in enumerate(clip_names(clips, lambda _, n: f"take{n}")):
        subject = f"p{clip.subject:02d}"
        fps = clip.fps or 100.0
        video = variant == "video" or (variant == "mixed" and k % 2 == 1)
        if video:
            path = root / "videos" / f"{subject}_{name}.avi"
            write_video(path, clip.frames, fps)
            check_clip(clip)
            onset, apex, offset = clip.onset, clip.apex, clip.offset
            written.append(WrittenClip(f"manifest/{subject}/{name}", (), onset, apex, offset))
        else:
            path = root / "frames" / subject / name
            paths = frames.write(path, [f"frame{n}.jpg" for n in frame_numbers(clip)], clip.frames)
            onset, apex, offset = sheet_timing(clip)
            written.append(
                WrittenClip(
                    f"manifest/{subject}/{name}",
                    tuple(paths[clip.onset : clip.offset + 1]),
                    onset,
                    apex,
                    offset,
                )
            )
        rows.append(
            (
                subject,
                name,
                path.relative_to(root).as_posix(),
                onset,
                apex,
                offset,
                clip.emotion,
                fps,
                clip.action_units,
            )
        )
    sheets.manifest_file(root, rows)
    return written

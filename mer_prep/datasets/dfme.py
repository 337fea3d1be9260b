"""DFME adapter (TAFFC 2023): 7,526 clips of 671 participants, annotated by three split sheets.

Sheets ``training_full_with_AU.xlsx``, ``testA_full_with_AU.xlsx``, ``testB_full_with_AU.xlsx``
(``Sheet1``: Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Emotion, EmotionId, Fps,
AU), 1,856 / 474 / 299 rows, subject-disjoint. Each sample keeps its sheet as
``Sample.partition`` (``train``, ``testA``, ``testB``): the split kind ``dfme_official``
(``mer_prep.evaluation.splits``) is built from it. Quirks:

- frames are **0-based**, five-digit PNGs, one folder per clip: ``{Filename}/{frame:05d}.png``
  (under ``DFME_train/`` and the like; the parent folders of the test parts are
  *unconfirmed*, so clip folders are looked up by name anywhere within three levels of the
  root, and a name found twice is a problem);
- the frame rate is per row (``Fps``: Part A 500, Part B 300, Part C 200 fps); a blank or
  non-positive one is a problem;
- ``Emotion`` and ``EmotionId`` (anger 0, contempt 1, disgust 2, fear 3, happiness 4,
  sadness 5, surprise 6) must agree; a blank Emotion takes the id's name;
- AU strings carry action descriptors (``R4+AD38``), parsed by ``mer_prep.datasets.aus``;
- a subject met in two sheets breaks the official subject-disjoint parts: its rows in the
  later sheet are problems.

The resolution is *unconfirmed*; subjects are ``dfme/sub0003``, clips ``sub0003_01``.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from mer_prep.datasets._annotated import ClipRef, RowScan, plain_name, sheet_source
from mer_prep.datasets._sheets import (
    CLIP_COLUMNS,
    SheetRow,
    as_text,
    fps_reader,
)
from mer_prep.datasets.corrections import Corrector
from mer_prep.errors import AnnotationError
from mer_prep.sample import DatasetScan, Problem, Sample

DATASET = "dfme"
#: sheet stem -> partition recorded on the samples, in the order the sheets are read
SHEETS: dict[str, str] = {"training": "train", "testA": "testA", "testB": "testB"}
PARTITIONS: tuple[str, ...] = tuple(SHEETS.values())
EMOTION_IDS: dict[int, str] = {
    0: "anger",
    1: "contempt",
    2: "disgust",
    3: "fear",
    4: "happiness",
    5: "sadness",
    6: "surprise",
}
_SPELLINGS = {"happy": "happiness", "sad": "sadness", "angry": "anger", "surprised": "surprise"}
_SEARCH_DEPTH = 3
SUFFIXES = (".png", ".jpg", ".jpeg")

REQUIRED: dict[str, tuple[str, ...]] = {**CLIP_COLUMNS, "fps": ("Fps", "FPS", "Frame rate")}
OPTIONAL: dict[str, tuple[str, ...]] = {
    "emotion": ("Emotion", "Estimated Emotion"),
    "emotion_id": ("EmotionId", "Emotion Id", "EmotionID"),
    "aus": ("AU", "AUs", "Action Units"),
}


def subject_id(name: str) -> str:
    """``dfme/sub0003``."""
    return f"{DATASET}/{name}"


def find_sheets(root: Path) -> dict[str, Path]:
    """Partition -> its split sheet (``<stem>_full_with_AU.xlsx``, or any ``<stem>*.xlsx``) in
    ``root`` or one level below it. AnnotationError when none is found."""
    places = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    out: dict[str, Path] = {}
    for stem, partition in SHEETS.items():
        pattern = re.compile(rf"(?i)^{stem}(?:_full_with_au)?.*\.xlsx$")
        for place in places:
            found = sorted(p for p in place.iterdir() if p.is_file() and pattern.match(p.name))
            if found:
                out[partition] = min(found, key=lambda p: (len(p.name), p.name))
                break
    if not out:
        raise AnnotationError(
            "no DFME split sheet found (training_full_with_AU.xlsx, testA_..., testB_...)",
            file=str(root / "training_full_with_AU.xlsx"),
        )
    return out


def clip_index(root: Path, wanted: set[str]) -> dict[str, list[Path]]:
    """Lower-cased clip name -> every folder of that name within a few levels of ``root``;
    a clip folder is not entered."""
    index: dict[str, list[Path]] = {}
    level = [root]
    for _ in range(_SEARCH_DEPTH):
        deeper = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if not entry.is_dir():
                    continue
                path = Path(entry.path)
                if entry.name.lower() in wanted:
                    index.setdefault(entry.name.lower(), []).append(path)
                else:
                    deeper.append(path)
        level = deeper
    return index


_fps = fps_reader("Fps")


def _emotion(values: dict[str, Any]) -> dict[str, Any]:
    """The row's cells with Emotion checked against (or taken from) EmotionId."""
    emotion = as_text(values.get("emotion"))
    raw_id = as_text(values.get("emotion_id"))
    if not raw_id:
        return values
    try:
        number = int(float(raw_id))
    except ValueError:
        raise ValueError(f"EmotionId {raw_id!r} is not a number") from None
    if number not in EMOTION_IDS:
        raise ValueError(f"EmotionId {number} is not one of {sorted(EMOTION_IDS)}")
    named = EMOTION_IDS[number]
    if not emotion:
        return {**values, "emotion": named}
    if _SPELLINGS.get(emotion.lower(), emotion.lower()) != named:
        raise ValueError(f"Emotion {emotion!r} disagrees with EmotionId {number} ({named})")
    return values


def scan(
    root: Path | str,
    *,
    annotations: Path | str | None = None,
    corrections: Path | str | None = None,
) -> DatasetScan:
    """Scan a DFME copy: the three split sheets (``annotations``: a folder holding them, or one
    sheet, read as the training part) and the clip folders under ``root``."""
    root = Path(root)
    corrector = Corrector.for_dataset(DATASET, user=corrections)
    if annotations is not None and Path(annotations).is_file():
        sheets = {"train": Path(annotations)}
    else:
        sheets = find_sheets(Path(annotations) if annotations is not None else root)
    sources = [
        sheet_source(sheet, REQUIRED, OPTIONAL, (("partition", partition),))
        for partition, sheet in sheets.items()
    ]
    wanted = {as_text(r.values.get("filename")).lower() for s in sources for r in s.rows}
    index = clip_index(root, wanted - {""})

    def resolve(row: SheetRow) -> ClipRef:
        subject = plain_name(as_text(row.values["subject"]), "Subject")
        name = as_text(row.values["filename"])
        if not name:
            raise ValueError("Filename is blank")
        found = index.get(name.lower(), [])
        if len(found) > 1:
            raise ValueError(
                f"clip folder {name!r} found {len(found)} times: {', '.join(map(str, found))}"
            )
        folder = found[0] if found else root / name
        return ClipRef(subject_id(subject), folder.name if found else name, folder, folder.parent)

    def finish(sample: Sample, values: dict[str, Any]) -> Sample:
        checked = _emotion(values)
        partition = dict(sample.extra).get("partition", "")
        return replace(
            sample, emotion=as_text(checked.get("emotion")) or sample.emotion, partition=partition
        )

    # the emotion may come from EmotionId alone: give blank Emotion cells the id's name first
    for source in sources:
        source.rows = [_with_emotion(row) for row in source.rows]
    reading = RowScan(DATASET, _fps, root, resolve, corrector, suffixes=SUFFIXES, finish=finish)
    found = reading.dataset_scan(sources)
    samples, leaks = _disjoint(found.samples)
    return DatasetScan(samples, found.problems + leaks, found.corrections)


def _with_emotion(row: SheetRow) -> SheetRow:
    if as_text(row.values.get("emotion")) or not as_text(row.values.get("emotion_id")):
        return row
    try:
        return SheetRow(row.row, _emotion(row.values), row.problem)
    except ValueError:
        return row  # reported by finish


def _disjoint(samples: list[Sample]) -> tuple[list[Sample], list[Problem]]:
    """Samples whose subject already appeared in an earlier sheet become problems."""
    first: dict[str, str] = {}
    for sample in samples:
        first.setdefault(sample.subject, sample.partition)
    kept, problems = [], []
    for sample in samples:
        if sample.partition != first[sample.subject]:
            problems.append(
                Problem(
                    sample.sample_id,
                    sample.source,
                    f"subject {sample.subject} is in the {first[sample.subject]} sheet too: "
                    "the official parts must be subject-disjoint",
                )
            )
        else:
            kept.append(sample)
    return kept, problems

"""Spotting intervals as CSV: one interval per row, with a header.

Columns (names case-insensitive, in any order; others are ignored):

``video``   the video id (required)
``onset``   first frame, inclusive (whole number; ``12.0`` is read as 12)
``offset``  last frame, inclusive (>= onset)
``type``    ``me`` / ``micro`` / ``micro-expression`` or ``mae`` / ``macro`` /
            ``macro-expression``; may be left out when the reader is given a default type
``subject`` optional; when given, a video is ``subject/video`` (names that repeat across
            subjects stay apart)
``emotion`` optional (needed for STRS); empty = none
``score``   optional confidence (predictions only; it does not change the counts)

A truth row with only ``video`` (and ``subject``) filled declares a video without any
expression: it is scored, and every prediction in it is a false positive. A bad row stops the
read with one line naming the file, the line and the problem.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from mer_prep.errors import AnnotationError, InvalidArgumentError
from mer_prep.evaluation.spotting_intervals import Interval, SpotPrediction, SpotTruth

KIND_NAMES = {
    "me": "me",
    "micro": "me",
    "micro-expression": "me",
    "mae": "mae",
    "macro": "mae",
    "macro-expression": "mae",
}
COLUMNS = ("subject", "video", "onset", "offset", "type", "emotion", "score")


class SpotCsvError(AnnotationError):
    """A spotting CSV cannot be read: the message names the file, the line and the problem."""


@dataclass(frozen=True)
class SpotFile:
    """What a spotting CSV holds: its intervals, the line of each, and every video it names
    (``video_key``s, first-seen order; for a truth file, videos without expressions too)."""

    path: Path
    intervals: tuple[Interval, ...]
    lines: tuple[int, ...]
    videos: tuple[str, ...]


class _Where(TypedDict):
    """The place of a row, as ``SpotCsvError`` takes it."""

    file: str
    row: int


def _frame(text: str, column: str, where: _Where) -> int:
    try:
        value = float(text)
    except ValueError:
        raise SpotCsvError(f"{column} {text!r} is not a frame number", **where) from None
    if not value.is_integer():
        raise SpotCsvError(f"{column} {text!r} is not a whole frame number", **where)
    return int(value)


def read_spot_csv(path: str | Path, *, truth: bool, default_kind: str | None = None) -> SpotFile:
    """Read predictions (``truth=False``: ``SpotPrediction``s) or truths (``SpotTruth``s).
    ``default_kind`` ("me"/"mae") is the type of rows when the file has no ``type`` column."""
    path = Path(path)
    if default_kind is not None and default_kind not in ("me", "mae"):
        raise InvalidArgumentError(f"default type must be 'me' or 'mae', got {default_kind!r}")
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        raise SpotCsvError(f"cannot be read ({error.strerror or error})", file=str(path)) from None
    with handle:
        try:
            rows = list(csv.reader(handle))
        except (csv.Error, UnicodeDecodeError) as error:
            raise SpotCsvError(f"not a CSV file ({error})", file=str(path)) from None
    if not rows:
        raise SpotCsvError("empty file: no header", file=str(path))
    header = [name.strip().lower() for name in rows[0]]
    missing = [c for c in ("video", "onset", "offset") if c not in header]
    if "type" not in header and default_kind is None:
        missing.append("type")
    if missing:
        raise SpotCsvError(
            f"no column {', '.join(missing)} in the header (columns: {', '.join(COLUMNS)})",
            file=str(path),
            row=1,
        )
    index = {name: header.index(name) for name in COLUMNS if name in header}
    intervals: list[Interval] = []
    lines: list[int] = []
    videos: dict[str, None] = {}  # a dict keeps first-seen order, a set would not
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where: _Where = {"file": str(path), "row": line}

        # a short row leaves its last columns empty
        cells = {name: row[k].strip() for name, k in index.items() if k < len(row)}
        video, subject = cells.get("video", ""), cells.get("subject", "")
        if not video:
            raise SpotCsvError("no video id", **where)
        key = f"{subject}/{video}" if subject else video
        videos.setdefault(key, None)
        onset, offset, kind_name = (
            cells.get("onset", ""),
            cells.get("offset", ""),
            cells.get("type", ""),
        )
        if truth and not (onset or offset or kind_name):
            continue  # a video without expressions
        if not onset or not offset:
            raise SpotCsvError("onset and offset are both needed", **where)
        kind = KIND_NAMES.get(kind_name.lower()) if kind_name else default_kind
        if kind is None:
            raise SpotCsvError(f"type {kind_name!r} is none of {', '.join(KIND_NAMES)}", **where)
        start, end = _frame(onset, "onset", where), _frame(offset, "offset", where)
        if end < start:
            raise SpotCsvError(f"offset {end} is before onset {start}", **where)
        emotion = cells.get("emotion", "") or None
        if truth:
            intervals.append(SpotTruth(video, start, end, kind, subject, emotion))
        else:
            score_text = cells.get("score", "")
            try:
                score = float(score_text) if score_text else None
            except ValueError:
                raise SpotCsvError(f"score {score_text!r} is not a number", **where) from None
            intervals.append(SpotPrediction(video, start, end, kind, subject, emotion, score))
        lines.append(line)
    if truth and not videos:
        raise SpotCsvError("no videos: a truth file names every scored video", file=str(path))
    return SpotFile(path, tuple(intervals), tuple(lines), tuple(videos))


def write_spot_csv(
    path: str | Path, intervals: Sequence[Interval], videos_without_truth: Sequence[str] = ()
) -> None:
    """Write ``intervals`` in the format ``read_spot_csv`` reads (columns ``subject`` when any
    interval has one, ``emotion``/``score`` when any has one); ``videos_without_truth`` adds a
    row with only the video for each (truth files)."""
    has_subject = any(i.subject for i in intervals)
    has_emotion = any(getattr(i, "emotion", None) is not None for i in intervals)
    has_score = any(getattr(i, "score", None) is not None for i in intervals)
    header = (
        (["subject"] if has_subject else [])
        + ["video", "onset", "offset", "type"]
        + (["emotion"] if has_emotion else [])
        + (["score"] if has_score else [])
    )
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in intervals:
            emotion, score = getattr(i, "emotion", None), getattr(i, "score", None)
            writer.writerow(
                ([i.subject] if has_subject else [])
                + [i.video, i.onset, i.offset, i.kind]
                + ([emotion or ""] if has_emotion else [])
                + (["" if score is None else repr(score)] if has_score else [])
            )
        for key in videos_without_truth:
            subject, _, video = key.rpartition("/") if has_subject else ("", "", key)
            writer.writerow(
                ([subject] if has_subject else [])
                + [video, "", "", ""]
                + ([""] if has_emotion else [])
                + ([""] if has_score else [])
            )

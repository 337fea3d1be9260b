"""Long videos for spotting: one record per recording with its annotated ME / MaE intervals.

    scan_long_videos("samm-lv", "/data/SAMM_LV") -> LongVideoScan

Clip adapters (``scan_dataset``) yield one ``Sample`` per annotated expression; the long-video
adapters here (``casme_sq_long``, ``samm_lv``, ``smic_e_long``, ``casme3_long``) yield one
``LongVideo`` per recording on disk, annotated or not (a video without expressions still counts
in MEGC's pooled scores), each with its ``LongInterval``s. Frame numbers are the dataset's own
numbering, the same for ``frame_numbers`` and the intervals (SMIC-E long: 0 at the sheet's
``FirstF``).

Every sheet quirk becomes a ``Problem`` whose message starts with its name in brackets
(``[offset-zero] ...``, names in ``QUIRKS``); the file is ``<sheet>:<row>``. A quirk that the
documented rule repairs keeps its interval; one that cannot be repaired drops it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mer_prep.errors import DataRootError, InvalidArgumentError, UnknownDatasetError
from mer_prep.sample import NumberedFrames, Problem, SubjectRecord

if TYPE_CHECKING:
    from mer_prep.evaluation.spotting_intervals import SpotTruth

KINDS: tuple[str, ...] = ("me", "mae")

#: quirk name -> what it means and what the adapter does (docs/datasets.md lists them per sheet)
QUIRKS: dict[str, str] = {
    "offset-zero": "offset written as 0: the apex is used as the offset (interval kept)",
    "fractional-frame": (
        "a frame number with a fraction (566.4): rounded to the nearest frame (kept)"
    ),
    "apex-missing": "apex written as -1 or blank: apex None (kept)",
    "long-from-start": (
        "onset <= 1 and longer than LONG_FROM_START_S: likely a placeholder onset (kept)"
    ),
    "unknown-type": "expression type is neither micro nor macro (dropped)",
    "bad-row": "a cell that is no frame number, or onset after offset (dropped)",
    "outside-video": "onset..offset (or apex) not inside the video's frames on disk (dropped)",
    "no-video": "the row names a video that is not on disk (dropped)",
    "first-frame": "FirstF differs from the first frame file's number (FirstF used)",
    "trailing-text": "rows after the data table that hold text, not annotations (ignored)",
    "no-frames": "a video folder without numbered frame files (video dropped)",
    "onset-zero": "onset 0 while the frame files start at 1: read as frame 1 (kept)",
    "too-long": (
        "a micro-expression row longer than the adapter's limit: an annotation error (dropped)"
    ),
}

#: a SAMM-LV interval from frame <= 1 lasting longer than this is flagged ``long-from-start``
LONG_FROM_START_S = 4.0

#: long-video dataset name -> module under mer_prep.datasets
LONG_VIDEO_ADAPTERS: dict[str, str] = {
    "casme-sq-long": "casme_sq_long",
    "samm-lv": "samm_lv",
    "smic-e-long": "smic_e_long",
    "casme3-long": "casme3_long",
}


def quirk(name: str, sample_id: str, where: str, what: str) -> Problem:
    """A named problem: ``Problem(sample_id, where, "[name] what")``; ``name`` must be in QUIRKS."""
    if name not in QUIRKS:
        raise InvalidArgumentError(f"unknown quirk {name!r}; known: {', '.join(QUIRKS)}")
    return Problem(sample_id, where, f"[{name}] {what}")


def quirk_name(problem: Problem) -> str:
    """The quirk name a problem made by ``quirk`` carries ("" for any other problem)."""
    text = problem.message
    return text[1 : text.index("]")] if text.startswith("[") and "]" in text else ""


@dataclass(frozen=True)
class LongInterval:
    """One annotated expression of a long video.

    kind: ``"me"`` or ``"mae"``; onset / apex / offset: inclusive frame numbers in the video's
    numbering (apex None when the sheet has none); emotion: None when the sheet gives none;
    action_units: the AU cell verbatim; aus: the AU numbers parsed from it; source:
    ``<sheet>:<row>``.
    """

    kind: str
    onset: int
    apex: int | None
    offset: int
    emotion: str | None = None
    action_units: str = ""
    aus: tuple[int, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidArgumentError(f"interval kind must be one of {KINDS}, got {self.kind!r}")
        if self.offset < self.onset:
            raise InvalidArgumentError(f"interval {self.onset}..{self.offset}: offset before onset")
        if self.apex is not None and not self.onset <= self.apex <= self.offset:
            raise InvalidArgumentError(f"apex {self.apex} outside {self.onset}..{self.offset}")

    @classmethod
    def coded(
        cls,
        kind: str,
        frames: tuple[int, int | None, int],
        emotion: str | None,
        aus_cell: Any,
        source: str = "",
    ) -> LongInterval:
        """The interval of ``frames`` (onset, apex, offset) whose sheet codes AUs as
        ``aus_cell``: kept verbatim (``action_units``, as text) and parsed (``aus``)."""
        from mer_prep.datasets._sheets import as_text

        onset, apex, offset = frames
        return cls(
            kind, onset, apex, offset, emotion, as_text(aus_cell), parsed_aus(aus_cell), source
        )


@dataclass(frozen=True)
class LongVideo(SubjectRecord, NumberedFrames):
    """One long recording of ``subject`` of ``dataset`` (``SubjectRecord``: ``"samm-lv"``,
    ``"samm-lv/006"``) and its annotated intervals.

    video: the recording's name (folder name, ``"006_1"``). frame_paths / frame_numbers: every
    frame file, in numeric order, and its number (same length); empty when ``video_path`` names
    a video file instead. fps: frames per second. intervals: sorted by onset. source: the folder.
    """

    video: str
    frame_paths: tuple[str, ...]
    frame_numbers: tuple[int, ...]
    fps: float
    intervals: tuple[LongInterval, ...] = ()
    video_path: str | None = None
    source: str = ""

    @property
    def key(self) -> str:
        """``subject/video``: unique inside a scan."""
        return f"{self.subject}/{self.video}"

    def truths(self) -> list[SpotTruth]:
        """The intervals as ``SpotTruth``s for the spotting evaluator (inclusive frames)."""
        from mer_prep.evaluation.spotting_intervals import SpotTruth

        return [
            SpotTruth(
                video=self.video,
                onset=i.onset,
                offset=i.offset,
                kind=i.kind,
                subject=self.subject,
                emotion=i.emotion,
            )
            for i in self.intervals
        ]


@dataclass
class LongVideoScan:
    """What a long-video adapter found: the videos (annotated or not) and the problems met."""

    videos: list[LongVideo]
    problems: list[Problem] = field(default_factory=list)

    def __iter__(self) -> Iterator[LongVideo]:
        return iter(self.videos)

    def __len__(self) -> int:
        return len(self.videos)

    def truths(self) -> list[SpotTruth]:
        """Every interval of every video as ``SpotTruth``s."""
        return [t for v in self.videos for t in v.truths()]


def check_interval(interval: LongInterval, numbers: tuple[int, ...]) -> str | None:
    """Why ``interval`` does not lie inside the frames ``numbers`` (sorted), or None."""
    if not numbers:
        return "the video has no frames"
    first, last = numbers[0], numbers[-1]
    if interval.onset < first or interval.offset > last:
        return f"onset..offset {interval.onset}..{interval.offset} outside frames {first}..{last}"
    return None


def parsed_aus(cell: Any) -> tuple[int, ...]:
    """AU numbers of an AU cell (``mer_prep.datasets.aus``)."""
    from mer_prep.datasets.aus import parse_aus

    return parse_aus(cell).numbers


def scan_long_videos(name: str, root: Path | str, **options: Any) -> LongVideoScan:
    """Scan the long videos of dataset ``name`` (one of ``LONG_VIDEO_ADAPTERS``) under ``root``.

    options: the adapter's keyword options (``annotations=<file>`` for all; smic-e-long
    ``modality=HS|VIS|NIR``; samm-lv ``emotions=<micro sheet>``).
    """
    if name not in LONG_VIDEO_ADAPTERS:
        raise UnknownDatasetError(
            f"unknown long-video dataset {name!r}; known: {', '.join(LONG_VIDEO_ADAPTERS)}"
        )
    module = importlib.import_module(f"mer_prep.datasets.{LONG_VIDEO_ADAPTERS[name]}")
    known = [
        p.name
        for p in inspect.signature(module.scan).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InvalidArgumentError(
            f"{name} has no option {unknown[0]!r}; its options: {', '.join(known) or 'none'}"
        )
    if not Path(root).is_dir():
        raise DataRootError(f"{name} root {root} does not exist or is not a folder")
    try:
        return module.scan(root, **options)
    except FileNotFoundError as exc:  # a frame tree the layout needs is absent: the root is wrong
        if isinstance(exc, DataRootError):
            raise
        raise DataRootError(str(exc)) from exc


def frame_cell(
    value: Any,
    *,
    field: str,
    sample_id: str,
    where: str,
    problems: list[Problem],
    missing: tuple[int, ...] = (),
) -> int | None:
    """A frame-number cell: an int, or None when blank / ``/`` / a value in ``missing``. A
    fractional number is rounded to the nearest frame (half up) with a ``fractional-frame``
    problem appended to ``problems``; ValueError for text that is no number."""
    from mer_prep.datasets._sheets import as_frame, as_text

    if isinstance(value, float) and not value.is_integer():
        rounded = int(value + 0.5) if value >= 0 else -int(-value + 0.5)
        problems.append(
            quirk("fractional-frame", sample_id, where, f"{field} {value!r} rounded to {rounded}")
        )
        return None if rounded in missing else rounded
    text = as_text(value)
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None and not number.is_integer():
        return frame_cell(
            number,
            field=field,
            sample_id=sample_id,
            where=where,
            problems=problems,
            missing=missing,
        )
    return as_frame(value, field=field, missing=missing)


@dataclass(frozen=True)
class RowNotes:
    """Where one sheet row's quirks go: its ``sample_id``, its place ``where``
    (``<sheet>:<row>``) and the scan's ``problems`` list."""

    sample_id: str
    where: str
    problems: list[Problem]

    def add(self, name: str, what: str) -> None:
        """Append the quirk ``name`` (a ``QUIRKS`` key) saying ``what``."""
        self.problems.append(quirk(name, self.sample_id, self.where, what))

    def frames(
        self,
        cells: Mapping[str, Any],
        fields: Mapping[str, str],
        missing: Mapping[str, tuple[int, ...]] | None = None,
    ) -> tuple[int | None, ...] | None:
        """The row's frame-number cells, read with ``frame_cell`` in the order of ``fields`` (cell
        key -> the sheet's column name, for messages), each None where blank or one of its
        ``missing`` values; None, with a ``bad-row`` quirk, where a cell is text that is no
        number."""
        try:
            return tuple(
                frame_cell(
                    cells[key],
                    field=column,
                    sample_id=self.sample_id,
                    where=self.where,
                    problems=self.problems,
                    missing=(missing or {}).get(key, ()),
                )
                for key, column in fields.items()
            )
        except ValueError as exc:
            self.add("bad-row", str(exc))
            return None

    def ordered(
        self, onset: int | None, apex: int | None, offset: int | None, columns: str
    ) -> tuple[int, int | None, int] | None:
        """``(onset, apex, offset)`` when onset <= apex <= offset (the apex may be None);
        otherwise None, with a ``bad-row`` quirk naming the sheet's ``columns``
        (``"Onset/Apex/Offset"``)."""
        if (
            onset is None
            or offset is None
            or onset > offset
            or (apex is not None and not onset <= apex <= offset)
        ):
            self.add("bad-row", f"{columns} {onset}/{apex}/{offset} are not in order")
            return None
        return onset, apex, offset

    def interval(
        self,
        folder: Path,
        kind: str,
        frames: tuple[int, int | None, int],
        emotion: str | None,
        aus_cell: Any,
    ) -> RowInterval:
        """The row's interval (``LongInterval.coded``, filed at the row) in video ``folder``."""
        coded = LongInterval.coded(kind, frames, emotion, aus_cell, self.where)
        return RowInterval(folder, coded, self.sample_id)


@dataclass(frozen=True)
class RowInterval:
    """An annotation row resolved to its video folder: what ``assemble`` groups per video."""

    folder: Path
    interval: LongInterval
    sample_id: str


def assemble(
    dataset: str,
    fps: float,
    folders: dict[Path, str],
    rows: list[RowInterval],
    problems: list[Problem],
    *,
    shift: dict[Path, int] | None = None,
    names: dict[Path, str] | None = None,
) -> LongVideoScan:
    """One ``LongVideo`` per folder of ``folders`` (folder -> subject id), holding the rows that
    name it and fit its frames (others become ``outside-video`` problems). ``shift``: per folder,
    a number subtracted from the frame files' numbers (SMIC-E's ``FirstF``); ``names``: per
    folder, the video's name when it is not the folder's (CAS(ME)^3's ``<take>/color``)."""
    from mer_prep.datasets._frames import list_frames

    by_folder: dict[Path, list[RowInterval]] = {}
    for row in rows:
        by_folder.setdefault(row.folder, []).append(row)
    videos = []
    names = names or {}
    for folder, subject in sorted(
        folders.items(), key=lambda item: (item[1], names.get(item[0], item[0].name))
    ):
        video = names.get(folder, folder.name)
        frames = list_frames(folder)
        if not frames:
            problems.append(
                quirk(
                    "no-frames",
                    f"{subject}/{video}",
                    str(folder),
                    "no numbered frame files in the video folder",
                )
            )
            continue
        offset = (shift or {}).get(folder, 0)
        numbers = tuple(n - offset for n, _ in frames)
        kept = []
        for row in by_folder.get(folder, []):
            why = check_interval(row.interval, numbers)
            if why:
                problems.append(quirk("outside-video", row.sample_id, row.interval.source, why))
            else:
                kept.append(row.interval)
        kept.sort(key=lambda i: (i.onset, i.offset, i.kind))
        videos.append(
            LongVideo(
                dataset=dataset,
                subject=subject,
                video=video,
                frame_paths=tuple(str(p) for _, p in frames),
                frame_numbers=numbers,
                fps=fps,
                intervals=tuple(kept),
                source=str(folder),
            )
        )
    return LongVideoScan(videos, problems)

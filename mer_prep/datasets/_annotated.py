"""The scan loop shared by adapters whose spreadsheet rows point at clip folders.

CASME I, CASME II and SAMM differ only in how a row names its folder, how the missing apex
is spelt and which rows need fixing; the adapter supplies those as small callables and this
module turns rows into Samples and Problems, never aborting on one bad row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mer_prep.datasets._frames import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    list_frames,
    timing_error,
    video_frame_count,
)
from mer_prep.datasets._sheets import SheetRow, as_frame, as_text, find_table, read_workbook
from mer_prep.datasets.corrections import Corrector
from mer_prep.sample import DatasetScan, Problem, Sample, within_root


@dataclass(frozen=True)
class ClipRef:
    """Where a row's clip lives: qualified subject id, clip name and folder.

    subject_folder: the subject's own folder; the clip folder must resolve inside it, else one
    clip could be annotated under two subjects (``Filename`` = ``../sub01/EP02_01f``).
    """

    subject: str
    clip: str
    folder: Path
    subject_folder: Path | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def sample_id(self) -> str:
        return f"{self.subject}/{self.clip}"


@dataclass(frozen=True)
class Timing:
    """Onset/apex/offset of one row plus a note for every fix applied to them."""

    onset: int
    apex: int | None
    offset: int
    fixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RawTiming:
    """Onset/apex/offset as parsed from the row, before any fix (None = blank)."""

    onset: int | None
    apex: int | None
    offset: int | None


# (row, clip, raw timing, frame numbers on disk) -> corrected timing
Fixer = Callable[[SheetRow, ClipRef, RawTiming, list[int]], Timing]
# (sample as read, the row's cells after corrections) -> the sample to keep; ValueError -> Problem
Finisher = Callable[[Sample, dict[str, Any]], Sample]


@dataclass
class RowSource:
    """One annotation sheet and its parsed rows; ``extra`` is copied into every Sample.

    sheet: title of the sheet the rows come from when it is not the workbook's first (it is
    then named next to the row number).
    """

    path: Path
    rows: list[SheetRow]
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    sheet: str = ""

    def where(self, row: int) -> str:
        """``<file>:<row>``, plus the sheet when it is not the first one."""
        return f"{self.path}:{row}" + (f" (sheet {self.sheet!r})" if self.sheet else "")


def subject_number(value: object) -> int:
    """Subject number from ``1``, ``1.0``, ``"01"``, ``"sub01"``, ``"s1"``, ``"006"``;
    ValueError else."""
    text = as_text(value)
    match = re.fullmatch(r"(?i)(?:sub|s)?\s*0*(\d+)", text)
    if not match:
        raise ValueError(f"subject {text!r} is not a subject number")
    return int(match.group(1))


def plain_name(text: str, what: str) -> str:
    """``text`` when it names one folder (no ``/``, ``\\``, ``.`` or ``..``); ValueError else: a
    subject or clip cell that is a path could file one clip under two ids."""
    if not text:
        raise ValueError(f"{what} is blank")
    if "/" in text or "\\" in text or text in (".", ".."):
        raise ValueError(f"{what} {text!r} is a path, not a name")
    return text


def default_fixer(_row: SheetRow, _ref: ClipRef, raw: RawTiming, _numbers: list[int]) -> Timing:
    """No corrections: blank onset or offset is an error."""
    if raw.onset is None or raw.offset is None:
        raise ValueError("onset or offset is blank")
    return Timing(raw.onset, raw.apex, raw.offset)


@dataclass(frozen=True)
class RowScan:
    """How an adapter's sheet rows become Samples: what ``scan_rows`` needs besides the rows.

    ``resolve`` maps a row to its ClipRef (ValueError for a bad subject or file name); every
    folder must lie inside ``root``. fps: a number, or a function of the row's cells (a per-row
    Fps column; ValueError -> Problem). corrector: the dataset's annotation corrections, applied
    to the row's cells once its sample id is known. span_only: the sample's frames are
    onset..offset only (a folder holding a whole recording). finish: a last per-sample step
    (depth frames, a partition, checks; ValueError -> Problem). video_first: when set, a row may
    point at a video file instead of a frame folder; the sheet's frame number of the video's
    first frame (0: the sheet counts 0-based video indices). The sample then holds the video path
    and 0-based video indices (``Sample.video_path``), onset..offset only, and a note when the
    numbering was shifted.
    """

    dataset: str
    fps: float | Callable[[dict[str, Any]], float]
    root: Path
    resolve: Callable[[SheetRow], ClipRef]
    corrector: Corrector | None = None
    missing_apex: tuple[int, ...] = ()
    fixer: Fixer = default_fixer
    suffixes: tuple[str, ...] = (".jpg", ".jpeg")
    span_only: bool = False
    finish: Finisher | None = None
    video_first: int | None = None

    def dataset_scan(
        self, sources: Iterable[RowSource], on_disk: Iterable[tuple[str, Path]] = ()
    ) -> DatasetScan:
        """The scan of ``sources``: their samples, their problems followed by one for every
        (subject id, clip folder) of ``on_disk`` that no row points at, and the corrections."""
        samples, problems, referenced = scan_rows(sources, self)
        corrections = self.corrector.records() if self.corrector is not None else []
        return DatasetScan(
            samples, problems + unannotated_problems(on_disk, referenced), corrections
        )


def sheet_source(
    sheet: Path,
    required: Mapping[str, Sequence[str]],
    optional: Mapping[str, Sequence[str]],
    extra: tuple[tuple[str, str], ...] = (),
) -> RowSource:
    """The annotation table of workbook ``sheet`` (on whichever sheet holds the header, see
    ``find_table``) as a RowSource whose samples carry ``extra``."""
    title, rows = find_table(read_workbook(sheet), required, optional, file=sheet)
    return RowSource(sheet, rows, extra=extra, sheet=title)


@dataclass(frozen=True)
class SheetLayout:
    """Where a one-sheet adapter's frames are under a root: the folder every clip lies in,
    ``resolve`` (a row to its ClipRef), the (subject id, clip folder) pairs ``on_disk`` lists
    (for the unannotated-folder problems) and the ``extra`` every sample carries."""

    base: Path
    resolve: Callable[[SheetRow], ClipRef]
    on_disk: Callable[[], list[tuple[str, Path]]]
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class OneSheetAdapter:
    """An adapter reading one labelling sheet (found under the root by ``find_sheet``) whose rows
    name image-frame folders, at a frame rate the dataset does not confirm (4DME, MMEW):
    ``layout`` finds the frames under a root. Its ``scan`` is the adapter's ``scan``."""

    dataset: str
    fps: float
    find_sheet: Callable[[Path], Path]
    required: Mapping[str, Sequence[str]]
    optional: Mapping[str, Sequence[str]]
    layout: Callable[[Path], SheetLayout]

    def scan(
        self,
        root: Path | str,
        *,
        annotations: Path | str | None = None,
        corrections: Path | str | None = None,
        fps: float | str | None = None,
    ) -> DatasetScan:
        """Scan a copy under ``root``; ``annotations`` overrides the sheet found,
        ``corrections`` adds the user's (``mer_prep.datasets.corrections``), ``fps`` overrides
        the (unconfirmed) frame rate."""
        root = Path(root)
        rate = self.fps if fps is None else float(fps)
        found = self.layout(root)
        corrector = Corrector.for_dataset(self.dataset, user=corrections)
        sheet = Path(annotations) if annotations is not None else self.find_sheet(root)
        source = sheet_source(sheet, self.required, self.optional, extra=found.extra)
        rows = RowScan(
            self.dataset, rate, found.base, found.resolve, corrector, suffixes=IMAGE_SUFFIXES
        )
        return rows.dataset_scan([source], found.on_disk())


def scan_rows(
    sources: Iterable[RowSource], settings: RowScan
) -> tuple[list[Sample], list[Problem], set[Path]]:
    """Samples and Problems for every row of ``sources`` read as ``settings`` says; also the
    folders the rows referenced. A second row for a sample id already read is a Problem."""
    samples: list[Sample] = []
    problems: list[Problem] = []
    referenced: set[Path] = set()
    seen: dict[str, str] = {}
    for source in sources:
        for row in source.rows:
            where = source.where(row.row)
            result = _one_row(row, where, source, settings, referenced)
            if isinstance(result, Problem):
                problems.append(result)
            elif result.sample_id in seen:
                problems.append(
                    Problem(
                        result.sample_id,
                        where,
                        f"duplicate annotation row (first at {seen[result.sample_id]})",
                    )
                )
            else:
                seen[result.sample_id] = where
                samples.append(result)
    return samples, problems, referenced


def _one_row(
    row: SheetRow, where: str, source: RowSource, settings: RowScan, referenced: set[Path]
) -> Sample | Problem:
    dataset, root, corrector = settings.dataset, settings.root, settings.corrector
    video_first = settings.video_first
    named = f"{as_text(row.values.get('subject'))}/{as_text(row.values.get('filename'))}"
    described = f"{dataset} row {row.row} ({named})"
    if row.problem:
        return Problem(f"{dataset} row {row.row}", where, row.problem)
    try:
        ref = settings.resolve(row)
    except ValueError as exc:
        return Problem(described, where, str(exc))
    if not within_root(root, ref.folder):
        return Problem(
            ref.sample_id, where, f"clip path {ref.folder} leaves the dataset root {root}"
        )
    if ref.subject_folder is not None:
        problem = _subject_folder_problem(
            as_text(row.values.get("filename")), ref.folder, ref.subject_folder
        )
        if problem:
            return Problem(ref.sample_id, where, problem)
    referenced.add(ref.folder)
    values, corrected = (
        corrector.apply(ref.sample_id, row.values, where) if corrector else (row.values, ())
    )
    if corrected:  # the fixer reads the row: give it the corrected cells
        row = SheetRow(row.row, values, row.problem)
    video = (
        video_first is not None
        and ref.folder.is_file()
        and ref.folder.suffix.lower() in VIDEO_SUFFIXES
    )
    if video:
        try:
            count = video_frame_count(ref.folder)
        except ValueError as exc:
            return Problem(ref.sample_id, where, str(exc))
        if not count:
            return Problem(
                ref.sample_id,
                where,
                f"video {ref.folder} states no frame count (empty, or a container without one)",
            )
        frames = [(video_first + i, ref.folder) for i in range(count)]
    elif not ref.folder.is_dir():
        what = "clip folder or video" if video_first is not None else "clip folder"
        return Problem(ref.sample_id, where, f"{what} {ref.folder} does not exist")
    else:
        frames = list_frames(ref.folder, settings.suffixes)
    numbers = [n for n, _ in frames]
    try:
        raw = RawTiming(
            as_frame(values.get("onset"), field="onset"),
            as_frame(values.get("apex"), field="apex", missing=settings.missing_apex),
            as_frame(values.get("offset"), field="offset"),
        )
        timing = settings.fixer(row, ref, raw, numbers)
        rate = settings.fps(values) if callable(settings.fps) else settings.fps
    except ValueError as exc:
        return Problem(ref.sample_id, where, str(exc))
    error = timing_error(numbers, timing.onset, timing.apex, timing.offset)
    if error:
        return Problem(ref.sample_id, f"{where} ({ref.folder})", error)
    emotion = as_text(values.get("emotion"))
    if not emotion:
        return Problem(ref.sample_id, where, "emotion is blank")
    if settings.span_only or video:
        frames = [(n, p) for n, p in frames if timing.onset <= n <= timing.offset]
    extra = (
        source.extra
        + ref.extra
        + tuple(("fix", note) for note in corrected)
        + tuple(("fix", note) for note in timing.fixes)
    )
    shift = (video_first or 0) if video else 0  # a video's samples count 0-based indices
    if shift:
        extra += (("frame_numbering", f"video index = sheet frame - {shift}"),)
    sample = Sample(
        dataset=dataset,
        subject=ref.subject,
        clip=ref.clip,
        frame_paths=() if video else tuple(str(p) for _, p in frames),
        frame_numbers=tuple(n - shift for n, _ in frames),
        onset=timing.onset - shift,
        apex=None if timing.apex is None else timing.apex - shift,
        offset=timing.offset - shift,
        fps=rate,
        emotion=emotion,
        action_units=as_text(values.get("aus")),
        video_path=str(ref.folder) if video else None,
        source=where,
        extra=extra,
    )
    if settings.finish is None:
        return sample
    try:
        return settings.finish(sample, values)
    except ValueError as exc:
        return Problem(ref.sample_id, where, str(exc))


def _subject_folder_problem(name: str, folder: Path, subject_folder: Path) -> str:
    """Why the clip folder a sheet names is not a folder of its own subject, or "".

    A name that leaves the subject folder (``../sub01/EP02_01f``, an absolute path, a link into
    another subject's folder) would put one clip under two subjects; a name that is a path at
    all (``EP01/../EP02``) would give one clip two sample ids.
    """
    if not inside_folder(subject_folder, folder):
        how = (
            "it is a link to"
            if len(Path(name).parts) == 1 and name not in (".", "..")
            else "it resolves to"
        )
        return (
            f"Filename {name!r} leaves its subject folder {subject_folder}: "
            f"{how} {folder.resolve()}"
        )
    if len(Path(name).parts) != 1 or name in (".", ".."):
        return (
            f"Filename {name!r} is a path, not the name of a clip folder in its subject "
            f"folder {subject_folder}"
        )
    return ""


def unannotated_problems(
    clip_folders: Iterable[tuple[str, Path]], referenced: set[Path]
) -> list[Problem]:
    """A Problem for every (subject id, clip folder) that no annotation row points at."""
    wanted = {p.resolve() for p in referenced}
    return [
        Problem(f"{subject}/{folder.name}", str(folder), "clip folder has no annotation row")
        for subject, folder in clip_folders
        if folder.resolve() not in wanted
    ]


def inside_folder(folder: Path, candidate: Path) -> bool:
    """True when ``candidate`` resolves strictly inside ``folder`` (links followed on both sides).

    Guards against a sheet's ``../sub01/EP02_01f`` or absolute path, and a clip folder that is a
    link into another subject's folder: either would put one clip under two subjects.
    """
    try:
        relative = candidate.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return relative != Path(".")


def find_folder(parent: Path, name: str) -> Path:
    """``parent / name``, or the one sibling whose name matches ignoring case (``ep09F``)."""
    exact = parent / name
    if exact.is_dir() or not parent.is_dir():
        return exact
    matches = [p for p in parent.iterdir() if p.is_dir() and p.name.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else exact


def subject_dirs(folder: Path) -> list[tuple[int, Path]]:
    """(subject number, folder) for every sub-folder named like a subject (``sub01``, ``s3``,
    ``006``)."""
    out = []
    for path in child_dirs(folder):
        try:
            out.append((subject_number(path.name), path))
        except ValueError:
            continue
    return out


def child_dirs(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` in name order (empty when it does not exist)."""
    return (
        sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.name)
        if folder.is_dir()
        else []
    )


def row_resolver(
    subjects_root: Path, subject_folder: Callable[[int], str], subject_id: Callable[[int], str]
) -> Callable[[SheetRow], ClipRef]:
    """Resolve a sheet row's Subject and Filename to its clip folder under ``subjects_root``.

    subject_folder: subject number -> folder name (``sub01``, ``006``); subject_id: number ->
    dataset-qualified id. A Filename differing from its folder only in case takes the folder's.
    The ClipRef carries the subject folder, which the clip folder may not leave (checked by
    scan_rows).
    """

    def resolve(row: SheetRow) -> ClipRef:
        number = subject_number(row.values["subject"])
        name = as_text(row.values["filename"])
        if not name:
            raise ValueError("Filename is blank")
        parent = subjects_root / subject_folder(number)
        folder = find_folder(parent, name)
        clip = folder.name if folder.is_dir() and folder.name.lower() == name.lower() else name
        return ClipRef(subject_id(number), clip, folder, parent)

    return resolve


def clip_folders(subjects_root: Path, subject_id: Callable[[int], str]) -> list[tuple[str, Path]]:
    """Every (subject id, clip folder) on disk, for finding folders no row annotates."""
    return [(subject_id(n), c) for n, s in subject_dirs(subjects_root) for c in child_dirs(s)]

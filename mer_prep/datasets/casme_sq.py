"""CAS(ME)^2 adapter: ``rawpic/sNN/NN_<code><description>/imgN.jpg`` (30 fps) +
``CAS(ME)^2code_final.xlsx``.

The main sheet (the first one, unless a notes sheet precedes it) has no header row; its columns
are participant, video name, onset, apex, offset, AUs, emotion, expression type (micro-/macro-
expression). Other sheets map video names to the 4-digit codes in folder names (``disgust1`` ->
``0101``) and participant numbers to subject folders (1 -> s15); every sheet is recognised by
content, not by name or position. An offset of 0 means "use the apex". Each folder is a long
recording; a sample is the onset..offset span of one row.

``source="rawvideo"`` reads the same samples from the raw videos beside ``rawpic/``
(``rawvideo/sNN/NN_<code>*.<ext>``, one per subject and stimulus; the file naming is
*unconfirmed*, matched like the rawpic folders) and decodes only the frames a recipe needs.
``rawpic/`` frame ``imgN`` is taken to be video frame ``N - 1`` (0-based; *unconfirmed*, the
rawpic frames start at img1), so a video sample's ``frame_numbers`` and onset/apex/offset are
0-based video indices, one less than the sheet's numbers (noted on the sample as
``frame_numbering``); its frames equal the rawpic ones within decoding tolerance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mer_prep.datasets._annotated import child_dirs, inside_folder, subject_number
from mer_prep.datasets._frames import VIDEO_SUFFIXES, list_frames, timing_error, video_frame_count
from mer_prep.datasets._sheets import as_frame, as_text, column_letter, is_blank, read_workbook
from mer_prep.datasets.corrections import Corrector
from mer_prep.errors import AnnotationError
from mer_prep.sample import DatasetScan, Problem, Sample, within_root

DATASET = "casme-sq"
FPS = 30.0
SHEET_PATTERN = re.compile(r"(?i)^cas\(?me\)?.*code.*\.xlsx$")
KINDS = ("micro", "macro", "all")
SOURCES = ("rawpic", "rawvideo")
FIRST_FRAME = 1  # rawpic imgN is video frame N - FIRST_FRAME (*unconfirmed*)
COLUMNS = ("participant", "video", "onset", "apex", "offset", "aus", "emotion", "type")
_SUBJECT_CELL = re.compile(r"(?i)^(?:sub|s)?\d+$")
_CODE_CELL = re.compile(r"^\d{3,4}$")


def subject_id(number: int) -> str:
    """``casme-sq/s15`` for subject 15."""
    return f"{DATASET}/s{number:02d}"


def find_sheet(root: Path) -> Path:
    """``CAS(ME)^2code_final.xlsx`` (or a similarly named code file) under ``root``."""
    found = sorted(p for p in root.iterdir() if p.is_file() and SHEET_PATTERN.match(p.name))
    if not found:
        raise AnnotationError(
            "no CAS(ME)^2 code spreadsheet found", file=str(root / "CAS(ME)^2code_final.xlsx")
        )
    return found[-1]


def code_tables(
    sheets: dict[str, list[tuple[Any, ...]]], main: str | None = None
) -> tuple[dict[str, str], dict[int, int]]:
    """From the sheets other than ``main`` (the first by default): video name (lower case) ->
    4-digit code, participant -> subject."""
    videos: dict[str, str] = {}
    subjects: dict[int, int] = {}
    main = next(iter(sheets), None) if main is None else main
    for rows in (rows for title, rows in sheets.items() if title != main):
        for row in rows:
            cells = [as_text(c) for c in row if not is_blank(c)]
            if len(cells) < 2:
                continue
            codes = [c for c in cells if _CODE_CELL.match(c)]
            names = [c for c in cells if re.search(r"[A-Za-z]", c) and not _SUBJECT_CELL.match(c)]
            if codes and names:
                videos[names[0].lower()] = codes[0].zfill(4)
            elif all(_SUBJECT_CELL.match(c) for c in cells[:2]):
                subjects[subject_number(cells[0])] = subject_number(cells[1])
    return videos, subjects


def video_base(name: str) -> str:
    """A video name without its ``_N`` repeat suffix, lower case (``Disgust1_2`` ->
    ``disgust1``)."""
    return re.sub(r"_\d+$", "", name).lower()


def video_code(name: str, videos: dict[str, str]) -> str | None:
    """The 4-digit code of video ``name`` in ``code_tables``' video table (as named, else by its
    ``video_base``), or its own leading four digits; None when neither."""
    return (
        videos.get(name.lower())
        or videos.get(video_base(name))
        or (name[:4] if re.match(r"\d{4}", name) else None)
    )


def main_rows(rows: list[tuple[Any, ...]], sheet: Path) -> list[tuple[int, dict[str, Any]]]:
    """(row number, cells by COLUMNS) of the header-less main sheet; AnnotationError if it is
    not one.

    A row whose values all lie past the eight columns is kept too (its cells are blank and
    ``"unread"`` lists what it holds), so that it becomes a Problem rather than vanishing.
    """
    out = _parsed_rows(rows)
    if not _usable(out):
        raise AnnotationError(
            "main sheet has no rows of participant, video name, onset, apex, offset, AUs, "
            "emotion, expression type",
            file=str(sheet),
            row=out[0][0] if out else None,
        )
    return out


@dataclass(frozen=True)
class CodeSheets:
    """What CAS(ME)^2's code spreadsheet holds: the annotation rows of its main sheet (``title``;
    ``first``: it is the workbook's first sheet) and its naming sheets (``code_tables``)."""

    title: str
    rows: list[tuple[int, dict[str, Any]]]
    videos: dict[str, str]
    subjects: dict[int, int]
    first: bool

    def subject(self, participant: Any) -> int:
        """The subject folder number of a row's participant cell (the participant's own number
        when the naming sheet does not list it); ValueError when it is no subject number."""
        number = subject_number(participant)
        return self.subjects.get(number, number)


def read_code_sheets(sheet: Path) -> CodeSheets:
    """The main sheet and naming sheets of the code spreadsheet ``sheet``."""
    sheets = read_workbook(sheet)
    title, rows = main_sheet(sheets, sheet)
    videos, subjects = code_tables(sheets, main=title)
    return CodeSheets(title, rows, videos, subjects, first=title == next(iter(sheets)))


def main_sheet(
    sheets: dict[str, list[tuple[Any, ...]]], sheet: Path
) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    """(title, main_rows) of the first sheet holding annotation rows; a notes sheet in front is
    passed over. AnnotationError for the first sheet when none does."""
    for title, rows in sheets.items():
        parsed = _parsed_rows(rows)
        if _usable(parsed):
            return title, parsed
    first = next(iter(sheets), "")
    return first, main_rows(sheets.get(first, []), sheet)


def _parsed_rows(rows: list[tuple[Any, ...]]) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for index, row in enumerate(rows):
        # a short row's missing cells are None; cells past the columns are not read
        cells = dict(zip(COLUMNS, tuple(row) + (None,) * len(COLUMNS), strict=False))
        if all(is_blank(v) for v in cells.values()):
            unread = [(i, c) for i, c in enumerate(row) if not is_blank(c)]
            if unread:
                out.append((index + 1, {**cells, "unread": unread}))
            continue
        if index == 0 and "onset" in as_text(cells["onset"]).lower():
            continue  # a re-saved copy with a header row added
        out.append((index + 1, cells))
    return out


def _usable(rows: list[tuple[int, dict[str, Any]]]) -> int:
    return sum(
        1
        for _, c in rows
        if _SUBJECT_CELL.match(as_text(c["participant"])) and _is_frame(c["onset"])
    )


def _is_frame(value: Any) -> bool:
    try:
        return as_frame(value, field="onset") is not None
    except ValueError:
        return False


def scan(
    root: Path | str,
    *,
    kind: str = "micro",
    annotations: Path | str | None = None,
    source: str = "rawpic",
    corrections: Path | str | None = None,
) -> DatasetScan:
    """Scan a CAS(ME)^2 copy; ``kind`` keeps micro, macro or all expressions; ``source`` reads
    the frames of ``rawpic/`` or the videos of ``rawvideo/``; ``corrections``: a corrections
    file of the user's (``mer_prep.datasets.corrections``)."""
    if kind not in KINDS:
        raise ValueError(f"casme-sq kind must be one of {KINDS}, got {kind!r}")
    if source not in SOURCES:
        raise ValueError(f"casme-sq source must be one of {SOURCES}, got {source!r}")
    root = Path(root)
    rawpic = root / source
    if not rawpic.is_dir():
        raise FileNotFoundError(f"{root}: no CAS(ME)^2 {source!r} folder")
    corrector = Corrector.for_dataset(DATASET, user=corrections)
    sheet = Path(annotations) if annotations is not None else find_sheet(root)
    codes = read_code_sheets(sheet)
    label = "" if codes.first else f" (sheet {codes.title!r})"
    samples: list[Sample] = []
    problems: list[Problem] = []
    referenced: set[Path] = set()
    seen: set[str] = set()
    for number, cells in codes.rows:
        where = f"{sheet}:{number}{label}"
        if "unread" in cells:
            shown = ", ".join(
                f"{as_text(v)!r} in column {column_letter(i)}" for i, v in cells["unread"][:3]
            )
            problems.append(
                Problem(
                    f"{DATASET} row {number}",
                    where,
                    f"row not read: nothing in the {len(COLUMNS)} annotation columns, "
                    f"but it holds {shown}",
                )
            )
            continue
        try:
            sample = _row_sample(
                cells,
                where,
                rawpic,
                codes,
                referenced,
                corrector,
                video=source == "rawvideo",
            )
        except ValueError as exc:
            participant, video = as_text(cells["participant"]), as_text(cells["video"])
            sample_id = f"{DATASET} row {number} ({participant}/{video})"
            problems.append(Problem(getattr(exc, "sample_id", sample_id), where, str(exc)))
            continue
        expression = dict(sample.extra)["expression_type"]
        if kind != "all" and expression != kind:
            continue
        if sample.sample_id in seen:
            problems.append(
                Problem(sample.sample_id, where, "duplicate video name for this subject")
            )
            continue
        seen.add(sample.sample_id)
        samples.append(sample)
    return DatasetScan(
        samples,
        problems + _unannotated(rawpic, referenced, video=source == "rawvideo"),
        corrector.records(),
    )


class _RowError(ValueError):
    def __init__(self, message: str, sample_id: str) -> None:
        super().__init__(message)
        self.sample_id = sample_id


def _row_sample(
    cells: dict[str, Any],
    where: str,
    rawpic: Path,
    codes: CodeSheets,
    referenced: set[Path],
    corrector: Corrector | None = None,
    *,
    video: bool = False,
) -> Sample:
    subject = codes.subject(cells["participant"])
    stimulus = as_text(cells["video"])
    sample_id = f"{subject_id(subject)}/{stimulus}"
    corrected: tuple[str, ...] = ()
    if corrector:
        cells, corrected = corrector.apply(sample_id, cells, where)
    sample = _located_sample(
        cells, where, rawpic, codes.videos, subject, stimulus, sample_id, referenced, video
    )
    if corrected:
        sample = replace(sample, extra=sample.extra + tuple(("fix", note) for note in corrected))
    return sample


def _entries(subject_dir: Path, video: bool) -> list[Path]:
    if not video:
        return child_dirs(subject_dir)
    if not subject_dir.is_dir():
        return []
    return sorted(
        p for p in subject_dir.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
    )


def _located_sample(
    cells: dict[str, Any],
    where: str,
    rawpic: Path,
    videos: dict[str, str],
    subject: int,
    video: str,
    sample_id: str,
    referenced: set[Path],
    from_video: bool,
) -> Sample:
    base, code = video_base(video), video_code(video, videos)
    if code is None:
        raise _RowError(f"video name {video!r} is not in the video-code sheet", sample_id)
    subject_dir = rawpic / f"s{subject:02d}"
    matches = [
        p for p in _entries(subject_dir, from_video) if p.name.startswith(f"{subject:02d}_{code}")
    ]
    if len(matches) != 1:
        what = "no" if not matches else f"{len(matches)}"
        kind = "video file" if from_video else "folder"
        raise _RowError(
            f"{what} {kind} {subject_dir}/{subject:02d}_{code}* for video {video!r}", sample_id
        )
    folder = matches[0]
    if not within_root(rawpic, folder):
        raise _RowError(f"clip folder {folder} leaves the dataset root", sample_id)
    if not inside_folder(
        subject_dir, folder
    ):  # a link into another subject: one clip, two subjects
        raise _RowError(
            f"video folder {folder} leaves its subject folder {subject_dir}: "
            f"it resolves to {folder.resolve()}",
            sample_id,
        )
    referenced.add(folder)
    try:
        onset = as_frame(cells["onset"], field="onset")
        apex = as_frame(cells["apex"], field="apex", missing=(0,))
        offset = as_frame(cells["offset"], field="offset")
    except ValueError as exc:
        raise _RowError(str(exc), sample_id) from exc
    fixes: tuple[tuple[str, str], ...] = ()
    if offset in (0, None):
        if apex is None:
            raise _RowError("offset is 0 and there is no apex to use instead", sample_id)
        offset, fixes = apex, (("fix", f"offset 0 -> apex {apex} (rule)"),)
    if onset is None:
        raise _RowError("onset is blank", sample_id)
    expression = as_text(cells["type"]).lower().split("-")[0].strip()
    if expression not in ("micro", "macro"):
        raise _RowError(
            f"expression type {as_text(cells['type'])!r} is neither micro nor macro", sample_id
        )
    if from_video:
        try:
            count = video_frame_count(folder)
        except ValueError as exc:
            raise _RowError(str(exc), sample_id) from exc
        if not count:
            raise _RowError(
                f"video {folder} states no frame count (empty, or a container without one)",
                sample_id,
            )
        frames = [(FIRST_FRAME + i, folder) for i in range(count)]
    else:
        frames = list_frames(folder)
    error = timing_error([n for n, _ in frames], onset, apex, offset)
    if error:
        raise _RowError(f"{error} [{folder}]", sample_id)
    span = [(n, p) for n, p in frames if onset <= n <= offset]
    emotion = as_text(cells["emotion"])
    if not emotion:
        raise _RowError("emotion is blank", sample_id)
    extra = (
        ("video", base),
        ("code", code),
        ("folder", folder.name),
        ("expression_type", expression),
        ("elicitation", re.match(r"[a-z]*", base).group(0)),
    ) + fixes
    if from_video:  # 0-based video indices throughout, as Sample.video_path wants them
        shift = FIRST_FRAME
        extra += (("frame_numbering", f"video index = sheet frame - {shift}"),)
        return Sample(
            dataset=DATASET,
            subject=subject_id(subject),
            clip=video,
            frame_paths=(),
            frame_numbers=tuple(n - shift for n, _ in span),
            onset=onset - shift,
            apex=None if apex is None else apex - shift,
            offset=offset - shift,
            fps=FPS,
            emotion=emotion,
            action_units=as_text(cells["aus"]),
            video_path=str(folder),
            source=where,
            extra=extra,
        )
    return Sample(
        dataset=DATASET,
        subject=subject_id(subject),
        clip=video,
        frame_paths=tuple(str(p) for _, p in span),
        frame_numbers=tuple(n for n, _ in span),
        onset=onset,
        apex=apex,
        offset=offset,
        fps=FPS,
        emotion=emotion,
        action_units=as_text(cells["aus"]),
        source=where,
        extra=extra,
    )


def _unannotated(rawpic: Path, referenced: set[Path], video: bool = False) -> list[Problem]:
    out = []
    for subject_dir in child_dirs(rawpic):
        for folder in _entries(subject_dir, video):
            if folder not in referenced:
                out.append(
                    Problem(
                        f"{DATASET}/{subject_dir.name}/{folder.name}",
                        str(folder),
                        f"video {'file' if video else 'folder'} has no annotation row",
                    )
                )
    return out

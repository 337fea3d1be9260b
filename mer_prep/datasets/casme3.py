"""CAS(ME)^3 adapter (TPAMI 2022): Part A (``part="A"``, the default) and Part C (``part="C"``).

**Part A**: 100 subjects x 13 takes, 30 fps, colour frames and 16-bit depth frames, annotated by
``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`` (one sheet: Subject, Filename, Onset, Apex,
Offset, AU, Objective class, emotion). Two distributions of the frames are read, with the root
at any level above them (the dataset folder, ``part_A/``, ``Part_A_ME_clip/``, or a doubled
``Part_A_ME_clip/Part_A_ME_clip/``):

- whole takes: ``RGB/{Subject}/{Filename}/color/{n}.jpg`` and
  ``depth/{Subject}/{Filename}/depth/{n}.png``; frame names are the sheet's frame numbers,
  starting at 1;
- per-ME clips: ``Part_A_ME_clip/frame/{Subject}_{Filename}_{Onset}/`` and ``.../depth/<same>/``
  (frame names taken to be the sheet's numbers too, *unconfirmed*).

The nearer of the two is read (whole takes when both lie at one depth); ``layout="takes"`` or
``"clips"`` picks one.

A sample is the onset..offset span of one row. Its quirks:

- 397 of the 860 rows share (Subject, Filename) with another row (several MEs in one take):
  the clip id includes the onset as the sheet states it, ``casme3/spNO.1/a_120``;
- a Filename is one letter ``a``-``m`` (once ``J``): folders are matched ignoring case;
- ``Others`` next to ``others``: label schemes compare case-insensitively (kept verbatim);
- an onset of 0 while the frames start at 1: read as frame 1 (a rule, noted on the sample);
- apex == onset happens and is fine;
- a "micro-expression" longer than ``max_duration_s`` (default 4 s, 120 frames at 30 fps: eight
  times the 0.5 s that defines a micro-expression) is an annotation error, reported as a
  problem naming the row, e.g. the sheet's 5..3460 row (a correction file can fix it);
- unreadable frame files (empty, wrong signature, truncated: spNO.3 ``J`` and spNO.4 ``j`` are
  known) and frames missing inside onset..offset are problems naming the frames.

Depth: when every frame of the sample has its depth PNG, ``Sample.depth_paths`` lists them
(same order as ``frame_paths``); otherwise it is empty and ``extra`` says why.

**Part C**: one ~8-minute mock-crime recording per subject, annotated by
``CAS(ME)3_part_C_ME.xlsx``, sheet ``mockCrimeME``: sub, count, onset, offset, au, emotion
(negative/surprise/others/positive), integer subjects, **no apex** (spotted by the pipeline),
AUs comma-separated (once with a full-width comma ``4，11``). The frame layout of Part C is
*unconfirmed*: under a folder named like ``part_C``, each subject is either a video file whose
name is its number (``1.mp4``, ``sub01.avi``) or a folder of numbered frames (directly or in a
``color/`` sub-folder). Sheet frame numbers are taken as 1-based (*unconfirmed*): video index =
frame - 1. Subjects are ``casme3/C01``..., samples ``casme3/C01/me3`` (the sheet's count).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

from mer_prep.datasets._annotated import (
    ClipRef,
    RawTiming,
    RowScan,
    RowSource,
    Timing,
    child_dirs,
    find_folder,
    plain_name,
    sheet_source,
    subject_number,
)
from mer_prep.datasets._frames import VIDEO_SUFFIXES, list_frames, unreadable_frames
from mer_prep.datasets._sheets import (
    BARE_FIRST,
    CLIP_COLUMNS,
    SheetRow,
    as_text,
    find_table,
    frame_columns,
    read_workbook,
)
from mer_prep.datasets.corrections import Corrector
from mer_prep.errors import AnnotationError
from mer_prep.sample import DatasetScan, Sample

DATASET = "casme3"
FPS = 30.0
PARTS = ("A", "C")
LAYOUTS = ("auto", "takes", "clips")
MAX_DURATION_S = 4.0
SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
PART_C_FIRST_FRAME = 1  # sheet frame number of a Part C video's first frame (*unconfirmed*)
SHEET_A = re.compile(r"(?i)^cas\(?me\)?\^?3.*part.?a.*label.*\.xlsx$")
SHEET_C = re.compile(r"(?i)^cas\(?me\)?\^?3.*part.?c.*\.xlsx$")
_CLIP_FOLDER = re.compile(r"(?i)^part_?a_?me_?clip$")
_PART_C_FOLDER = re.compile(r"(?i)^part[\s_-]*c")
_SEARCH_DEPTH = 4
_NOT_INTO = {"rgb", "depth", "frame", "video", "color"}

REQUIRED_A: dict[str, tuple[str, ...]] = {
    **CLIP_COLUMNS,
    **frame_columns(*BARE_FIRST),
    "emotion": ("emotion", "Estimated Emotion"),
}
OPTIONAL_A: dict[str, tuple[str, ...]] = {
    "aus": ("AU", "AUs", "Action Units"),
    "objective": ("Objective class", "Objective Class"),
}
REQUIRED_C: dict[str, tuple[str, ...]] = {
    "subject": ("sub", "Subject"),
    "count": ("count",),
    "onset": ("onset", "StartFrame", "Onset"),
    "offset": ("offset", "EndFrame", "Offset"),
    "emotion": ("emotion", "Emotion"),
}
OPTIONAL_C: dict[str, tuple[str, ...]] = {"aus": ("au", "AUs", "AU")}


def subject_id(name: str) -> str:
    """``casme3/spNO.1`` for Part A subject ``spNO.1``."""
    return f"{DATASET}/{name}"


def part_c_subject(number: int) -> str:
    """``casme3/C01`` for Part C subject 1."""
    return f"{DATASET}/C{number:02d}"


def _walk(root: Path, depth: int = _SEARCH_DEPTH):
    """(path, depth) of the folders under ``root``, breadth first, ``root`` included; frame and
    depth trees themselves are not entered."""
    queue = deque([(root, 0)])
    while queue:
        folder, level = queue.popleft()
        yield folder, level
        if level < depth and folder.name.lower() not in _NOT_INTO:
            queue.extend((child, level + 1) for child in child_dirs(folder))


def _sibling(folder: Path, name: str) -> Path | None:
    found = [p for p in child_dirs(folder.parent) if p.name.lower() == name]
    return found[0] if found else None


def find_part_a(root: Path, layout: str = "auto") -> tuple[str, Path, Path | None]:
    """(layout, frame tree, depth tree or None): ``takes`` with ``RGB/`` or ``clips`` with
    ``Part_A_ME_clip/frame/``, the nearest under ``root`` (whole takes first when both lie at
    one depth), or the one ``layout`` names. FileNotFoundError otherwise."""
    by_level: dict[int, list[tuple[str, Path, Path | None]]] = {}
    for folder, level in _walk(root):
        if by_level and level > min(by_level):
            break  # breadth first: nothing deeper is nearer
        for child in child_dirs(folder):
            name = child.name.lower()
            if name == "rgb":
                by_level.setdefault(level, []).append(("takes", child, _sibling(child, "depth")))
            elif name == "frame" and (_CLIP_FOLDER.match(folder.name) or _sibling(child, "depth")):
                by_level.setdefault(level, []).append(("clips", child, _sibling(child, "depth")))
    for level in sorted(by_level):
        found = [
            f
            for f in sorted(by_level[level], key=lambda f: f[0] != "takes")
            if layout in ("auto", f[0])
        ]
        if found:
            return found[0]
    wanted = {"takes": "an RGB/ folder of whole takes", "clips": "Part_A_ME_clip/frame/"}
    what = wanted.get(layout, " or ".join(wanted.values()))
    raise FileNotFoundError(
        f"{root}: no CAS(ME)^3 Part A frames ({what}) within {_SEARCH_DEPTH} levels"
    )


def find_sheet(root: Path, pattern: re.Pattern, what: str) -> Path:
    """The annotation sheet matching ``pattern`` under ``root`` (a few levels deep), else under
    its parent or grandparent (two levels deep: a root at ``part_A/`` or at a doubled
    ``Part_A_ME_clip/Part_A_ME_clip/`` with the sheet in the dataset's ``annotation/``)."""
    resolved = root.resolve()
    for base, depth in ((root, 3), (resolved.parent, 2), (resolved.parent.parent, 2)):
        for folder, _ in _walk(base, depth):
            try:
                found = sorted(p for p in folder.iterdir() if p.is_file() and pattern.match(p.name))
            except OSError:
                continue
            if found:
                return found[-1]
    raise AnnotationError(
        f"no CAS(ME)^3 {what} sheet found (give it as annotations=<file>)",
        file=str(root / f"<{pattern.pattern}>"),
    )


def _duration_error(onset: int, offset: int, limit: float) -> str | None:
    frames = offset - onset + 1
    if frames / FPS > limit:
        return (
            f"onset..offset {onset}..{offset} spans {frames} frames ({frames / FPS:.1f} s at "
            f"{FPS:g} fps), longer than {limit:g} s: not a micro-expression but an annotation "
            f"error (a corrections file can fix its frames)"
        )
    return None


def _fixer(limit: float):
    def fix(_row: SheetRow, _ref: ClipRef, raw: RawTiming, numbers: list[int]) -> Timing:
        if raw.onset is None or raw.offset is None:
            raise ValueError("onset or offset is blank")
        onset, apex, notes = raw.onset, raw.apex, []
        if onset == 0 and 0 not in numbers and numbers and numbers[0] == 1:
            onset, notes = 1, ["onset 0 -> 1 (rule: frame files start at 1)"]
            if apex == 0:
                apex = 1
                notes.append("apex 0 -> 1 (rule: frame files start at 1)")
        error = _duration_error(onset, raw.offset, limit)
        if error:
            raise ValueError(error)
        return Timing(onset, apex, raw.offset, tuple(notes))

    return fix


def _resolver(layout: str, frames: Path):
    def resolve(row: SheetRow) -> ClipRef:
        subject = plain_name(as_text(row.values["subject"]), "Subject")
        take = plain_name(as_text(row.values["filename"]), "Filename")
        onset = as_text(row.values["onset"])
        if layout == "takes":
            subject_dir = find_folder(frames, subject)
            take_dir = find_folder(subject_dir, take)
            name = take_dir.name if take_dir.is_dir() else take
            color = find_folder(take_dir, "color")
            folder = color if color.is_dir() else take_dir
            return ClipRef(
                subject_id(subject_dir.name if subject_dir.is_dir() else subject),
                f"{name}_{onset}",
                folder,
                subject_dir,
                extra=(("take", name),),
            )
        folder = find_folder(frames, f"{subject}_{take}_{onset}")
        name = folder.name[len(subject) + 1 :].rsplit("_", 1)[0] if folder.is_dir() else take
        return ClipRef(
            subject_id(subject), f"{name}_{onset}", folder, frames, extra=(("take", name),)
        )

    return resolve


def _depth_folder(layout: str, sample: Sample, frames: Path, depth: Path | None) -> Path | None:
    if depth is None or not sample.frame_paths:
        return None
    folder = Path(sample.frame_paths[0]).parent
    relative = folder.relative_to(frames)
    if layout == "takes":  # RGB/{Subject}/{Filename}/color -> depth/{Subject}/{Filename}/depth
        parts = relative.parts
        candidate = depth.joinpath(*parts[:2], "depth") if len(parts) >= 2 else depth / relative
        if not candidate.is_dir() and len(parts) >= 2:
            candidate = depth.joinpath(*parts[:2])
        return candidate
    return depth / relative


def _finisher(layout: str, frames: Path, depth: Path | None):
    def finish(sample: Sample, values: dict[str, Any]) -> Sample:
        error = unreadable_frames(
            list(zip(sample.frame_numbers, map(Path, sample.frame_paths), strict=True))
        )
        if error:
            raise ValueError(error)
        extra = sample.extra
        objective = as_text(values.get("objective"))
        if objective:
            extra += (("objective_class", objective),)
        folder = _depth_folder(layout, sample, frames, depth)
        depth_paths: tuple[str, ...] = ()
        if folder is not None and folder.is_dir():
            found = dict(list_frames(folder, (".png",)))
            missing = [n for n in sample.frame_numbers if n not in found]
            if missing:
                shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
                extra += (
                    ("depth", f"not stored: {len(missing)} depth frame(s) missing ({shown})"),
                )
            else:
                depth_paths = tuple(str(found[n]) for n in sample.frame_numbers)
        elif depth is not None:
            extra += (("depth", f"not stored: no depth folder {folder}"),)
        return replace(sample, extra=extra, depth_paths=depth_paths)

    return finish


def scan(
    root: Path | str,
    *,
    part: str = "A",
    annotations: Path | str | None = None,
    corrections: Path | str | None = None,
    max_duration_s: float | str = MAX_DURATION_S,
    layout: str = "auto",
) -> DatasetScan:
    """Scan CAS(ME)^3 Part A or Part C under ``root`` (any distribution level).

    annotations: the sheet, instead of the one found; corrections: a corrections file of the
    user's (``mer_prep.datasets.corrections``); max_duration_s: longest onset..offset accepted;
    layout: Part A's ``takes`` or ``clips`` when a copy holds both (``auto``: the nearer, whole
    takes first).
    """
    part = str(part).upper()
    if part not in PARTS:
        raise ValueError(f"casme3 part must be one of {PARTS}, got {part!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"casme3 layout must be one of {LAYOUTS}, got {layout!r}")
    try:
        limit = float(max_duration_s)
    except ValueError:
        raise ValueError(
            f"casme3 max_duration_s must be a number of seconds, got {max_duration_s!r}"
        ) from None
    root = Path(root)
    corrector = Corrector.for_dataset(DATASET, user=corrections)
    if part == "C":
        return _scan_part_c(root, annotations, corrector, limit)
    layout, frames, depth = find_part_a(root, layout)
    sheet = (
        Path(annotations)
        if annotations is not None
        else find_sheet(root, SHEET_A, "Part A ME label")
    )
    source = sheet_source(sheet, REQUIRED_A, OPTIONAL_A, (("part", "A"), ("layout", layout)))
    reading = RowScan(
        DATASET,
        FPS,
        frames,
        _resolver(layout, frames),
        corrector,
        fixer=_fixer(limit),
        suffixes=SUFFIXES,
        span_only=True,
        finish=_finisher(layout, frames, depth),
    )
    # a whole take without a row is normal (it may hold macro-expressions only); an ME clip
    # folder without one is not
    on_disk = (
        []
        if layout == "takes"
        else [(subject_id(c.name.rsplit("_", 2)[0]), c) for c in child_dirs(frames)]
    )
    return reading.dataset_scan([source], on_disk)


def find_part_c(root: Path) -> Path:
    """The Part C folder under ``root`` (or ``root`` itself when its name says Part C)."""
    for folder, _ in _walk(root, 3):
        if _PART_C_FOLDER.match(folder.name):
            return folder
    raise FileNotFoundError(f"{root}: no CAS(ME)^3 Part C folder (named like part_C)")


def _part_c_entries(folder: Path) -> dict[int, Path]:
    """Subject number -> its recording (a video file or a frame folder) in the Part C folder."""
    out: dict[int, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        try:
            number = subject_number(entry.stem if entry.is_file() else entry.name)
        except ValueError:
            continue
        if entry.is_dir():
            color = find_folder(entry, "color")
            entry = color if color.is_dir() else entry
        out.setdefault(number, entry)
    return out


def _scan_part_c(
    root: Path, annotations: Path | str | None, corrector: Corrector, limit: float
) -> DatasetScan:
    folder = find_part_c(root)
    sheet = Path(annotations) if annotations is not None else find_sheet(root, SHEET_C, "Part C ME")
    title, rows = find_table(read_workbook(sheet), REQUIRED_C, OPTIONAL_C, file=sheet)
    entries = _part_c_entries(folder)

    def resolve(row: SheetRow) -> ClipRef:
        number = subject_number(row.values["subject"])
        count = as_text(row.values["count"])
        if not count:
            raise ValueError("count is blank")
        recording = entries.get(number, folder / f"{number}")
        return ClipRef(part_c_subject(number), f"me{count}", recording, folder)

    def fix(_row: SheetRow, _ref: ClipRef, raw: RawTiming, _numbers: list[int]) -> Timing:
        if raw.onset is None or raw.offset is None:
            raise ValueError("onset or offset is blank")
        error = _duration_error(raw.onset, raw.offset, limit)
        if error:
            raise ValueError(error)
        return Timing(raw.onset, None, raw.offset)

    rows = [
        SheetRow(r.row, {**r.values, "filename": r.values.get("count"), "apex": None}, r.problem)
        for r in rows
    ]
    source = RowSource(sheet, rows, extra=(("part", "C"),), sheet=title)
    reading = RowScan(
        DATASET,
        FPS,
        folder,
        resolve,
        corrector,
        fixer=fix,
        suffixes=SUFFIXES,
        span_only=True,
        video_first=PART_C_FIRST_FRAME,
    )
    return reading.dataset_scan([source], [(part_c_subject(n), p) for n, p in entries.items()])

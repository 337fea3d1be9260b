"""A lab's own recordings, described by a manifest: one row per clip, in a CSV or XLSX file.

    subject, clip, path, onset, apex, offset, label, fps, aus
    p01, take1_a, p01/take1, 12, 15, 20, happiness, 200, 6+12
    p01, take2_a, videos/p01_take2.mp4, 30, , 41, surprise, 30, 1+2

Columns are found by name (``apex`` and ``aus`` may be left out or blank); the manifest is
``manifest.csv`` or ``manifest.xlsx`` in the root, or the file given as ``annotations=``.

- ``path`` is a folder of numbered frames (``img12.jpg``, ``00012.png``: frame numbers are the
  numbers in the file names) or a video file (``.mp4``, ``.avi``, ...: onset/apex/offset are
  then 0-based frame indices of the video, and only the frames a recipe needs are decoded);
- a relative path is resolved under the root, and every path must stay inside the root: one
  that leaves it (``../other``, an absolute path elsewhere, a link out) is a problem naming the
  row, never read;
- a sample holds the onset..offset frames only (a folder or video may hold a long recording);
- ``fps`` is per row; ``label`` is the emotion the label schemes map (under ``native`` every
  label is its own class); ``aus`` is parsed like every dataset's AU strings.

Samples are ``dataset="manifest"``, subjects ``<prefix>/<subject>`` (``prefix`` option, default
``manifest``), clips as the ``clip`` column says.
"""

from __future__ import annotations

import csv
from pathlib import Path

from mer_prep.datasets._annotated import ClipRef, RowScan, RowSource, plain_name
from mer_prep.datasets._frames import IMAGE_SUFFIXES
from mer_prep.datasets._sheets import (
    SheetRow,
    as_text,
    find_table,
    fps_reader,
    frame_columns,
    read_workbook,
    table_rows,
)
from mer_prep.datasets.corrections import Corrector
from mer_prep.errors import AnnotationError
from mer_prep.sample import DatasetScan

DATASET = "manifest"
NAMES = ("manifest.csv", "manifest.xlsx")

#: a manifest's frame columns, lower case as the other columns: ``onset``, ``onset frame``
MANIFEST_FRAMES = ("{name}", "{name} frame", "{name}frame")
REQUIRED: dict[str, tuple[str, ...]] = {
    "subject": ("subject", "participant"),
    "filename": ("clip", "sample", "name"),
    "path": ("path", "folder", "video", "frames"),
    **frame_columns(*MANIFEST_FRAMES, fields=("onset", "offset")),
    "emotion": ("label", "emotion", "class"),
    "fps": ("fps", "frame rate"),
}
OPTIONAL: dict[str, tuple[str, ...]] = {
    **frame_columns(*MANIFEST_FRAMES, fields=("apex",)),
    "aus": ("aus", "au", "action units"),
}


def find_manifest(root: Path) -> Path:
    for name in NAMES:
        if (root / name).is_file():
            return root / name
    raise AnnotationError(
        "no manifest found (manifest.csv or manifest.xlsx; or pass annotations=<file>)",
        file=str(root / NAMES[0]),
    )


def read_manifest(path: Path) -> tuple[str, list[SheetRow]]:
    """(sheet label, rows) of a CSV or XLSX manifest; AnnotationError naming the file."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return find_table(read_workbook(path), REQUIRED, OPTIONAL, file=path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [
                tuple(cell if cell.strip() else None for cell in row) for row in csv.reader(handle)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AnnotationError(
            f"cannot read manifest ({type(exc).__name__}: {exc})", file=str(path)
        ) from exc
    return "", table_rows(rows, REQUIRED, OPTIONAL, file=path)


_fps = fps_reader("fps")


def scan(
    root: Path | str,
    *,
    annotations: Path | str | None = None,
    corrections: Path | str | None = None,
    prefix: str = DATASET,
) -> DatasetScan:
    """Scan the clips a manifest lists under ``root``; ``prefix`` qualifies the subjects."""
    root = Path(root)
    prefix = str(prefix).strip().strip("/") or DATASET
    corrector = Corrector.for_dataset(DATASET, user=corrections)
    manifest = Path(annotations) if annotations is not None else find_manifest(root)
    title, rows = read_manifest(manifest)

    def resolve(row: SheetRow) -> ClipRef:
        subject = plain_name(as_text(row.values["subject"]), "subject")
        clip = as_text(row.values["filename"])
        given = as_text(row.values["path"])
        if not clip:
            raise ValueError("clip is blank")
        if "/" in clip or "\\" in clip:
            raise ValueError(
                f"clip {clip!r} is a path; the clip column names the clip, the path column "
                "its files"
            )
        if not given:
            raise ValueError("path is blank")
        path = Path(given).expanduser()
        return ClipRef(f"{prefix}/{subject}", clip, path if path.is_absolute() else root / path)

    source = RowSource(manifest, rows, sheet=title)
    # a row names a frame folder or a video, either of which may hold a longer recording
    reading = RowScan(
        DATASET,
        _fps,
        root,
        resolve,
        corrector,
        suffixes=IMAGE_SUFFIXES,
        span_only=True,
        video_first=0,
    )
    return reading.dataset_scan([source])

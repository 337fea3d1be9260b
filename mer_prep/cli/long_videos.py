"""``mer-prep list DATASET --videos`` / ``--intervals`` for the long-video datasets
(``mer_prep.datasets.long_video``): one CSV (or JSON) row per video or per annotated interval;
problems (named quirks) go to stderr."""

from __future__ import annotations

import csv
import json
import sys

import click

from mer_prep.errors import InvalidArgumentError

VIDEO_FIELDS = (
    "dataset",
    "subject",
    "video",
    "n_frames",
    "fps",
    "first_frame",
    "last_frame",
    "n_me",
    "n_mae",
)
INTERVAL_FIELDS = (
    "dataset",
    "subject",
    "video",
    "kind",
    "onset",
    "apex",
    "offset",
    "emotion",
    "action_units",
)


def is_long(dataset: str) -> bool:
    """True when ``dataset`` names a long-video adapter."""
    from mer_prep.datasets.long_video import LONG_VIDEO_ADAPTERS

    return dataset in LONG_VIDEO_ADAPTERS


def list_long(
    dataset: str,
    roots: tuple[str, ...],
    options: dict[str, str],
    fmt: str,
    *,
    intervals: bool = False,
) -> None:
    """Print the videos (or, with ``intervals``, the intervals) of long-video ``dataset``."""
    from mer_prep.datasets.long_video import LONG_VIDEO_ADAPTERS, scan_long_videos

    if not is_long(dataset):
        raise InvalidArgumentError(
            "--videos / --intervals list long-video datasets "
            f"({', '.join(LONG_VIDEO_ADAPTERS)}); {dataset!r} is not one"
        )
    if len(roots) != 1 or "=" in roots[0]:
        raise InvalidArgumentError(f"{dataset}: give one --root PATH")
    scan = scan_long_videos(dataset, roots[0], **options)
    if intervals:
        fields = INTERVAL_FIELDS
        rows = [
            {
                "dataset": v.dataset,
                "subject": v.subject,
                "video": v.video,
                "kind": i.kind,
                "onset": i.onset,
                "apex": "" if i.apex is None else i.apex,
                "offset": i.offset,
                "emotion": i.emotion or "",
                "action_units": i.action_units,
            }
            for v in scan.videos
            for i in v.intervals
        ]
    else:
        fields = VIDEO_FIELDS
        rows = [
            {
                "dataset": v.dataset,
                "subject": v.subject,
                "video": v.video,
                "n_frames": v.n_frames,
                "fps": v.fps,
                "first_frame": v.frame_numbers[0],
                "last_frame": v.frame_numbers[-1],
                "n_me": sum(i.kind == "me" for i in v.intervals),
                "n_mae": sum(i.kind == "mae" for i in v.intervals),
            }
            for v in scan.videos
        ]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
    else:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
    for problem in scan.problems:
        click.echo(f"problem: {problem}", err=True)
